/**
 * `npm run bench`: every benchmark, one table; `npm run bench -- engine store` runs only those.
 * Figures are medians, percentiles or throughputs; ratios are against a peer or floor measured in
 * the same run. The store and engine benchmarks need Postgres (DATABASE_URL, default
 * postgres://postgres@127.0.0.1:5432/test).
 */
import { benchEngine } from "./engine.js";
import { benchGitHub } from "./github.js";
import { benchHash } from "./hash.js";
import { benchKubernetes } from "./kubernetes.js";
import { printTable, type Row } from "./lib.js";
import { benchLocalExecutor } from "./local-executor.js";
import { benchStore } from "./store.js";
import { benchUi } from "./ui.js";

const BENCHES: Record<string, () => Row[] | Promise<Row[]>> = {
  hash: benchHash,
  store: benchStore,
  engine: benchEngine,
  "local-executor": benchLocalExecutor,
  kubernetes: benchKubernetes,
  github: benchGitHub,
  ui: benchUi,
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
process.exitCode = rows.every((r) => r.met) ? 0 : 1;
