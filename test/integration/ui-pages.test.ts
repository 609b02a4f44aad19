/**
 * The web UI's pages through `app.request()` (no server), on the seed story run in-process on
 * PGlite: what each page shows, how it answers for what does not exist, and who may see it.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { shortDigest } from "../../core/artifacts/ref.js";
import { createApp } from "../../runner/server/app.js";
import { Authenticator } from "../../runner/server/auth.js";
import type { ServerDeps } from "../../runner/server/deps.js";
import { finishedNodes } from "../../runner/server/finished-nodes.js";
import { Metrics } from "../../runner/server/metrics.js";
import { paths, uiRoutes } from "../../runner/server/ui/index.js";
import { taskHistory } from "../../runner/task-history.js";
import { type ArtifactStory, CSV, PNG, runArtifactStory, SVG } from "../fakes/artifact-story.js";
import { csrfOf, postLogin } from "../fakes/ui-login.js";
import { runUiStory, type UiStory } from "../fakes/ui-story.js";
import { openTestStore, type TestStore } from "../setup/stores.js";

let story: UiStory;
let app: ReturnType<typeof createApp>;
const enc = encodeURIComponent;

beforeAll(async () => {
  story = await runUiStory();
  const deps = story.deps(true);
  deps.ui = uiRoutes(deps);
  app = createApp(deps);
}, 60_000);
afterAll(async () => story?.close());

async function get(path: string, headers: Record<string, string> = {}) {
  const res = await app.request(path, { headers });
  return { res, html: await res.text() };
}

/** The attributes of every element matching `tag` with attribute `attr`, as `attr` -> element text. */
function rows(html: string, attr: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const m of html.matchAll(new RegExp(`<tr [^>]*${attr}="([^"]+)"[^>]*>(.*?)</tr>`, "gs")))
    out.set(m[1] as string, m[2] as string);
  return out;
}

const nodeHow = (html: string) =>
  Object.fromEntries(
    [...html.matchAll(/<a [^>]*data-node="([^"]+)" data-state="([^"]+)" data-how="([^"]+)"/g)].map(
      (m) => [m[1], `${m[2]} ${m[3]}`],
    ),
  );

