/** The repositories this credential may read, and the login form. */
import type { Store } from "../../../../db/store.js";
import type { Principal } from "../../auth.js";
import { CsrfField, Page, short, when } from "../layout.js";
import { paths } from "../paths.js";

export async function homePage(store: Store, principal: Principal) {
  const all = await store.versions.repositories();
  const repos = principal.repos === "*" ? all : all.filter((r) => principal.repos.includes(r));
  const current = await Promise.all(repos.map((r) => store.production.current(r)));
  return (
    <Page title="Repositories" principal={principal}>
      <h1>Repositories</h1>
      {repos.length === 0 ? (
        <p class="sub">
          {all.length === 0
            ? "nothing registered yet: `reprise run` or a push through the GitHub App registers a version"
            : "this credential may read none of the registered repositories"}
        </p>
      ) : (
        <div class="scroll">
          <table id="repos">
            <thead>
              <tr>
                <th>repository</th>
                <th>production</th>
              </tr>
            </thead>
            <tbody>
              {repos.map((r, i) => {
                const a = current[i];
                return (
                  <tr>
                    <td>
                      <a href={paths.repo(r)}>{r}</a>
                    </td>
                    <td>
                      {a ? (
                        <>
                          <code>{short(a.sha)}</code>{" "}
                          <span class="sub">since {when(a.activatedAt)}</span>
                        </>
                      ) : (
                        <span class="sub">none</span>
                      )}
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      )}
    </Page>
  );
}

export function loginPage(next: string, message: string | null) {
  const nobody = { kind: "open", subject: "", repos: [], readOnly: true, actions: [] } as const;
  return (
    <Page title="Sign in" principal={nobody}>
      <h1>Sign in</h1>
      <p class="sub">
        Paste an API token (<code>reprise token create --repo OWNER/NAME --read-only</code>). It is
        kept in a cookie for this browser session only.
      </p>
      {message ? <p class="notice error">{message}</p> : null}
      <form method="post" action={paths.login()} class="inline">
        <CsrfField />
        <input type="hidden" name="next" value={next} />
        <input
          type="password"
          name="token"
          autocomplete="off"
          placeholder="rp_..."
          aria-label="API token"
          required
        />
        <button type="submit">sign in</button>
      </form>
    </Page>
  );
}
