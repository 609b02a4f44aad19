/**
 * The API and the web UI on a 1,000-node execution (issue 7): `GET /api/v1/executions/{id}` and
 * the execution page (its DAG drawn), p50 and p99, each against a static response of the same
 * size served by the same server in the same run: what serving those bytes costs by itself.
 *
 * The execution is real: a 1,000-node layered workflow (25 layers of 40, each node reading two
 * nodes of the layer above) registered on real Postgres (`reprise serve`'s store; a database of
 * its own, dropped at the end) and driven to the end by the engine with the no-op executor. The server is `createApp` with the UI, over real HTTP on
 * loopback, asked one request at a time with keep-alive. The page's first render lays the graph
 * out with dagre (about a second for 1,000 nodes); the layout is kept per workflow digest, so
 * that render is reported on its own. A finished execution's nodes and their markup are kept
 * too (runner/server/ui/finished-nodes.ts): the measured renders of the finished run are the ones
 * every later visitor gets. The page of a second execution, created and never driven (a run in
 * progress, whose nodes are read on every view), is reported beside it.
 */
import type { AddressInfo } from "node:net";
import { type ServerType, serve } from "@hono/node-server";
import { Hono } from "hono";
import type { TreeEntry } from "../core/hash/sources.js";
import { buildVersion } from "../core/version/build-version.js";
import { openStore } from "../db/store.js";
import { Engine } from "../runner/engine/engine.js";
import { createApp } from "../runner/server/app.js";
import { Authenticator } from "../runner/server/auth.js";
import { Metrics } from "../runner/server/metrics.js";
import { uiRoutes } from "../runner/server/ui/index.js";
import type { Row } from "./lib.js";
import { NoopExecutor } from "./noop-executor.js";
import { adminUrl, withScratchDatabases } from "./scratch-db.js";

const LAYERS = 25;
const WIDTH = 40;
const STEP_TASKS = 10;
/** Requests of each kind, interleaved (one of each per round), after WARMUP rounds. */
const ROUNDS = Number(process.env.BENCH_UI_ROUNDS ?? 200);
const WARMUP = 20;
const TARGET_RATIO = 3;

const REPO = "github.com/acme/ui-bench";
const SHA = "d".repeat(40);
const TREE: TreeEntry[] = [{ path: "src/step.py", mode: "100644", sha: "1".repeat(40) }];

const id = (layer: number, i: number) =>
  `l${String(layer).padStart(2, "0")}n${String(i).padStart(2, "0")}`;

export function uiSpec(): string {
  const lines = [
    "version: 1",
    `defaults: { image: "registry.example.com/step@sha256:${"a".repeat(64)}", retries: 0 }`,
    "tasks:",
    "  root: { command: [root], sources: [src/step.py], outputs: { v: integer }, cache: false }",
  ];
  for (let t = 0; t < STEP_TASKS; t++)
    lines.push(
      `  step-${t}: { command: [step, "${t}"], sources: [src/step.py], inputs: { a: integer, b: integer }, outputs: { v: integer }, cache: false }`,
    );
  lines.push("workflows:", "  big:", "    nodes:");
  for (let i = 0; i < WIDTH; i++) lines.push(`      ${id(0, i)}: { task: root }`);
  for (let l = 1; l < LAYERS; l++)
    for (let i = 0; i < WIDTH; i++) {
      const a = id(l - 1, i);
      const b = id(l - 1, (i + 1) % WIDTH);
      lines.push(
        `      ${id(l, i)}: { task: step-${(l * WIDTH + i) % STEP_TASKS}, inputs: { a: "\${{ nodes.${a}.outputs.v }}", b: "\${{ nodes.${b}.outputs.v }}" } }`,
      );
    }
  return `${lines.join("\n")}\n`;
}

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] as number;
}

export async function benchUi(): Promise<Row[]> {
  return withScratchDatabases(adminUrl(), ["ui"], "bench/ui", ([url]) => run(url as string));
}

