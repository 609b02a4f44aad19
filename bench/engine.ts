import { fileURLToPath } from "node:url";
import { Logger, runMigrations } from "graphile-worker";
import type { TreeEntry } from "../core/hash/sources.js";
import { openStore } from "../db/store.js";
import type { ChildJob, ChildResult, RunResult } from "./engine-child.js";
import { type Row, registerSpec, runChild } from "./lib.js";
import { adminUrl, withScratchDatabases } from "./scratch-db.js";

const CHAIN = 100;
const CHAIN_RUNS = 3;
const FANOUT = 6_000;
const SMALL_FANOUTS = [500, 1_000];
/** Leaves share this many tasks (a spec has at most 1,000 tasks). */
const LEAF_TASKS = 10;
const WARM_CHAIN = 10;
const MAX_PARALLEL = 64;
const TICK_MS = 1_000;
const GRAPHILE_CONCURRENCY = 10;
/** Targets (the issue): the chain under 1 s (10 ms a hop), the 6,000 leaves under 6 s. */
const CHAIN_UNDER_MS = 1_000;
const FANOUT_UNDER_MS = 6_000;
const RSS_UNDER_MB = 200;
/** A Reprise run still going after this long is stopped and reported as "> limit". */
const LIMIT_MS = 120_000;
/** Beyond the runs' own limits: warm-up, start-up, Graphile Worker's runs. */
const CHILD_GRACE_MS = 180_000;

const REPO = "github.com/acme/engine-bench";
const SHA = "e".repeat(40);
const TREE: TreeEntry[] = ["hop", "root", "leaf"].map((name, i) => ({
  path: `src/${name}.py`,
  mode: "100644",
  sha: String(i + 1).padStart(40, "0"),
}));

/** One version holding every shape: a warm-up chain, the chain, and the fan-outs. */
export function engineSpec(): string {
  const lines = [
    "version: 1",
    `defaults: { image: "registry.example.com/noop@sha256:${"a".repeat(64)}", retries: 0 }`,
    "tasks:",
    "  hop: { command: [hop], sources: [src/hop.py], inputs: { v: integer }, outputs: { v: integer }, cache: false }",
    "  root: { command: [root], sources: [src/root.py], outputs: { v: integer }, cache: false }",
  ];
  for (let t = 0; t < LEAF_TASKS; t++)
    lines.push(
      `  leaf-${t}: { command: [leaf, "${t}"], sources: [src/leaf.py], inputs: { v: integer }, outputs: { v: integer }, cache: false }`,
    );
  lines.push("workflows:");
  const chain = (name: string, n: number) => {
    lines.push(`  ${name}:`, "    nodes:");
    const id = (i: number) => `n${String(i).padStart(3, "0")}`;
    lines.push(`      ${id(0)}: { task: hop, inputs: { v: 0 } }`);
    for (let i = 1; i < n; i++)
      lines.push(
        `      ${id(i)}: { task: hop, inputs: { v: "\${{ nodes.${id(i - 1)}.outputs.v }}" } }`,
      );
    lines.push(`    outputs: { v: "\${{ nodes.${id(n - 1)}.outputs.v }}" }`);
  };
  const fanout = (name: string, leaves: number) => {
    lines.push(`  ${name}:`, "    nodes:", "      root: { task: root }");
    for (let i = 0; i < leaves; i++)
      lines.push(
        `      l${i}: { task: leaf-${i % LEAF_TASKS}, inputs: { v: "\${{ nodes.root.outputs.v }}" } }`,
      );
  };
  chain("warm", WARM_CHAIN);
  chain("chain", CHAIN);
  for (const n of [...SMALL_FANOUTS, FANOUT]) fanout(`fanout-${n}`, n);
  return `${lines.join("\n")}\n`;
}

