/**
 * The local executor's overhead (docs/design.md section 13): 200 trivial tasks (`true`) through the
 * real engine and LocalExecutor, against 200 bare `child_process.spawn("true")` with the same
 * concurrency, in the same run. Also reported, to split the overhead into its parts: the same
 * 200 nodes through the engine with the no-op executor (the engine's share), and 200 attempts
 * through LocalExecutor alone, launch then wait, 8 at a time (the executor's share: no store,
 * no engine).
 *
 * The store is an in-memory PGlite, the embedded default that the local executor runs with
 * (`reprise run` on a laptop). The version is a real temporary git repository registered with
 * registerLocalCommit, because the executor checks the commit out (`git archive`, once per SHA:
 * the unmeasured warm-up execution pays it). Tasks are `cache: false`, maxParallel 8.
 */
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { attemptName } from "../core/engine/attempt-name.js";
import { openStore, type Store } from "../db/store.js";
import { Engine } from "../runner/engine/engine.js";
import { createLocalExecutor } from "../runner/executors/local/index.js";
import type { Executor, LaunchSpec } from "../runner/executors/types.js";
import { registerLocalCommit } from "../runner/registry.js";
import { printTable, type Row } from "./lib.js";
import { NoopExecutor } from "./noop-executor.js";

const TASKS = 200;
const PARALLEL = 8;
/** Odd, for a true median; each round measures all four, so drift weighs on each alike. */
const ROUNDS = Number(process.env.BENCH_LOCAL_ROUNDS ?? 5);
const WARM = PARALLEL;

function spec(): string {
  const lines = [
    "version: 1",
    "tasks:",
    `  noop: { image: "busybox@sha256:${"b".repeat(64)}", command: ["true"], sources: [reprise.yaml], cache: false }`,
    "workflows:",
  ];
  for (const [name, n] of [
    ["warm", WARM],
    ["fan", TASKS],
  ] as const) {
    lines.push(`  ${name}:`, "    nodes:");
    for (let i = 0; i < n; i++) lines.push(`      t${i}: { task: noop }`);
  }
  return `${lines.join("\n")}\n`;
}

export async function benchLocalExecutor(): Promise<Row[]> {
  const started = performance.now();
  const tmp = mkdtempSync(join(tmpdir(), "reprise-bench-local-"));
  const opened = await openStore({ memory: true, migrate: true });
  const local = createLocalExecutor({ dataDir: join(tmp, "data"), env: process.env });
  try {
    const repo = gitRepo(join(tmp, "repo"));
    const { version } = await registerLocalCommit(opened.store, repo, "HEAD");
    if (version.status !== "registered")
      throw new Error(`invalid spec: ${version.errors.map((e) => e.message).join("; ")}`);
    const engine = (executor: Executor) =>
      new Engine({
        store: opened.store,
        executor,
        owner: "bench",
        maxParallel: PARALLEL,
        tickMs: 1_000,
      });
    const withLocal = engine(local);
    const withNoop = engine(new NoopExecutor());
    const drive = async (on: Engine, workflow: string) => {
      const id = await create(opened.store, version.repo, version.sha, workflow);
      const t = performance.now();
      const e = await on.drive(id);
      const ms = performance.now() - t;
      if (e.state !== "SUCCEEDED")
        throw new Error(`${workflow} ended ${e.state}: ${e.error?.message}`);
      return ms;
    };
    // Warm-up: the checkout of the SHA, the spawn path, the store's caches, the JIT.
    await drive(withLocal, "warm");
    await drive(withNoop, "warm");
    await spawnAll(WARM, PARALLEL);
    const direct = (round: string, n: number) =>
      timed(() => launchAll(local, version.repo, version.sha, round, n, PARALLEL));
    await direct("warm", WARM);
    progress("registered the version, warmed up (checkout done)", started);

    // Alternated, so drift during the run weighs on each alike.
    const ms = {
      floor: [] as number[],
      local: [] as number[],
      noop: [] as number[],
      direct: [] as number[],
    };
    for (let r = 0; r < ROUNDS; r++) {
      ms.floor.push(await timed(() => spawnAll(TASKS, PARALLEL)));
      ms.local.push(await drive(withLocal, "fan"));
      ms.noop.push(await drive(withNoop, "fan"));
      ms.direct.push(await direct(`round${r}`, TASKS));
    }
    const floor = median(ms.floor);
    const viaLocal = median(ms.local);
    const viaNoop = median(ms.noop);
    const viaExecutor = median(ms.direct);
    const list = (values: number[]) => values.map((v) => v.toFixed(0)).join("/");
    // On a shared machine the floor moves too: the ratio within each round says more than
    // the ratio of medians, so print those as well.
    const ratios = (values: number[]) =>
      values.map((v, i) => (v / (ms.floor[i] as number)).toFixed(2)).join("/");
    progress(
      `floor ${list(ms.floor)} ms, local ${list(ms.local)} ms, noop ${list(ms.noop)} ms, executor alone ${list(ms.direct)} ms`,
      started,
    );
    progress(
      `ratios to the floor, round by round: local ${ratios(ms.local)} (median ${median(ms.local.map((v, i) => v / (ms.floor[i] as number))).toFixed(2)}), noop ${ratios(ms.noop)}, executor alone ${ratios(ms.direct)} (median ${median(ms.direct.map((v, i) => v / (ms.floor[i] as number))).toFixed(2)})`,
      started,
    );
    const floorName = `${TASKS} x spawn("true"), ${PARALLEL} at a time`;
    return [
      {
        figure: `local executor: ${TASKS} x true via engine (PGlite, maxParallel ${PARALLEL}, median of ${ROUNDS})`,
        value: viaLocal,
        peer: floorName,
        peerValue: floor,
        target: "< 1.5x floor",
        met: viaLocal < 1.5 * floor,
      },
      {
        figure: `  the same ${TASKS} nodes via engine + no-op executor (engine's share)`,
        value: viaNoop,
        peer: floorName,
        peerValue: floor,
        target: "reported",
        met: true,
      },
      {
        figure: `  ${TASKS} x true via LocalExecutor alone, launch + wait (executor's share)`,
        value: viaExecutor,
        peer: floorName,
        peerValue: floor,
        target: "reported",
        met: true,
      },
    ];
  } finally {
    await local.close();
    await opened.close();
    rmSync(tmp, { recursive: true, force: true });
  }
}

