/** `npm run bench`: every benchmark, one table. Figures are medians; ratios are against a peer or floor measured in the same run. */
import { benchHash } from "./hash.js";
import { printTable, type Row } from "./lib.js";

const rows: Row[] = [...benchHash()];
printTable(rows);
process.exitCode = rows.every((r) => r.met) ? 0 : 1;