describe("pages", () => {
  it("the home page lists the repository with its production version", async () => {
    const { res, html } = await get("/");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toContain("text/html");
    expect(html.startsWith("<!DOCTYPE html><html")).toBe(true);
    expect(html).toContain(`href="/repos/${enc(story.repo)}"`);
    expect(html).toContain(story.shas.revert.slice(0, 12));
  });

  it("the repository page lists versions with the tasks each changed, and production with the rollback marked", async () => {
    const { res, html } = await get(`/repos/${enc(story.repo)}`);
    expect(res.status).toBe(200);
    const versions = rows(html, "data-sha");
    expect([...versions.keys()]).toEqual([
      story.shas.revert,
      story.shas.reshaped,
      story.shas.fixed,
      story.shas.broken,
    ]);
    expect(versions.get(story.shas.fixed)).toContain("~train");
    expect(versions.get(story.shas.fixed)).toContain("Fix train");
    expect(versions.get(story.shas.reshaped)).toContain("+select");
    expect(versions.get(story.shas.revert)).toContain("-select");
    expect(versions.get(story.shas.revert)).toContain(
      `identical to ${story.shas.fixed.slice(0, 12)}`,
    );
    expect(versions.get(story.shas.broken)).toContain("first registered");

    const production = [...html.matchAll(/<tr data-rollback="(true|false)">(.*?)<\/tr>/gs)];
    expect(production.map((m) => m[1])).toEqual(["true", "false", "false"]);
    expect(production[0]?.[2]).toContain(`rollback to ${story.shas.fixed}`);
    expect(html).toContain(`href="/repos/${enc(story.repo)}/workflows/train"`);
    expect(html).toContain(`href="/repos/${enc(story.repo)}/tasks/train"`);
  });

  it("the execution page draws every node, coloured by state and marked ran or cached", async () => {
    const { res, html } = await get(`/executions/${story.fixed.id}`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-security-policy")).toContain("default-src 'none'");
    expect(html).toContain("<svg");
    expect(nodeHow(html)).toEqual({
      prepare: "SUCCEEDED cached",
      featurize: "SUCCEEDED cached",
      train: "SUCCEEDED ran",
      evaluate: "SUCCEEDED ran",
    });
    // An edge per dependency of the seed pipeline.
    expect(html).toContain('data-edge="prepare-&gt;featurize"');
    expect(html).toContain(`href="/executions/${story.broken.id}"`);
    expect(html).toContain(`href="/compare?a=${story.broken.id}&amp;b=${story.fixed.id}"`);

    const first = await get(`/executions/${story.broken.id}`);
    expect(nodeHow(first.html)).toEqual({
      prepare: "SUCCEEDED ran",
      featurize: "SUCCEEDED ran",
      train: "FAILED ran",
      evaluate: "SKIPPED not run",
    });
  });

  it("a selected cached node shows its inputs, outputs and the execution that computed it", async () => {
    const { html } = await get(`/executions/${story.fixed.id}?node=featurize`);
    expect(html).toContain('data-selected="featurize"');
    expect(html).toContain(
      `href="/executions/${story.broken.id}?node=featurize#node" data-lineage="${story.broken.id}"`,
    );
    expect(html).toMatch(/<h3>Inputs<\/h3><dl class="kv"><dt>/);
    expect(html).toMatch(/<h3>Outputs<\/h3><dl class="kv">.*<dt>features<\/dt>/s);
    expect(html).toContain("none here: its outputs were reused");
  });

  it("a selected failed node shows its attempts, its error and its log tail", async () => {
    const { html } = await get(`/executions/${story.broken.id}?node=train`);
    expect(html).toContain('data-selected="train"');
    expect(html).toMatch(/<table id="attempts">.*<td>1<\/td>/s);
    expect(html).toContain("train failed");
    expect(html).toMatch(/<pre id="log">[^<]*\S/);
    expect(html).not.toContain('id="lineage"');
  });

  it("the compare page shows the version diff, inputs, outputs and per node digest and how it came to be", async () => {
    const { res, html } = await get(`/compare?a=${story.broken.id}&b=${story.fixed.id}`);
    expect(res.status).toBe(200);
    expect(html).toMatch(/<strong>tasks:<\/strong> <span>changed <code>train<\/code>/);
    const nodes = rows(html, "data-node");
    expect([...nodes.keys()]).toEqual(["prepare", "featurize", "train", "evaluate"]);
    // Same task digest and outputs: not highlighted; prepare ran in A, came from the cache in B.
    expect(html).toMatch(/<tr class="" data-node="prepare">/);
    expect(nodes.get("prepare")).toMatch(/data-how="ran".*data-how="cached"/s);
    expect(html).toMatch(/<tr class="diff" data-node="train">/);
    expect(nodes.get("evaluate")).toMatch(/data-how="not run".*skipped.*data-how="ran"/s);
    expect(html).toMatch(/<table id="outputs">.*<th>loss<\/th>/s);
  });

  it("the compare page without two executions offers a form", async () => {
    const { res, html } = await get(`/compare?a=${story.fixed.id}`);
    expect(res.status).toBe(200);
    expect(html).toContain("name two executions");
    expect(html).toContain(`value="${story.fixed.id}"`);
  });

  it("the runs list has a column per input and per output", async () => {
    const { res, html } = await get(`/repos/${enc(story.repo)}/workflows/train`);
    expect(res.status).toBe(200);
    const runs = rows(html, "data-execution");
    expect([...runs.keys()]).toEqual([story.fixed.id, story.broken.id]);
    for (const input of ["dataset", "seed"]) expect(html).toContain(`data-input="${input}"`);
    for (const output of ["loss", "r2", "rmse", "passed"])
      expect(html).toContain(`data-output="${output}"`);
    expect(runs.get(story.fixed.id)).toContain("<code>true</code>");
  });

  it("task history lists the versions that changed the task and the executions at each digest", async () => {
    const { res, html } = await get(`/repos/${enc(story.repo)}/tasks/train`);
    expect(res.status).toBe(200);
    const changes = rows(html, "data-sha");
    expect([...changes.keys()]).toEqual([story.shas.fixed, story.shas.broken]);
    expect(changes.get(story.shas.fixed)).toContain(story.fixed.id);
    expect(changes.get(story.shas.broken)).toContain(story.broken.id);
    expect(changes.get(story.shas.broken)).not.toContain(story.fixed.id);
  });

  it("task history marks a task added by one version and removed by its revert", async () => {
    const h = await taskHistory(story.db.store, story.repo, "select");
    expect(h.changes.map((c) => [c.sha, c.change])).toEqual([
      [story.shas.revert, "removed"],
      [story.shas.reshaped, "added"],
    ]);
    const train = await taskHistory(story.db.store, story.repo, "train");
    expect(train.changes.map((c) => c.change)).toEqual(["changed", "added"]);
    expect(train.changes[0]?.runs.map((r) => [r.execution, r.how])).toEqual([
      [story.fixed.id, "ran"],
    ]);
    const prepare = await taskHistory(story.db.store, story.repo, "prepare");
    expect(prepare.changes[0]?.runs.map((r) => [r.execution, r.how])).toEqual([
      [story.fixed.id, "cached"],
      [story.broken.id, "ran"],
    ]);
  });

  it("keeps a finished execution's nodes, and reads a running one's every time", async () => {
    const nodesOf = finishedNodes(story.db.store, 6);
    const first = await nodesOf(story.fixed);
    expect(first.map((n) => n.nodeId)).toEqual(["prepare", "featurize", "train", "evaluate"]);
    expect(await nodesOf(story.fixed)).toBe(first);
    const running = { ...story.fixed, state: "RUNNING" as const };
    const other = finishedNodes(story.db.store);
    expect(await other(running)).not.toBe(await other(running));
    // Over its budget of nodes, the least recently viewed execution goes first.
    await nodesOf(story.broken);
    expect(await nodesOf(story.broken)).toBe(await nodesOf(story.broken));
    expect(await nodesOf(story.fixed)).not.toBe(first);
  });

  it("answers an unknown execution, node or repository with an HTML page that says so", async () => {
    const missing = await get("/executions/enope");
    expect(missing.res.status).toBe(404);
    expect(missing.res.headers.get("content-type")).toContain("text/html");
    expect(missing.html).toContain("no execution &quot;enope&quot;");
    const node = await get(`/executions/${story.fixed.id}?node=nope`);
    expect(node.res.status).toBe(200);
    expect(node.html).toContain("this execution has no node &quot;nope&quot;");
    const repo = await get(`/repos/${enc("github.com/acme/none")}`);
    expect(repo.res.status).toBe(404);
  });

  it("serves its stylesheet itself, cacheable for good, and leaves the API's answers alone", async () => {
    const { html } = await get("/");
    const css = /href="(\/assets\/style-[0-9a-f]+\.css)"/.exec(html)?.[1] as string;
    const res = await app.request(css);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toContain("text/css");
    expect(res.headers.get("cache-control")).toContain("immutable");
    expect(html).not.toMatch(/(src|href)="(https?:)?\/\//);
    const api = await app.request(`/api/v1/executions/${story.fixed.id}`);
    expect(api.status).toBe(200);
    expect(((await api.json()) as { id: string }).id).toBe(story.fixed.id);
    const unknown = await app.request("/api/v1/nothing-here");
    expect(unknown.status).toBe(404);
    expect(unknown.headers.get("content-type")).toContain("application/json");
  });
});

describe("sign-in and access", () => {
  let secured: ReturnType<typeof createApp>;
  let mine: string;
  let other: string;

  beforeAll(async () => {
    const deps = story.deps(false);
    deps.ui = uiRoutes(deps);
    secured = createApp(deps);
    mine = (await story.db.store.tokens.create({ repos: [story.repo], readOnly: true })).token;
    other = (
      await story.db.store.tokens.create({ repos: ["github.com/acme/other"], readOnly: true })
    ).token;
  });

  const login = (token: string, next = "/") =>
    postLogin((path, init) => secured.request(path, init), token, next);
  const cookieOf = (res: Response) => (res.headers.get("set-cookie") ?? "").split(";")[0] as string;

  it("sends a caller without a credential to the login form, and back after it", async () => {
    const path = `/executions/${story.fixed.id}?node=train`;
    const res = await secured.request(path);
    expect(res.status).toBe(303);
    expect(res.headers.get("location")).toBe(`/login?next=${enc(path)}`);
    const form = await secured.request(res.headers.get("location") as string);
    expect(form.status).toBe(200);
    const html = await form.text();
    expect(html).toContain('type="password" name="token"');
    expect(html).toContain(`value="${path.replace("&", "&amp;")}"`);

    const ok = await login(mine, path);
    expect(ok.status).toBe(303);
    expect(ok.headers.get("location")).toBe(path);
    const setCookie = ok.headers.get("set-cookie") ?? "";
    expect(setCookie).toMatch(/^reprise_token=rp_/);
    expect(setCookie).toContain("HttpOnly");
    expect(setCookie).toContain("SameSite=Strict");
    const page = await secured.request(path, { headers: { cookie: cookieOf(ok) } });
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('data-selected="train"');
  });

  it("refuses a wrong token at login and never redirects off the server", async () => {
    const bad = await login("rp_not-a-token");
    expect(bad.status).toBe(401);
    expect(await bad.text()).toContain("unknown, revoked or expired API token");
    expect(bad.headers.get("set-cookie")).toBeNull();
    const offsite = await login(mine, "//evil.example/");
    expect(offsite.headers.get("location")).toBe("/");
  });

  it("accepts a bearer header as the API does", async () => {
    const res = await secured.request(`/repos/${enc(story.repo)}`, {
      headers: { authorization: `Bearer ${mine}` },
    });
    expect(res.status).toBe(200);
  });

  it("shows a credential only the repositories it may read", async () => {
    const cookie = cookieOf(await login(other));
    const home = await secured.request("/", { headers: { cookie } });
    expect(home.status).toBe(200);
    expect(await home.text()).not.toContain(enc(story.repo));
    for (const path of [
      `/repos/${enc(story.repo)}`,
      `/repos/${enc(story.repo)}/tasks/train`,
      `/repos/${enc(story.repo)}/workflows/train`,
    ]) {
      const res = await secured.request(path, { headers: { cookie } });
      expect(res.status, path).toBe(403);
      expect(await res.text(), path).toContain(`this credential is not for ${story.repo}`);
    }
    // Another repository's execution id answers as an unknown one: a 403 would say it exists.
    for (const path of [
      `/executions/${story.fixed.id}`,
      `/compare?a=${story.broken.id}&b=${story.fixed.id}`,
    ]) {
      const res = await secured.request(path, { headers: { cookie } });
      expect(res.status, path).toBe(404);
      expect(await res.text(), path).toContain("no execution");
    }
  });

  it("forgets a revoked token's cookie and asks again", async () => {
    const { token, record } = await story.db.store.tokens.create({
      repos: [story.repo],
      readOnly: true,
    });
    const cookie = cookieOf(await login(token));
    await story.db.store.tokens.revoke(record.id);
    const res = await secured.request("/", { headers: { cookie } });
    expect(res.status).toBe(303);
    expect(res.headers.get("location")).toBe("/login");
    expect(res.headers.get("set-cookie")).toContain("reprise_token=;");
  });

  it("signs out by clearing the cookie, from its own form only", async () => {
    const forged = await secured.request("/logout", { method: "POST" });
    expect(forged.status).toBe(403);
    expect(forged.headers.get("set-cookie") ?? "").not.toContain("reprise_token=;");
    const { cookie, csrf } = await csrfOf((path, init) => secured.request(path, init));
    const res = await secured.request("/logout", {
      method: "POST",
      body: new URLSearchParams({ csrf }),
      headers: { "content-type": "application/x-www-form-urlencoded", cookie },
    });
    expect(res.status).toBe(303);
    expect(res.headers.get("set-cookie")).toContain("reprise_token=;");
  });
});

describe("artifacts on the execution page", () => {
  let db: TestStore;
  let run: ArtifactStory;
  let app: ReturnType<typeof createApp>;
  let mine: string;
  let other: string;
  const login = async (token: string) => {
    const res = await postLogin((path, init) => app.request(path, init), token);
    return (res.headers.get("set-cookie") ?? "").split(";")[0] as string;
  };
  const page = async (cookie: string) => {
    const res = await app.request(`/executions/${run.execution.id}`, { headers: { cookie } });
    return { res, html: await res.text() };
  };
  /** The artifact table's rows as `node direction name` -> the row's markup. */
  const artifactRows = (html: string) =>
    new Map(
      [
        ...html.matchAll(
          /<tr data-artifact="([^"]+)" data-node="([^"]+)" data-direction="([^"]+)" data-name="([^"]+)">(.*?)<\/tr>/gs,
        ),
      ].map((m) => [`${m[2]} ${m[3]} ${m[4]}`, { digest: m[1] as string, row: m[5] as string }]),
    );
  const preview = (html: string, digest: string) =>
    new RegExp(
      `<section class="panel" data-preview="${digest}" data-kind="([a-z]+)">(.*?)</section>`,
      "s",
    ).exec(html);

  beforeAll(async () => {
    db = await openTestStore("pglite");
    run = await runArtifactStory(db);
    const deps: ServerDeps = {
      store: db.store,
      executor: { logTail: async () => null },
      artifacts: run.blobs,
      auth: new Authenticator({ store: db.store, oidc: null, open: false }),
      metrics: new Metrics(),
      publicUrl: null,
      log: () => {},
    };
    deps.ui = uiRoutes(deps);
    app = createApp(deps);
    mine = await login((await db.store.tokens.create({ repos: [run.repo], readOnly: true })).token);
    other = await login(
      (await db.store.tokens.create({ repos: ["github.com/acme/other"], readOnly: true })).token,
    );
  }, 60_000);
  afterAll(async () => {
    await run?.close();
    await db?.dispose();
  });

  it("lists every artifact a node read or wrote: type, size, digest, producer and download", async () => {
    const { res, html } = await page(mine);
    expect(res.status).toBe(200);
    const rows = artifactRows(html);
    expect([...rows.keys()].sort()).toEqual(
      [
        "make input seed",
        "make output blob",
        "make output logo",
        "make output page",
        "make output plot",
        "make output table",
        "make output tree",
        "use input table",
      ].sort(),
    );
    const table = rows.get("use input table");
    expect(table?.digest).toBe(run.outputs.table);
    expect(table?.row).toContain(`${CSV.length + 1} B`);
    expect(table?.row).toContain(shortDigest(run.outputs.table as string));
    // The producer links to the node of the run that made it.
    expect(table?.row).toContain(
      `href="${paths.execution(run.execution.id, "make").replace("&", "&amp;")}"`,
    );
    expect(table?.row).toContain(
      `href="${paths.artifact(run.repo, run.outputs.table as string, { name: "table" })}"`,
    );
    expect(rows.get("make input seed")?.row).toContain("uploaded by token:story");
    expect(rows.get("make output tree")?.row).toContain("directory");
    expect(rows.get("make output tree")?.row).toContain("(2 files)");
    expect(rows.get("make output tree")?.row).toContain("download .tar");
  });

  it("previews text as its first 20 lines, escaped, and images as images; no preview for binary", async () => {
    const { html } = await page(mine);
    const csv = preview(html, run.outputs.table as string);
    expect(csv?.[1]).toBe("text");
    const lines = /<pre>(.*?)<\/pre>/s.exec(csv?.[2] ?? "")?.[1]?.split("\n") ?? [];
    expect(lines).toHaveLength(20);
    expect(lines[0]).toBe("id,label");
    expect(lines[1]).toBe("0,&lt;b&gt;bold&lt;/b&gt;");
    expect(csv?.[2]).toContain("the first 20 lines");
    const htmlFile = preview(html, run.outputs.page as string);
    expect(htmlFile?.[1]).toBe("text");
    expect(htmlFile?.[2]).toContain("&lt;script&gt;");
    expect(html).not.toContain('<script>alert("html")');
    for (const name of ["plot", "logo"]) {
      const img = preview(html, run.outputs[name] as string);
      expect([name, img?.[1]]).toEqual([name, "image"]);
      expect(img?.[2]).toContain(
        `<img src="${paths.artifact(run.repo, run.outputs[name] as string, { inline: true })}"`,
      );
    }
    expect(preview(html, run.outputs.blob as string)?.[1]).toBe("binary");
    // Previews are same-origin only: the page's policy allows nothing else.
    expect(html).not.toMatch(/(src|href)="(https?:)?\/\//);
  });

  it("downloads with the session cookie, as a sandboxed attachment or an inline image", async () => {
    const get = (path: string, cookie = mine) => app.request(path, { headers: { cookie } });
    const csv = await get(paths.artifact(run.repo, run.outputs.table as string, { name: "table" }));
    expect(csv.status).toBe(200);
    expect(await csv.text()).toBe(`${CSV}\n`);
    expect(csv.headers.get("content-disposition")).toBe('attachment; filename="table"');
    expect(csv.headers.get("content-security-policy")).toBe("default-src 'none'; sandbox");
    expect(csv.headers.get("x-content-type-options")).toBe("nosniff");
    const svg = await get(paths.artifact(run.repo, run.outputs.logo as string, { inline: true }));
    expect(svg.headers.get("content-type")).toBe("image/svg+xml");
    expect(svg.headers.get("content-security-policy")).toBe("default-src 'none'; sandbox");
    expect(await svg.text()).toBe(SVG);
    const png = await get(paths.artifact(run.repo, run.outputs.plot as string, { inline: true }));
    expect(png.headers.get("content-type")).toBe("image/png");
    expect(Buffer.from(await png.arrayBuffer()).equals(PNG)).toBe(true);
    // An HTML file never shows inline, whatever is asked.
    const page = await get(paths.artifact(run.repo, run.outputs.page as string, { inline: true }));
    expect(page.headers.get("content-disposition")).toMatch(/^attachment;/);
    expect(page.headers.get("content-type")).toBe("application/octet-stream");
    await page.arrayBuffer();
    const tree = await get(paths.artifact(run.repo, run.outputs.tree as string, { name: "tree" }));
    expect(tree.headers.get("content-type")).toBe("application/x-tar");
    expect(tree.headers.get("content-disposition")).toBe('attachment; filename="tree.tar"');
    await tree.arrayBuffer();
  });

  it("keeps downloads to the repository's own callers: login first, 403 for others, 404 for a digest it does not hold", async () => {
    const path = paths.artifact(run.repo, run.outputs.table as string);
    const anonymous = await app.request(path);
    expect(anonymous.status).toBe(303);
    expect(anonymous.headers.get("location")).toBe(`/login?next=${enc(path)}`);
    const theirs = await app.request(path, { headers: { cookie: other } });
    expect(theirs.status).toBe(403);
    expect(theirs.headers.get("content-type")).toContain("text/html");
    // Their own repository's path does not hold it either: the same 404 as for any digest.
    const mixed = await app.request(
      paths.artifact("github.com/acme/other", run.outputs.table as string),
      { headers: { cookie: other } },
    );
    expect(mixed.status).toBe(404);
    const nobody = await app.request(paths.artifact(run.repo, `sha256:${"0".repeat(64)}`), {
      headers: { cookie: mine },
    });
    expect(nobody.status).toBe(404);
    const bad = await app.request(`/repos/${enc(run.repo)}/artifacts/nope`, {
      headers: { cookie: mine },
    });
    expect(bad.status).toBe(400);
  });

  it("says a file's bytes are gone, on the page and on its download", async () => {
    const digest = run.outputs.blob as string;
    await run.blobs.delete(digest);
    const { html } = await page(mine);
    const gone = preview(html, digest);
    expect(gone?.[1]).toBe("gone");
    expect(gone?.[2]).toContain("relaunching the execution that produced it recomputes them");
    const res = await app.request(paths.artifact(run.repo, digest), { headers: { cookie: mine } });
    expect(res.status).toBe(404);
    expect(await res.text()).toContain("gone from the artifact store");
  });
});
