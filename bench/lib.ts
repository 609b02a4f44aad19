/** Shared by the benchmarks: timing by median of repeated runs, and the result table. */

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
