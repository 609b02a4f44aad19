/**
 * A workflow's runs as a table, one column per input and per output, so experiments read as a
 * table; pick any two to compare.
 */
import type { Store } from "../../../../db/store.js";
import type { Principal } from "../../auth.js";
import { Badge, duration, Json, Page, short, when } from "../layout.js";
import { paths } from "../paths.js";

const RUNS = 100;

export async function runsPage(store: Store, principal: Principal, repo: string, workflow: string) {
  const runs = await store.executions.list({ repo, workflow, limit: RUNS });
  const inputKeys = [...new Set(runs.flatMap((r) => Object.keys(r.inputs)))].sort();
  const outputKeys = [...new Set(runs.flatMap((r) => Object.keys(r.outputs ?? {})))].sort();
  return (
    <Page
      title={`${workflow} runs`}
      principal={principal}
      crumbs={[
        [repo, paths.repo(repo)],
        [workflow, null],
      ]}
    >
      <h1>
        {workflow} <span class="sub">runs</span>
      </h1>
      <div class="meta">
        <span>
          {runs.length} run(s){runs.length === RUNS ? `, the latest ${RUNS}` : ""}
        </span>
      </div>
      {runs.length === 0 ? (
        <p class="sub">no runs yet</p>
      ) : (
        <form method="get" action={paths.compare()}>
          <p class="inline">
            <button type="submit">compare A with B</button>{" "}
            <span class="sub">pick one run in each of the A and B columns</span>
          </p>
          <div class="scroll">
            <table id="runs">
              <thead>
                <tr>
                  <th>A</th>
                  <th>B</th>
                  <th>execution</th>
                  <th>status</th>
                  <th>commit</th>
                  {inputKeys.map((k) => (
                    <th data-input={k}>{k}</th>
                  ))}
                  {outputKeys.map((k) => (
                    <th data-output={k}>→ {k}</th>
                  ))}
                  <th class="hide-narrow">created</th>
                  <th class="hide-narrow">took</th>
                </tr>
              </thead>
              <tbody>
                {runs.map((r, i) => (
                  <tr data-execution={r.id}>
                    <td>
                      <input
                        type="radio"
                        name="a"
                        value={r.id}
                        aria-label={`A: ${r.id}`}
                        checked={i === 1}
                      />
                    </td>
                    <td>
                      <input
                        type="radio"
                        name="b"
                        value={r.id}
                        aria-label={`B: ${r.id}`}
                        checked={i === 0}
                      />
                    </td>
                    <td>
                      <a href={paths.execution(r.id)} class="mono">
                        {r.id}
                      </a>
                    </td>
                    <td>
                      <Badge kind={r.state} />
                    </td>
                    <td>
                      <code>{short(r.sha)}</code>
                    </td>
                    {inputKeys.map((k) => (
                      <td>
                        <Json value={r.inputs[k]} compact />
                      </td>
                    ))}
                    {outputKeys.map((k) => (
                      <td>
                        <Json value={r.outputs?.[k]} compact />
                      </td>
                    ))}
                    <td class="hide-narrow">{when(r.createdAt)}</td>
                    <td class="hide-narrow">{duration(r.startedAt, r.finishedAt)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        </form>
      )}
    </Page>
  );
}