export async function benchEngine(): Promise<Row[]> {
  const started = performance.now();
  const log = (what: string) => progress(what, started);
  return withScratchDatabases(
    adminUrl(),
    ["engine", "graphile"],
    "bench/engine",
    async ([repriseUrl, graphileUrl]) => {
      const rUrl = repriseUrl as string;
      const gUrl = graphileUrl as string;
      const opened = await openStore({ databaseUrl: rUrl, migrate: true });
      try {
        await registerSpec(opened.store, { repo: REPO, sha: SHA }, engineSpec(), TREE);
        const make = async (workflow: string, nodes: number) => {
          const e = await opened.store.executions.create({
            repo: REPO,
            sha: SHA,
            workflow,
            inputs: {},
            trigger: { kind: "cli", actor: "bench" },
          });
          return { id: e.id, nodes };
        };
        const reprise = async (runs: { id: string; nodes: number }[]) =>
          child({
            kind: "reprise",
            url: rUrl,
            warm: (await make("warm", WARM_CHAIN)).id,
            runs,
            maxParallel: MAX_PARALLEL,
            tickMs: TICK_MS,
            limitMs: LIMIT_MS,
          });
        await runMigrations({ connectionString: gUrl, logger: quietLogger() });
        log("registered the version, migrated graphile-worker");

        const chainRuns = await reprise(
          await Promise.all(Array.from({ length: CHAIN_RUNS }, () => make("chain", CHAIN))),
        );
        log(`reprise chain: ${describe(chainRuns)}`);
        const peerChainRuns = await child({
          kind: "graphile-chain",
          url: gUrl,
          jobs: CHAIN,
          runs: CHAIN_RUNS,
          concurrency: GRAPHILE_CONCURRENCY,
        });
        log(`graphile chain: ${describe(peerChainRuns)}`);
        const peerFanouts = await child({
          kind: "graphile-fanout",
          url: gUrl,
          sizes: [...SMALL_FANOUTS, FANOUT],
          concurrency: GRAPHILE_CONCURRENCY,
        });
        log(`graphile fan-outs: ${describe(peerFanouts)}`);
        const smallFanouts = await reprise(
          await Promise.all(SMALL_FANOUTS.map((n) => make(`fanout-${n}`, n + 1))),
        );
        log(`reprise fan-outs: ${describe(smallFanouts)}`);
        const fanouts = await reprise([await make(`fanout-${FANOUT}`, FANOUT + 1)]);
        log(`reprise fan-out: ${describe(fanouts)}`);
        return tableRows(
          chainRuns.runs,
          peerChainRuns.runs,
          smallFanouts.runs,
          fanouts,
          peerFanouts,
        );
      } finally {
        await opened.close();
      }
    },
  );
}

