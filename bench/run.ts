/**
 * `npm run bench`: every benchmark, one table. Figures are medians, percentiles or throughputs;
 * ratios are against a peer or floor measured in the same run. The store and engine benchmarks
 * need Postgres (DATABASE_URL, default postgres://postgres@127.0.0.1:5432/test).
 */
import { benchEngine } from "./engine.js";
import { benchHash } from "./hash.js";
import { printTable, type Row } from "./lib.js";
import { benchLocalExecutor } from "./local-executor.js";
import { benchStore } from "./store.js";

const rows: Row[] = [
  ...benchHash(),
  ...(await benchStore()),
  ...(await benchEngine()),
  ...(await benchLocalExecutor()),
];
printTable(rows);
process.exitCode = rows.every((r) => r.met) ? 0 : 1;
