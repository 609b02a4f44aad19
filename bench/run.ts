/**
 * `npm run bench`: every benchmark, one table, also written to bench/RESULTS.md;
 * `npm run bench -- engine store` runs only those (and writes nothing).
 * Figures are medians, percentiles or throughputs; ratios are against a peer or floor measured in
 * the same run. The store and engine benchmarks need Postgres (DATABASE_URL, default
 * postgres://postgres@127.0.0.1:5432/test).
 */
import { writeFileSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { fileURLToPath } from "node:url";
import { benchArtifacts } from "./artifacts.js";
import { benchChaos } from "./chaos.js";
import { benchCliSpawn } from "./cli-spawn.js";
import { benchEngine } from "./engine.js";
import { benchGitHub } from "./github.js";
import { benchHash } from "./hash.js";
import { benchKubernetes } from "./kubernetes.js";
import { printTable, type Row, resultsMarkdown } from "./lib.js";
import { benchLoad } from "./load.js";
import { benchLocalExecutor } from "./local-executor.js";
import { benchSpecWorker } from "./spec-worker.js";
import { benchStore } from "./store.js";
import { benchUi } from "./ui.js";

const BENCHES: Record<string, () => Row[] | Promise<Row[]>> = {
  hash: benchHash,
  store: benchStore,
  engine: benchEngine,
  "local-executor": benchLocalExecutor,
  load: benchLoad,
  chaos: benchChaos,
  kubernetes: benchKubernetes,
  github: benchGitHub,
  ui: benchUi,
  artifacts: benchArtifacts,
  "spec-worker": benchSpecWorker,
  "cli-spawn": benchCliSpawn,
};

const wanted = process.argv.slice(2);
const unknown = wanted.filter((w) => !(w in BENCHES));
if (unknown.length > 0) {
  process.stderr.write(
    `bench: unknown benchmark ${unknown.join(", ")}; choose from ${Object.keys(BENCHES).join(", ")}\n`,
  );
  process.exit(2);
}
const rows: Row[] = [];
for (const [name, run] of Object.entries(BENCHES))
  if (wanted.length === 0 || wanted.includes(name)) rows.push(...(await run()));
printTable(rows);
// The whole set (not a selection) is the record: bench/RESULTS.md, linked from the README.
if (wanted.length === 0) {
  const file = fileURLToPath(new URL("./RESULTS.md", import.meta.url));
  writeFileSync(file, resultsMarkdown(rows, { load: loadavg(), cpus: cpus().length }));
  process.stderr.write(`bench: wrote ${file}\n`);
}
process.exitCode = rows.every((r) => r.met) ? 0 : 1;