async function run(url: string): Promise<Row[]> {
  const started = performance.now();
  const log = (what: string) =>
    process.stderr.write(
      `bench/ui: ${what} (${((performance.now() - started) / 1000).toFixed(1)} s)\n`,
    );
  const opened = await openStore({ databaseUrl: url, migrate: true });
  let server: ServerType | null = null;
  try {
    const store = opened.store;
    const result = buildVersion(uiSpec(), TREE);
    if (!result.ok) throw new Error(`generated spec is invalid: ${result.errors[0]?.message}`);
    await store.versions.register({
      repo: REPO,
      sha: SHA,
      parents: [],
      ref: "main",
      message: "bench",
      result,
      by: { source: "git", actor: "cli" },
    });
    const created = await store.executions.create({
      repo: REPO,
      sha: SHA,
      workflow: "big",
      inputs: {},
      trigger: { kind: "cli", actor: "bench" },
    });
    const executor = new NoopExecutor();
    const engine = new Engine({ store, executor, owner: "bench", maxParallel: 64, tickMs: 1_000 });
    const done = await engine.drive(created.id);
    if (done.state !== "SUCCEEDED") throw new Error(`the execution ended ${done.state}`);
    log(`drove ${LAYERS * WIDTH} nodes`);
    // Not driven: a run still in progress, whose nodes the page reads on every view.
    const live = await store.executions.create({
      repo: REPO,
      sha: SHA,
      workflow: "big",
      inputs: {},
      trigger: { kind: "cli", actor: "bench" },
    });

    const deps = {
      store,
      executor: { logTail: async () => null },
      auth: new Authenticator({ store, oidc: null, open: true }),
      metrics: new Metrics(),
      publicUrl: null,
      log: () => {},
    };
    const app = createApp({ ...deps, ui: uiRoutes(deps) });
    const outer = new Hono();
    const statics = new Map<string, string>();
    outer.get("/static/:name", (c) =>
      c.body(statics.get(c.req.param("name")) ?? "", 200, {
        "content-type": "application/json",
      }),
    );
    outer.route("/", app);
    const base = await new Promise<string>((resolve) => {
      server = serve({ fetch: outer.fetch, hostname: "127.0.0.1", port: 0 }, (info) =>
        resolve(`http://127.0.0.1:${(info as AddressInfo).port}`),
      );
    });
    const paths = {
      api: `/api/v1/executions/${done.id}`,
      page: `/executions/${done.id}`,
      live: `/executions/${live.id}`,
    };
    const timed = async (path: string): Promise<{ ms: number; bytes: number }> => {
      const t = performance.now();
      const res = await fetch(`${base}${path}`);
      const body = await res.arrayBuffer();
      const ms = performance.now() - t;
      if (res.status !== 200) throw new Error(`${path} answered ${res.status}`);
      return { ms, bytes: body.byteLength };
    };

    const first = await timed(paths.page);
    log(`first page render (layout computed): ${first.ms.toFixed(0)} ms`);
    // Static bodies of exactly the sizes the real answers have (ASCII, so bytes = characters).
    for (const [name, path] of Object.entries(paths)) {
      const { bytes } = await timed(path);
      statics.set(name, JSON.stringify({ pad: "x".repeat(Math.max(0, bytes - 10)) }));
    }
    const firstStatic = await timed("/static/page");

    const kinds = [
      ["api", paths.api],
      ["api-static", "/static/api"],
      ["page", paths.page],
      ["page-static", "/static/page"],
      ["live", paths.live],
      ["live-static", "/static/live"],
    ] as const;
    const samples: Record<string, number[]> = Object.fromEntries(kinds.map(([k]) => [k, []]));
    const sizes: Record<string, number> = {};
    for (let r = 0; r < WARMUP + ROUNDS; r++) {
      for (const [name, path] of kinds) {
        const { ms, bytes } = await timed(path);
        sizes[name] = bytes;
        if (r >= WARMUP) samples[name]?.push(ms);
      }
    }
    log(
      `sizes: api ${sizes.api} B, page ${sizes.page} B, live page ${sizes.live} B; each static the same`,
    );
    const stat = (name: string) => {
      const s = [...(samples[name] ?? [])].sort((a, b) => a - b);
      return { p50: percentile(s, 0.5), p99: percentile(s, 0.99) };
    };
    const rows: Row[] = [];
    for (const [name, figure, held] of [
      ["api", "GET /api/v1/executions/{id}, 1,000 nodes", true],
      ["page", "execution page (DAG), finished, 1,000 nodes", true],
      ["live", "execution page (DAG), in progress (read each view)", false],
    ] as const) {
      const real = stat(name);
      const peer = stat(`${name}-static`);
      for (const p of ["p50", "p99"] as const)
        rows.push({
          figure: `${figure} ${p}`,
          value: real[p],
          peer: `static JSON, same size (${Math.round((sizes[name] ?? 0) / 1024)} KiB) ${p}`,
          peerValue: peer[p],
          target: held ? `<= ${TARGET_RATIO}x` : "reported",
          met: !held || real[p] <= TARGET_RATIO * peer[p],
        });
    }
    rows.push({
      figure: "execution page, first render (dagre layout, then kept)",
      value: first.ms,
      peer: "static JSON, same size, first request",
      peerValue: firstStatic.ms,
      target: "reported",
      met: true,
    });
    return rows;
  } finally {
    const s = server as ServerType | null;
    if (s) await new Promise<void>((resolve) => s.close(() => resolve()));
    await opened.close();
  }
}
