/**
 * The HTTP API (docs/design.md section 9) on a real store: through `app.request()` for most checks,
 * and over real HTTP for the server as `reprise serve` runs it. Credentials are real: API tokens
 * from the store, OIDC tokens from a local issuer with its own keys.
 */
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { serve } from "@hono/node-server";
import { eq } from "drizzle-orm";
import type { Hono } from "hono";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EXECUTION_STATES } from "../../core/engine/vocabulary.js";
import { artifacts } from "../../db/schema.js";
import { LocalBlobStore } from "../../runner/artifacts/local-store.js";
import { Engine } from "../../runner/engine/engine.js";
import { createLocalExecutor, type LocalExecutor } from "../../runner/executors/local/index.js";
import { registerLocalCommit } from "../../runner/registry.js";
import { createApp } from "../../runner/server/app.js";
import { Authenticator } from "../../runner/server/auth.js";
import { Metrics } from "../../runner/server/metrics.js";
import { type OidcIssuer, startOidcIssuer } from "../fakes/oidc-issuer.js";
import { type TaskProject, taskProject } from "../fakes/task-project.js";
import { gitRegistration, pipeline, sha, TREE } from "../fixtures/specs.js";
import { type Driver, openTestStore, type TestStore } from "../setup/stores.js";

const ML = "github.com/acme/ml";
const OTHER = "github.com/acme/other";
const AUDIENCE = "https://reprise.test";
const enc = encodeURIComponent;
// biome-ignore lint/suspicious/noExplicitAny: the tests read arbitrary JSON documents
type Body = Record<string, any>;