async function create(store: Store, repo: string, sha: string, workflow: string) {
  const e = await store.executions.create({
    repo,
    sha,
    workflow,
    inputs: {},
    trigger: { kind: "cli", actor: "bench" },
  });
  return e.id;
}

/**
 * `n` attempts of `true` straight through the executor, `parallel` at a time, each launched
 * and waited for, as the engine does; every one must succeed.
 */
async function launchAll(
  executor: Executor,
  repo: string,
  sha: string,
  round: string,
  n: number,
  parallel: number,
): Promise<void> {
  let next = 0;
  const one = async (i: number) => {
    const spec: LaunchSpec = {
      handle: attemptName(`bench-${round}`, `t${i}`, 1),
      repo,
      sha,
      executionId: `bench-${round}`,
      nodeId: `t${i}`,
      attempt: 1,
      taskName: "noop",
      taskDigest: `sha256:${"d".repeat(64)}`,
      image: `busybox@sha256:${"b".repeat(64)}`,
      command: ["true"],
      env: {},
      workdir: ".",
      inputs: {},
      outputs: {},
      timeoutSeconds: 60,
      secrets: {},
    };
    await executor.launch(spec);
    const outcome = await executor.wait(spec);
    if (!outcome.ok) throw new Error(`attempt ${spec.handle}: ${outcome.error.message}`);
  };
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      while (next < n) await one(next++);
    }),
  );
}

/** A git repository with the spec committed, fixed identity and dates; returns its directory. */
function gitRepo(dir: string): string {
  const env = {
    ...process.env,
    GIT_AUTHOR_NAME: "Bench",
    GIT_AUTHOR_EMAIL: "bench@example.com",
    GIT_COMMITTER_NAME: "Bench",
    GIT_COMMITTER_EMAIL: "bench@example.com",
    GIT_AUTHOR_DATE: "2026-01-01T00:00:00Z",
    GIT_COMMITTER_DATE: "2026-01-01T00:00:00Z",
  };
  const git = (...args: string[]) => execFileSync("git", args, { cwd: dir, env, stdio: "pipe" });
  execFileSync("git", ["init", "-q", "-b", "main", dir], { env, stdio: "pipe" });
  writeFileSync(join(dir, "reprise.yaml"), spec());
  git("add", "-A");
  git("commit", "-q", "-m", "bench");
  return dir;
}

/** `n` bare spawns of `true`, `parallel` at a time, each awaited to its exit. */
async function spawnAll(n: number, parallel: number): Promise<void> {
  let next = 0;
  const one = () =>
    new Promise<void>((resolve, reject) => {
      const child = spawn("true", [], { stdio: "ignore" });
      child.once("error", reject);
      child.once("exit", (code) =>
        code === 0 ? resolve() : reject(new Error(`true exited ${code}`)),
      );
    });
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      while (next < n) {
        next++;
        await one();
      }
    }),
  );
}

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t = performance.now();
  await fn();
  return performance.now() - t;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] as number;
}

function progress(what: string, since: number): void {
  process.stderr.write(
    `bench/local-executor: ${what} (${((performance.now() - since) / 1000).toFixed(1)} s)\n`,
  );
}

// `npx tsx bench/local-executor.ts` runs this benchmark alone.
if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const rows = await benchLocalExecutor();
  printTable(rows);
  process.exitCode = rows.every((r) => r.met) ? 0 : 1;
}
