/**
 * SIGKILL at random points (issue 9), too long for a test, so it checks and prints here: a
 * 50-node workflow (10 layers of 5, every node reading the layer before) of real task processes,
 * run by `reprise run` on the embedded default and killed with SIGKILL after a random number of
 * its tasks have started (1 to 45), 20
 * times over; after each kill `reprise worker --once` finishes the execution. Checked each
 * round: the execution SUCCEEDED; every node's task started exactly once (a task running at the
 * kill is re-attached, not started again); every cache entry has a succeeded node behind it.
 */
import { execFileSync, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { sql } from "drizzle-orm";
import { rows } from "../db/query.js";
import { openStore } from "../db/store.js";
import type { Row } from "./lib.js";

const ROUNDS = 20;
const LAYERS = 10;
const WIDTH = 5;
const ROOT = join(import.meta.dirname, "..");
const TSX = pathToFileURL(join(ROOT, "node_modules/tsx/dist/loader.mjs")).href;
const BIN = join(ROOT, "runner/cli/bin.ts");

const TASK = `import { appendFileSync, readFileSync, writeFileSync } from "node:fs";
const env = process.env;
const inputs = JSON.parse(readFileSync(env.REPRISE_INPUTS, "utf8"));
appendFileSync(env.COUNT_FILE, env.REPRISE_EXECUTION_ID + " " + env.REPRISE_NODE_ID + "\\n");
await new Promise((r) => setTimeout(r, 50 + Math.floor(Math.random() * 150)));
writeFileSync(env.REPRISE_OUTPUTS, JSON.stringify({ v: JSON.stringify(inputs).length }));
`;

function spec(count: string): string {
  const lines = [
    "version: 1",
    "defaults: { image: node:20 }",
    "tasks:",
    `  step: { command: [${JSON.stringify(process.execPath)}, task.mjs], env: { COUNT_FILE: ${JSON.stringify(count)} }, inputs: { round: string, up: json }, outputs: { v: integer }, sources: [task.mjs] }`,
    "workflows:",
    "  wide:",
    "    inputs: { round: string }",
    "    nodes:",
  ];
  for (let l = 0; l < LAYERS; l++)
    for (let w = 0; w < WIDTH; w++) {
      const up =
        l === 0
          ? "[]"
          : `[${Array.from({ length: WIDTH }, (_, k) => `"\${{ nodes.n${l - 1}-${k}.outputs.v }}"`).join(", ")}]`;
      lines.push(
        `      n${l}-${w}: { task: step, inputs: { round: "\${{ inputs.round }}", up: ${up} } }`,
      );
    }
  return `${lines.join("\n")}\n`;
}

function lines(file: string): number {
  return existsSync(file) ? readFileSync(file, "utf8").split("\n").length - 1 : 0;
}

/** A CLI process; what it writes on stderr is kept (stdout, its documents, is not needed). */
function cli(cwd: string, env: NodeJS.ProcessEnv, ...args: string[]) {
  const child = spawn(process.execPath, ["--import", TSX, BIN, ...args], {
    cwd,
    env,
    stdio: ["ignore", "ignore", "pipe"],
  });
  const said = { stderr: "" };
  child.stderr.setEncoding("utf8").on("data", (d: string) => {
    said.stderr += d;
  });
  return Object.assign(child, { said });
}

export async function benchChaos(): Promise<Row[]> {
  const work = mkdtempSync(join(tmpdir(), "reprise-chaos-"));
  const repo = join(work, "repo");
  const count = join(work, "count");
  const git = (...args: string[]) =>
    execFileSync("git", ["-C", repo, ...args], {
      env: { ...process.env, GIT_CONFIG_NOSYSTEM: "1", GIT_CONFIG_GLOBAL: "/dev/null" },
    });
  execFileSync("git", ["init", "-q", "-b", "main", repo]);
  writeFileSync(join(repo, "reprise.yaml"), spec(count));
  writeFileSync(join(repo, "task.mjs"), TASK);
  git("add", "-A");
  git("-c", "user.name=chaos", "-c", "user.email=chaos@example.com", "commit", "-qm", "wide");
  const env = {
    ...process.env,
    NODE_OPTIONS: "",
    DATABASE_URL: "",
    REPRISE_DATA_DIR: join(work, "data"),
    REPRISE_MAX_PARALLEL: "5",
  };
  const problems: string[] = [];
  let killedMidRun = 0;
  const started = performance.now();
  try {
    for (let round = 0; round < ROUNDS; round++) {
      const child = cli(repo, env, "run", "wide", "-i", `round=${round}`, "--json");
      let running = true;
      const exited = new Promise<void>((r) =>
        child.once("exit", () => {
          running = false;
          r();
        }),
      );
      // A random point of the run: after its k-th task started (k in 1..45 of 50).
      const before = lines(count);
      const k = 1 + Math.floor(Math.random() * 45);
      while (running && lines(count) < before + k) await new Promise((r) => setTimeout(r, 10));
      if (running) child.kill("SIGKILL");
      await exited;
      if (child.exitCode === 2) {
        problems.push(`round ${round}: reprise run refused the workflow: ${child.said.stderr}`);
        break;
      }
      if (child.signalCode === "SIGKILL") killedMidRun++;
      const worker = cli(repo, env, "worker", "--once");
      await new Promise<void>((r) => worker.once("exit", () => r()));
      if (worker.exitCode !== 0)
        problems.push(
          `round ${round}: worker --once exited ${worker.exitCode}: ${worker.said.stderr}`,
        );
      // Every execution SUCCEEDED, and each node started once, across rounds so far.
      const open = await openStore({ dataDir: env.REPRISE_DATA_DIR });
      try {
        const states = await rows<{ state: string; n: number }>(
          open.store.db,
          sql`select state, count(*)::int as n from executions group by state`,
        );
        const other = states.filter((s) => s.state !== "SUCCEEDED");
        if (other.length > 0) problems.push(`round ${round}: executions ${JSON.stringify(other)}`);
        const orphans = await rows<{ key: string }>(
          open.store.db,
          sql`select c.key from cache_entries c where not exists (
                select 1 from node_executions n where n.execution_id = c.source_execution_id
                   and n.node_id = c.source_node_id and n.state = 'SUCCEEDED')`,
        );
        if (orphans.length > 0)
          problems.push(`round ${round}: ${orphans.length} cache entries without a succeeded node`);
      } finally {
        await open.close();
      }
    }
    const starts = new Map<string, number>();
    if (existsSync(count))
      for (const line of readFileSync(count, "utf8").split("\n").filter(Boolean))
        starts.set(line, (starts.get(line) ?? 0) + 1);
    const twice = [...starts.entries()].filter(([, n]) => n > 1);
    if (twice.length > 0)
      problems.push(
        `${twice.length} nodes started more than once: ${twice
          .slice(0, 3)
          .map(([k]) => k)
          .join(", ")}`,
      );
    if (starts.size !== ROUNDS * LAYERS * WIDTH)
      problems.push(`${starts.size} node runs, expected ${ROUNDS * LAYERS * WIDTH}`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  const ms = performance.now() - started;
  for (const p of problems) process.stderr.write(`bench/chaos: ${p}\n`);
  process.stderr.write(
    `bench/chaos: ${ROUNDS} rounds, ${killedMidRun} killed mid-run, ${problems.length} problems, ${(ms / 1000).toFixed(0)} s\n`,
  );
  return [
    {
      figure: `chaos: SIGKILL at a random point of a ${LAYERS * WIDTH}-node run, ${ROUNDS} times (${killedMidRun} mid-run)`,
      value: problems.length,
      peer: "problems allowed",
      peerValue: 1,
      target: "0 lost, 0 run twice",
      met: problems.length === 0 && killedMidRun > 0,
      unit: "problems",
    },
  ];
}