export function apiContract(driver: Driver): void {
  let store: TestStore;
  let app: Hono;
  let issuer: OidcIssuer;
  let executor: LocalExecutor;
  let dataDir: string;
  let project: TaskProject;
  /** Tokens: read-write for ML, read-only for ML, read-write for OTHER. */
  const tok = { ml: "", mlRead: "", other: "" };
  /** A registered SHA of each repository. */
  const at = { ml: "", other: "" };
  /** What the server logged: an unexpected error (a 500) says why here. */
  const logged: string[] = [];

  const req = (
    method: string,
    path: string,
    opts: { token?: string | null; body?: unknown; raw?: string } = {},
  ) => {
    const headers: Record<string, string> = {};
    const token = opts.token === undefined ? tok.ml : opts.token;
    if (token) headers.authorization = `Bearer ${token}`;
    let body: string | undefined;
    if (opts.raw !== undefined || opts.body !== undefined) {
      headers["content-type"] = "application/json";
      body = opts.raw ?? JSON.stringify(opts.body);
    }
    return app.request(path, { method, headers, ...(body !== undefined ? { body } : {}) });
  };
  const json = async (r: Response | Promise<Response>) => {
    const res = await r;
    return { status: res.status, body: (await res.json()) as Body };
  };
  /** Posts a registration: real git objects (test/fixtures/specs.ts), a fresh commit unless given. */
  const register = (repo: string, reg = gitRegistration(pipeline()), token?: string) =>
    json(
      req("POST", `/api/v1/repos/${enc(repo)}/versions`, {
        ...(token !== undefined ? { token } : {}),
        body: reg,
      }),
    );

  beforeAll(async () => {
    store = await openTestStore(driver);
    issuer = await startOidcIssuer(AUDIENCE);
    dataDir = mkdtempSync(join(tmpdir(), "reprise-api-"));
    executor = createLocalExecutor({ dataDir, env: process.env });
    project = taskProject();
    for (const [k, repos, readOnly] of [
      ["ml", [ML], false],
      ["mlRead", [ML], true],
      ["other", [OTHER], false],
    ] as const)
      tok[k] = (await store.store.tokens.create({ repos: [...repos], readOnly })).token;
    app = createApp({
      store: store.store,
      executor,
      artifacts: new LocalBlobStore(join(dataDir, "artifacts")),
      auth: new Authenticator({
        store: store.store,
        open: false,
        oidc: { issuer: issuer.issuer, audience: AUDIENCE, githubHost: "github.com" },
      }),
      metrics: new Metrics(),
      publicUrl: null,
      log: (_level, message, extra) => logged.push(`${message} ${JSON.stringify(extra)}`),
    });
    const [ml, other] = [gitRegistration(pipeline()), gitRegistration(pipeline())];
    at.ml = ml.sha;
    at.other = other.sha;
    expect((await register(ML, ml)).status).toBe(201);
    expect((await register(OTHER, other, tok.other)).status).toBe(201);
  }, 60_000);

  afterAll(async () => {
    await executor?.close();
    await issuer?.close();
    await store?.dispose();
    project?.remove();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  describe(`documents and errors [${driver}]`, () => {
    it("serves its OpenAPI document without a credential, naming every route", async () => {
      const { status, body } = await json(req("GET", "/api/v1/openapi.json", { token: null }));
      expect([status, logged, status === 200 ? null : body]).toEqual([200, [], null]);
      expect(body.openapi).toBe("3.1.0");
      expect(Object.keys(body.paths)).toEqual(
        expect.arrayContaining([
          "/repos/{repo}/versions",
          "/repos/{repo}/executions",
          "/executions/{id}",
          "/executions/{id}/relaunch",
          "/executions/{id}/nodes/{node}/lineage",
          "/repos/{repo}/production",
          "/repos/{repo}/cache",
          "/repos/{repo}/artifacts/{digest}",
          "/repos/{repo}/artifacts/{digest}/content",
          "/repos/{repo}/executions/{id}/artifacts",
        ]),
      );
    });

    it("documents the execution states it filters on as the ones core declares", async () => {
      const { body } = await json(req("GET", "/api/v1/openapi.json", { token: null }));
      const list = body.paths["/repos/{repo}/executions"].get;
      const state = list.parameters.find((p: { name: string }) => p.name === "state");
      expect(state.schema.enum).toEqual([...EXECUTION_STATES]);
    });

    it("answers health, readiness and metrics without a credential", async () => {
      expect((await req("GET", "/healthz", { token: null })).status).toBe(200);
      expect(await json(req("GET", "/readyz", { token: null }))).toEqual({
        status: 200,
        body: { ok: true },
      });
      const metrics = await (await req("GET", "/metrics", { token: null })).text();
      expect(metrics).toContain("# TYPE reprise_executions gauge");
      expect(metrics).toMatch(/^reprise_queue_depth \d+$/m);
      expect(metrics).toContain("reprise_github_deliveries_pending 0");
    });

    it("refuses a call without a credential, or with an unknown one, with 401 and what to send", async () => {
      const none = await json(req("GET", `/api/v1/repos/${enc(ML)}/versions`, { token: null }));
      expect(none).toMatchObject({ status: 401, body: { error: { code: "unauthorized" } } });
      expect(none.body.error.message).toContain("Bearer");
      const bad = await json(req("GET", `/api/v1/repos/${enc(ML)}/versions`, { token: "rp_nope" }));
      expect(bad).toMatchObject({ status: 401, body: { error: { code: "unauthorized" } } });
    });

    it("answers malformed JSON and invalid fields with 400, unknown routes with 404, big bodies with 413", async () => {
      const path = `/api/v1/repos/${enc(ML)}/executions`;
      expect(await json(req("POST", path, { raw: "{not json" }))).toMatchObject({
        status: 400,
        body: { error: { code: "bad_request" } },
      });
      const missing = await json(req("POST", path, { body: { sha: at.ml } }));
      expect(missing).toMatchObject({ status: 400, body: { error: { code: "bad_request" } } });
      expect(missing.body.error.message).toMatch(/^workflow: /);
      const both = await json(
        req("POST", path, { body: { workflow: "train", sha: at.ml, production: true } }),
      );
      expect(both.body.error.message).toContain("exactly one of sha, ref or production");
      expect((await json(req("GET", "/api/v1/nope"))).status).toBe(404);
      const big = await json(
        req("POST", path, {
          body: { workflow: "train", sha: at.ml, inputs: { dataset: "x".repeat(1_100_000) } },
        }),
      );
      expect(big).toMatchObject({ status: 413, body: { error: { code: "payload_too_large" } } });
    });
  });

  describe(`versions [${driver}]`, () => {
    it("registers a posted version once (201, then 200), and refuses an invalid spec with 422 and its diagnostics", async () => {
      const reg = gitRegistration(pipeline());
      const s = reg.sha;
      const first = await register(ML, reg);
      expect(first.status).toBe(201);
      expect(first.body).toMatchObject({ sha: s, created: true, identicalTo: at.ml });
      expect(Object.keys(first.body.tasks).sort()).toEqual(["fit", "prep"]);
      expect((await register(ML, reg)).status).toBe(200);
      const bad = await register(ML, gitRegistration("version: 1\ntasks: { a: { command: 3 } }\n"));
      expect(bad.status).toBe(422);
      expect(bad.body.error.code).toBe("invalid_spec");
      expect(bad.body.errors[0]).toMatchObject({ severity: "error", line: expect.any(Number) });
    });

    it("lists versions and shows one with its diff against its parent", async () => {
      const reg = gitRegistration(pipeline("fit2.py"), TREE, { parents: [at.ml] });
      const child = reg.sha;
      const posted = await json(req("POST", `/api/v1/repos/${enc(ML)}/versions`, { body: reg }));
      expect(posted.status).toBe(201);
      const one = await json(req("GET", `/api/v1/repos/${enc(ML)}/versions/${child}`));
      expect(one.status).toBe(200);
      expect(one.body.diff).toMatchObject({ from: at.ml, tasks: { changed: ["fit"] } });
      const list = await json(req("GET", `/api/v1/repos/${enc(ML)}/versions?limit=100`));
      expect(list.body.versions.map((v: { sha: string }) => v.sha)).toEqual(
        expect.arrayContaining([at.ml, child]),
      );
      const diff = await json(
        req("GET", `/api/v1/repos/${enc(ML)}/diff?from=${at.ml}&to=${child}`),
      );
      expect(diff.body).toMatchObject({ from: at.ml, to: child, tasks: { changed: ["fit"] } });
      expect((await json(req("GET", `/api/v1/repos/${enc(ML)}/versions/${sha()}`))).status).toBe(
        404,
      );
    });
  });

  describe(`executions [${driver}]`, () => {
    it("starts a workflow at a SHA with defaults applied, gets, lists, aborts and relaunches it", async () => {
      const base = `/api/v1/repos/${enc(ML)}/executions`;
      const started = await json(req("POST", base, { body: { workflow: "train", sha: at.ml } }));
      expect(started.status).toBe(201);
      expect(started.body).toMatchObject({
        workflow: "train",
        sha: at.ml,
        status: "QUEUED",
        inputs: { dataset: "d1" },
      });
      const id = started.body.id as string;
      const got = await json(req("GET", `/api/v1/executions/${id}`));
      expect(got.body).toEqual(started.body);
      const listed = await json(req("GET", `${base}?workflow=train&state=QUEUED`));
      expect(listed.body.executions.map((e: { id: string }) => e.id)).toContain(id);
      const aborted = await json(req("POST", `/api/v1/executions/${id}/abort`));
      expect(aborted.body.status).toBe("ABORTING");
      const relaunched = await json(
        req("POST", `/api/v1/executions/${id}/relaunch`, { body: { recover: true } }),
      );
      expect(relaunched).toMatchObject({
        status: 201,
        body: { parent: id, mode: "recover", workflow: "train" },
      });
    });

    it("says what to fix: an unknown workflow (404), bad inputs (422), no production version (409)", async () => {
      const base = `/api/v1/repos/${enc(ML)}/executions`;
      const unknown = await json(req("POST", base, { body: { workflow: "nope", sha: at.ml } }));
      expect(unknown.status).toBe(404);
      expect(unknown.body.error.message).toContain("its workflows: train");
      const inputs = await json(
        req("POST", base, { body: { workflow: "train", sha: at.ml, inputs: { dataset: 3 } } }),
      );
      expect(inputs).toMatchObject({ status: 422, body: { error: { code: "invalid_inputs" } } });
      const prod = await json(
        req("POST", `/api/v1/repos/${enc(OTHER)}/executions`, {
          token: tok.other,
          body: { workflow: "train", production: true },
        }),
      );
      expect(prod).toMatchObject({ status: 409, body: { error: { code: "conflict" } } });
    });

    it("refuses inputs the database cannot store or a task's environment cannot hold with 422 invalid_inputs, not a 500", async () => {
      const base = `/api/v1/repos/${enc(ML)}/executions`;
      const post = (inputs: string) =>
        json(
          req("POST", base, { raw: `{"workflow":"train","sha":"${at.ml}","inputs":${inputs}}` }),
        );
      const nul = await post('{"dataset":"a\\u0000b"}');
      expect(nul).toMatchObject({ status: 422, body: { error: { code: "invalid_inputs" } } });
      expect(nul.body.error.message).toContain(
        'input "dataset": the string at dataset contains U+0000',
      );
      const lone = await post('{"dataset":"\\ud800"}');
      expect(lone).toMatchObject({ status: 422, body: { error: { code: "invalid_inputs" } } });
      expect(lone.body.error.message).toContain("a lone surrogate U+D800");
      const big = await post(JSON.stringify({ dataset: "x".repeat(200 * 1024) }));
      expect(big).toMatchObject({ status: 422, body: { error: { code: "invalid_inputs" } } });
      expect(big.body.error.message).toContain("pass large data as a file input");
    });

    it("serves a run's logs and the lineage of a cached node through to the execution that computed it", async () => {
      project.commit({
        tasks: { t: project.task({ cache: true }) },
        workflows: { wf: { nodes: { a: { task: "t" } } } },
      });
      const { version } = await registerLocalCommit(store.store, project.dir, "HEAD");
      const engine = new Engine({
        store: store.store,
        executor,
        owner: "api-test",
        maxParallel: 2,
        tickMs: 100,
      });
      const first = await store.store.executions.create({
        repo: version.repo,
        sha: version.sha,
        workflow: "wf",
        inputs: {},
        trigger: { kind: "cli", actor: "t" },
      });
      expect((await engine.drive(first.id)).state).toBe("SUCCEEDED");
      const token = (await store.store.tokens.create({ repos: [version.repo], readOnly: true }))
        .token;
      const logs = await json(req("GET", `/api/v1/executions/${first.id}/nodes/a/logs`, { token }));
      expect(logs.body).toMatchObject({ execution: first.id, node: "a", attempt: 1 });
      expect(logs.body.state).toBe("SUCCEEDED");
      const second = await store.store.executions.create({
        repo: version.repo,
        sha: version.sha,
        workflow: "wf",
        inputs: {},
        trigger: { kind: "cli", actor: "t" },
      });
      await engine.drive(second.id);
      const lineage = await json(
        req("GET", `/api/v1/executions/${second.id}/nodes/a/lineage`, { token }),
      );
      expect(lineage.body.computedBy).toMatchObject({ execution: first.id, node: "a" });
      const missing = await json(
        req("GET", `/api/v1/executions/${second.id}/nodes/zz/lineage`, { token }),
      );
      expect(missing.status).toBe(404);
      expect(missing.body.error.message).toContain("its nodes: a");
    }, 30_000);
  });

  describe(`production and cache [${driver}]`, () => {
    it("activates a SHA with the actor, reads the history, and names a revert a rollback", async () => {
      const repo = `github.com/acme/prod-${sha().slice(0, 8)}`;
      const token = (await store.store.tokens.create({ repos: [repo], readOnly: false })).token;
      const regs = [pipeline(), pipeline("fit2.py"), pipeline()].map((spec) =>
        gitRegistration(spec),
      );
      const [a, b, revert] = regs.map((r) => r.sha) as [string, string, string];
      for (const r of regs) await register(repo, r, token);
      const path = `/api/v1/repos/${enc(repo)}/production`;
      for (const s of [a, b, revert])
        expect((await json(req("POST", path, { token, body: { sha: s } }))).status).toBe(200);
      const history = await json(req("GET", path, { token }));
      expect(history.body.current).toMatchObject({ sha: revert, reason: `rollback to ${a}` });
      expect(history.body.history[1]).toMatchObject({
        sha: b,
        reason: "activated through the API",
      });
      expect(history.body.history[1].actor).toMatch(/^token:/);
    });

    it("reports cache stats and evicts only with a filter", async () => {
      const path = `/api/v1/repos/${enc(ML)}/cache`;
      expect((await json(req("GET", path))).body).toMatchObject({ repo: ML, tasks: [] });
      const none = await json(req("DELETE", path));
      expect(none.status).toBe(400);
      expect(none.body.error.message).toContain("task, key or execution");
      expect((await json(req("DELETE", `${path}?task=prep`))).body).toEqual({
        repo: ML,
        evicted: 0,
      });
    });
  });

  describe(`authorization [${driver}]`, () => {
    /** Every route on ML's resources, with a body where it takes one. */
    async function routes(): Promise<Array<[string, string, unknown?]>> {
      const e = await json(
        req("POST", `/api/v1/repos/${enc(ML)}/executions`, {
          body: { workflow: "train", sha: at.ml },
        }),
      );
      const id = e.body.id as string;
      const r = enc(ML);
      const bytes = `an artifact of ML ${sha()}\n`;
      const artifact = `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
      const up = await req("PUT", `/api/v1/repos/${r}/artifacts/${artifact}`, { raw: bytes });
      expect(up.status).toBe(201);
      const a = `/api/v1/repos/${r}/artifacts/${artifact}`;
      return [
        ["GET", `/api/v1/repos/${r}/versions`],
        ["GET", `/api/v1/repos/${r}/versions/${at.ml}`],
        ["POST", `/api/v1/repos/${r}/versions`, gitRegistration(pipeline())],
        ["GET", `/api/v1/repos/${r}/diff?from=${at.ml}&to=${at.ml}`],
        ["GET", `/api/v1/repos/${r}/executions`],
        ["POST", `/api/v1/repos/${r}/executions`, { workflow: "train", sha: at.ml }],
        ["GET", `/api/v1/executions/${id}`],
        ["POST", `/api/v1/executions/${id}/relaunch`, {}],
        ["POST", `/api/v1/executions/${id}/abort`],
        ["GET", `/api/v1/executions/${id}/nodes/a/logs`],
        ["GET", `/api/v1/executions/${id}/nodes/a/lineage`],
        ["GET", `/api/v1/repos/${r}/production`],
        ["POST", `/api/v1/repos/${r}/production`, { sha: at.ml }],
        ["GET", `/api/v1/repos/${r}/cache`],
        ["DELETE", `/api/v1/repos/${r}/cache?task=prep`],
        // HEAD and the other artifact cases: test/integration/api-artifacts.test.ts.
        ["GET", a],
        ["GET", `${a}/content`],
        ["GET", `/api/v1/repos/${r}/executions/${id}/artifacts`],
        ["PUT", a, bytes],
      ];
    }

    /** What a forbidden call could have changed: versions, executions and their states, production. */
    async function snapshot() {
      const execs = await store.store.executions.list({ repo: ML, limit: 500 });
      return {
        versions: (await store.store.versions.list(ML, { limit: 500 })).map((v) => v.sha).sort(),
        executions: execs.map((e) => `${e.id}:${e.state}`).sort(),
        production: (await store.store.production.history(ML)).length,
        artifacts: (await store.store.db.select().from(artifacts).where(eq(artifacts.repo, ML)))
          .map((a) => a.digest)
          .sort(),
      };
    }

    it("forbids a token of another repository every route, reading or writing (403; 404 for an execution id), and changes nothing", async () => {
      const list = await routes();
      const before = await snapshot();
      for (const [method, path, body] of list) {
        const r = await json(req(method, path, { token: tok.other, body }));
        // An execution's id of another repository answers as an unknown one (issue 14).
        const byId = path.startsWith("/api/v1/executions/");
        expect([method, path, r.status, r.body.error?.code]).toEqual([
          method,
          path,
          byId ? 404 : 403,
          byId ? "not_found" : "forbidden",
        ]);
      }
      expect(await snapshot()).toEqual(before);
      // Nor does the repository list show it.
      expect((await json(req("GET", "/api/v1/repos", { token: tok.other }))).body.repos).toEqual([
        OTHER,
      ]);
    });

    it("lets a read-only token read and forbids it every write, changing nothing", async () => {
      const list = await routes();
      const before = await snapshot();
      for (const [method, path, body] of list) {
        const r = await req(method, path, { token: tok.mlRead, body });
        if (method === "GET") expect([path, r.status]).toEqual([path, 200]);
        else expect([method, path, r.status]).toEqual([method, path, 403]);
      }
      expect(await snapshot()).toEqual(before);
    });

    it("accepts a GitHub Actions OIDC token for its own repository only, and refuses a forged, misaddressed or expired one", async () => {
      const token = await issuer.token("acme/ml");
      const started = await json(
        req("POST", `/api/v1/repos/${enc(ML)}/executions`, {
          token,
          body: { workflow: "train", sha: at.ml },
        }),
      );
      expect(started.status).toBe(201);
      expect(started.body.id).toBeTruthy();
      const exec = await store.store.executions.get(started.body.id);
      expect(exec?.trigger).toMatchObject({
        kind: "action",
        actor: "repo:acme/ml:ref:refs/heads/main",
      });
      const other = await json(req("GET", `/api/v1/repos/${enc(OTHER)}/versions`, { token }));
      expect(other.status).toBe(403);
      for (const bad of [
        await issuer.token("acme/ml", { audience: "someone-else" }),
        await issuer.token("acme/ml", { foreignKey: true }),
        await issuer.token("acme/ml", { issuer: "https://evil.example" }),
        await issuer.token("acme/ml", { expiresIn: "-1m" }),
      ]) {
        const r = await json(req("GET", `/api/v1/repos/${enc(ML)}/versions`, { token: bad }));
        expect(r).toMatchObject({ status: 401, body: { error: { code: "unauthorized" } } });
      }
      // Keys are fetched once and cached, not per request.
      expect(issuer.jwksRequests()).toBe(1);
    });
  });

  describe(`over HTTP [${driver}]`, () => {
    it("serves the same API on a real socket", async () => {
      const server = serve({ fetch: app.fetch, hostname: "127.0.0.1", port: 0 });
      await new Promise<void>((resolve) => server.once("listening", () => resolve()));
      const { port } = server.address() as { port: number };
      try {
        const res = await fetch(`http://127.0.0.1:${port}/api/v1/repos/${enc(ML)}/versions`, {
          headers: { authorization: `Bearer ${tok.ml}` },
        });
        expect(res.status).toBe(200);
        expect(((await res.json()) as { repo: string }).repo).toBe(ML);
        const open = await fetch(`http://127.0.0.1:${port}/api/v1/repos`);
        expect(open.status).toBe(401);
      } finally {
        await new Promise<void>((resolve) => server.close(() => resolve()));
      }
    });
  });
}
