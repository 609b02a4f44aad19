/**
 * Shared by the benchmarks: timing by median of repeated runs, the result table, measurements in
 * child processes of their own, and registering a generated spec.
 */
import { fork } from "node:child_process";
import type { TreeEntry } from "../core/hash/sources.js";
import { buildVersion } from "../core/version/build-version.js";
import type { Store } from "../db/store.js";

export interface Row {
  figure: string;
  /** Milliseconds (or the unit in `unit`) of what is measured. */
  value: number;
  peer: string;
  peerValue: number;
  target: string;
  /** Whether the target is met, decided by the benchmark itself. */
  met: boolean;
  unit?: string;
}

/** Median wall time in ms of `fn` over `runs` runs, after `warmup` unmeasured runs. */
export function median(fn: () => unknown, runs = 15, warmup = 3): number {
  for (let i = 0; i < warmup; i++) fn();
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    fn();
    times.push(performance.now() - t);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)] as number;
}

const fmt = (v: number, unit = "ms") => `${v >= 100 ? v.toFixed(0) : v.toFixed(2)} ${unit}`;

/** The table as Markdown, with when and on what load it was measured. */
export function resultsMarkdown(
  rows: readonly Row[],
  machine: { load: number[]; cpus: number },
): string {
  const cell = (s: string) => s.replace(/\|/g, "\\|");
  const lines = [
    "# Benchmark results",
    "",
    `Written by \`npm run bench\` on ${new Date().toISOString().slice(0, 10)}: ${machine.cpus} cores, load average ${machine.load.map((l) => l.toFixed(1)).join(" / ")} (1 / 5 / 15 min) at the end. Every ratio is against a baseline measured in the same run; see each script in bench/ for what it measures.`,
    "",
    "| figure | value | baseline (same run) | ratio | target | |",
    "|---|---|---|---|---|---|",
    ...rows.map(
      (r) =>
        `| ${cell(r.figure)} | ${fmt(r.value, r.unit)} | ${cell(r.peer)}: ${fmt(r.peerValue, r.unit)} | ${(r.value / r.peerValue).toFixed(2)}x | ${cell(r.target)} | ${r.met ? "met" : "**missed**"} |`,
    ),
    "",
  ];
  return lines.join("\n");
}

export function printTable(rows: readonly Row[]): void {
  const lines = rows.map((r) => [
    r.figure,
    fmt(r.value, r.unit),
    `${r.peer}: ${fmt(r.peerValue, r.unit)}`,
    `${(r.value / r.peerValue).toFixed(2)}x`,
    `${r.target} ${r.met ? "(met)" : "(MISSED)"}`,
  ]);
  const header = ["figure", "value", "peer / floor", "ratio", "target"];
  const widths = header.map((h, i) =>
    Math.max(h.length, ...lines.map((l) => (l[i] as string).length)),
  );
  const row = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i] as number)).join("  ");
  console.log(row(header));
  console.log(widths.map((w) => "-".repeat(w)).join("  "));
  for (const l of lines) console.log(row(l));
}

/**
 * Runs `file` (a bench child, same tsx loader) with `job` as its JSON argument and resolves with
 * the one message it sends back; a child still running after `hungMs` is killed.
 * BENCH_CPU_PROF=DIR: the child writes a CPU profile there (Node refuses --cpu-prof in NODE_OPTIONS).
 */
export function runChild<R>(file: string, job: { kind: string }, hungMs: number): Promise<R> {
  return new Promise((resolve, reject) => {
    const prof = process.env.BENCH_CPU_PROF;
    const c = fork(file, [JSON.stringify(job)], {
      stdio: ["ignore", "inherit", "inherit", "ipc"],
      ...(prof ? { execArgv: [...process.execArgv, "--cpu-prof", `--cpu-prof-dir=${prof}`] } : {}),
    });
    const hung = setTimeout(() => c.kill("SIGKILL"), hungMs);
    let result: R | null = null;
    c.on("message", (m) => {
      result = m as R;
    });
    c.on("error", reject);
    c.on("exit", (code, signal) => {
      clearTimeout(hung);
      if (result) resolve(result);
      else reject(new Error(`${file}: the ${job.kind} child exited ${signal ?? code}`));
    });
  });
}

/** Registers a generated spec as the version `sha` of `repo`; a spec that does not build is a bug. */
export async function registerSpec(
  store: Store,
  at: { repo: string; sha: string },
  spec: string,
  tree: TreeEntry[],
): Promise<void> {
  const result = buildVersion(spec, tree);
  if (!result.ok) throw new Error(`generated spec is invalid: ${result.errors[0]?.message}`);
  await store.versions.register({
    ...at,
    parents: [],
    ref: null,
    message: null,
    result,
    by: { source: "git", actor: "cli" },
  });
}
