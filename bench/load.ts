import { fileURLToPath } from "node:url";
import pg from "pg";
import type { TreeEntry } from "../core/hash/sources.js";
import { openStore, type Store } from "../db/store.js";
import { type Row, registerSpec, runChild } from "./lib.js";
import type { LoadJob, LoadResult } from "./load-child.js";
import { adminUrl, withScratchDatabases } from "./scratch-db.js";

const EXECUTIONS = 1_000;
const HELD = 1_000;
const NODES = 10;
/** The no-op executor costs nothing: capacity is not what this measures. */
const MAX_PARALLEL = 1_000;
const RSS_UNDER_MB = 300;
const FLOOR_COMMITS = 10_000;
const REPO = "github.com/acme/load-bench";
const SHA = "f".repeat(40);
const TREE: TreeEntry[] = [{ path: "src/noop.py", mode: "100644", sha: "1".repeat(40) }];

function spec(): string {
  const lines = [
    "version: 1",
    `defaults: { image: "registry.example.com/noop@sha256:${"a".repeat(64)}", retries: 0 }`,
    "tasks:",
    "  step: { command: [noop], sources: [src/noop.py], inputs: { v: integer }, outputs: { v: integer }, cache: false }",
    "workflows:",
    "  fan:",
    "    nodes:",
    "      root: { task: step, inputs: { v: 0 } }",
  ];
  for (let i = 1; i <= 8; i++)
    lines.push(`      m${i}: { task: step, inputs: { v: "\${{ nodes.root.outputs.v }}" } }`);
  lines.push(
    '      join: { task: step, inputs: { v: "${{ nodes.m8.outputs.v }}" }, after: [m1, m2, m3, m4, m5, m6, m7] }',
  );
  return `${lines.join("\n")}\n`;
}

export async function benchLoad(): Promise<Row[]> {
  return withScratchDatabases(adminUrl(), ["load"], "bench/load", async ([url]) => {
    const u = url as string;
    const opened = await openStore({ databaseUrl: u, migrate: true });
    try {
      await registerSpec(opened.store, { repo: REPO, sha: SHA }, spec(), TREE);
      const floor = await commitFloor(u);
      const ids = await queue(opened.store, EXECUTIONS);
      const t = await child({ kind: "throughput", url: u, ids, maxParallel: MAX_PARALLEL });
      const held = await queue(opened.store, HELD);
      const m = await child({ kind: "memory", url: u, ids: held });
      const execPerS = t.succeeded / (t.ms / 1000);
      const nodesPerS = (t.succeeded * NODES) / (t.ms / 1000);
      const lat = [...t.latencies].sort((a, b) => a - b);
      const p = (q: number) => lat[Math.min(lat.length - 1, Math.floor(q * lat.length))] as number;
      process.stderr.write(
        `bench/load: ${t.succeeded} executions in ${t.ms.toFixed(0)} ms (${execPerS.toFixed(0)}/s, ${nodesPerS.toFixed(0)} nodes/s), ` +
          `latency p50 ${p(0.5).toFixed(1)} ms p99 ${p(0.99).toFixed(1)} ms; floor ${floor.toFixed(0)} commits/s; ` +
          `held ${m.running} running: RSS ${m.rssMb.toFixed(0)} MB (idle ${m.idleRssMb.toFixed(0)} MB)\n`,
      );
      return [
        {
          figure: `load: ${EXECUTIONS.toLocaleString("en")} executions x ${NODES} nodes, throughput (${execPerS.toFixed(0)} executions/s)`,
          value: nodesPerS,
          peer: "single-row update commits, 10 clients",
          peerValue: floor,
          target: "all complete",
          met: t.succeeded === EXECUTIONS,
          unit: "nodes/s",
        },
        {
          figure: "load: node scheduling latency p99",
          value: p(0.99),
          peer: "p50",
          peerValue: p(0.5),
          target: "reported",
          met: true,
        },
        {
          figure: `load: runner RSS with ${HELD.toLocaleString("en")} executions running`,
          value: m.rssMb,
          peer: "the same runner idle",
          peerValue: m.idleRssMb,
          target: `< ${RSS_UNDER_MB} MB`,
          met: m.rssMb < RSS_UNDER_MB && m.succeeded === HELD,
          unit: "MB",
        },
      ];
    } finally {
      await opened.close();
    }
  });
}

async function queue(store: Store, n: number): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i++)
    ids.push(
      (
        await store.executions.create({
          repo: REPO,
          sha: SHA,
          workflow: "fan",
          inputs: {},
          trigger: { kind: "cli", actor: "bench" },
        })
      ).id,
    );
  return ids;
}

/** Commits/s of single-row updates from 10 clients: what the server allows at all. */
async function commitFloor(url: string): Promise<number> {
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  await admin.query("create table if not exists bench_floor (id int primary key, v int)");
  await admin.query(
    "insert into bench_floor select g, 0 from generate_series(1, 1000) g on conflict do nothing",
  );
  const clients = await Promise.all(
    Array.from({ length: 10 }, async () => {
      const c = new pg.Client({ connectionString: url });
      await c.connect();
      return c;
    }),
  );
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    clients.map(async (c) => {
      while (next < FLOOR_COMMITS) {
        const i = next++;
        await c.query("update bench_floor set v = v + 1 where id = $1", [(i % 1000) + 1]);
      }
    }),
  );
  const ms = performance.now() - t0;
  await Promise.all(clients.map((c) => c.end()));
  await admin.query("drop table bench_floor");
  await admin.end();
  return FLOOR_COMMITS / (ms / 1000);
}

function child(job: LoadJob): Promise<LoadResult> {
  return runChild(fileURLToPath(new URL("./load-child.ts", import.meta.url)), job, 600_000);
}