function tableRows(
  chainRuns: RunResult[],
  peerChainRuns: RunResult[],
  smallFanouts: RunResult[],
  fanout: ChildResult,
  peerFanouts: ChildResult,
): Row[] {
  const f = fanout.runs[0] as RunResult;
  const chain = median(chainRuns.map((r) => r.ms));
  const peerChain = median(peerChainRuns.map((r) => r.ms));
  const rows: Row[] = [
    {
      figure: `engine: ${CHAIN}-node chain, total (median of ${CHAIN_RUNS})`,
      value: chain,
      peer: `Graphile Worker, ${CHAIN}-job chain`,
      peerValue: peerChain,
      target: `< ${CHAIN_UNDER_MS / 1000} s`,
      met: chain < CHAIN_UNDER_MS,
    },
    {
      figure: "engine: chain, per hop",
      value: chain / CHAIN,
      peer: "Graphile Worker, per hop",
      peerValue: peerChain / CHAIN,
      target: `< ${CHAIN_UNDER_MS / CHAIN} ms and <= peer`,
      met: chain < CHAIN_UNDER_MS && chain <= peerChain,
    },
  ];
  const peerBySize = new Map(
    [...SMALL_FANOUTS, FANOUT].map((n, i) => [n, peerFanouts.runs[i] as RunResult]),
  );
  SMALL_FANOUTS.forEach((n, i) => {
    const r = smallFanouts[i] as RunResult;
    rows.push(fanoutRow(n, r, peerBySize.get(n) as RunResult, null));
  });
  const peerF = peerBySize.get(FANOUT) as RunResult;
  rows.push(fanoutRow(FANOUT, f, peerF, FANOUT_UNDER_MS));
  // The root is not a leaf; every job of the peer is one.
  const leafRate = Math.max(0, f.done - 1) / (f.ms / 1000);
  const peerRate = peerF.done / (peerF.ms / 1000);
  rows.push({
    figure: `engine: ${FANOUT.toLocaleString("en")}-leaf fan-out, throughput${f.stopped ? " (stopped)" : ""}`,
    value: leafRate,
    peer: `Graphile Worker, ${FANOUT.toLocaleString("en")} jobs`,
    peerValue: peerRate,
    target: ">= 2x peer",
    met: !f.stopped && leafRate >= 2 * peerRate,
    unit: "nodes/s",
  });
  rows.push({
    figure: `runner RSS peak, ${FANOUT.toLocaleString("en")}-leaf fan-out (idle ${fanout.idleRssMb.toFixed(0)} MB, tsx)`,
    value: f.rssPeakMb,
    peer: `Graphile Worker, ${FANOUT.toLocaleString("en")} jobs (idle ${peerFanouts.idleRssMb.toFixed(0)} MB)`,
    peerValue: peerF.rssPeakMb,
    target: `< ${RSS_UNDER_MB} MB`,
    met: f.rssPeakMb < RSS_UNDER_MB,
    unit: "MB",
  });
  return rows;
}

/** A fan-out's total time; `underMs` is its target, or null for a figure only reported. */
function fanoutRow(leaves: number, r: RunResult, peer: RunResult, underMs: number | null): Row {
  const n = leaves.toLocaleString("en");
  const limit = `${LIMIT_MS / 1000} s`;
  return {
    figure: r.stopped
      ? `engine: ${n}-leaf fan-out, total: > ${limit} (stopped, ${Math.max(0, r.done - 1)} leaves done)`
      : `engine: ${n}-leaf fan-out, total (${Math.round(leaves / (r.ms / 1000))} leaves/s)`,
    value: r.ms,
    peer: `Graphile Worker, ${n} jobs`,
    peerValue: peer.ms,
    target: underMs === null ? "reported" : `< ${underMs / 1000} s`,
    met: !r.stopped && (underMs === null || r.ms < underMs),
  };
}

/** Runs one measurement in a child process (the same tsx loader) and returns its result. */
function child(job: ChildJob): Promise<ChildResult> {
  const file = fileURLToPath(new URL("./engine-child.ts", import.meta.url));
  // Each run stops itself at LIMIT_MS; this only catches a child that hangs anyway.
  const runs = job.kind === "reprise" ? job.runs.length : 1;
  return runChild(file, job, runs * LIMIT_MS + CHILD_GRACE_MS);
}

function quietLogger(): Logger {
  return new Logger(() => (level, message) => {
    if (level === "error") process.stderr.write(`bench/engine: graphile: ${message}\n`);
  });
}

function describe(result: ChildResult): string {
  const runs = result.runs.map(
    (r) =>
      `${r.done}/${r.total} in ${r.ms.toFixed(0)} ms${r.stopped ? " (stopped)" : ""}, ` +
      `${r.queries} queries (${(r.queries / r.total).toFixed(1)} each), RSS peak ${r.rssPeakMb.toFixed(0)} MB`,
  );
  return `${runs.join("; ")}; idle RSS ${result.idleRssMb.toFixed(0)} MB, process max RSS ${result.maxRssMb.toFixed(0)} MB`;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] as number;
}

function progress(what: string, since: number): void {
  process.stderr.write(
    `bench/engine: ${what} (${((performance.now() - since) / 1000).toFixed(1)} s)\n`,
  );
}
