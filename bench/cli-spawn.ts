/**
 * What one end-to-end test's spawn of the CLI costs (issue 15): `reprise --help` run by plain
 * `node` on the bundle the tests build once per run (test/setup/cli-bundle.ts), against the same
 * command transpiled through tsx's loader, as every spawn did before. The two alternate, so a
 * machine that slows down meanwhile slows both. Target: the bundle at most 0.6x tsx.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { bundleCli, CLI_ENTRY } from "../test/setup/cli-bundle.js";
import type { Row } from "./lib.js";

const RUNS = 9;
const TARGET = 0.6;

export async function benchCliSpawn(): Promise<Row[]> {
  const root = join(import.meta.dirname, "..");
  const dir = mkdtempSync(join(tmpdir(), "reprise-bench-cli-"));
  try {
    const bundle = await bundleCli(dir);
    const tsx = pathToFileURL(join(root, "node_modules/tsx/dist/loader.mjs")).href;
    const bundled = ["--enable-source-maps", bundle, "--help"];
    const transpiled = ["--import", tsx, join(root, CLI_ENTRY), "--help"];
    const time = (args: string[]): number => {
      const start = performance.now();
      const r = spawnSync(process.execPath, args, {
        env: { ...process.env, NODE_OPTIONS: "" },
        encoding: "utf8",
      });
      if (r.status !== 0) throw new Error(`reprise --help exited ${r.status}: ${r.stderr}`);
      return performance.now() - start;
    };
    time(bundled);
    time(transpiled);
    const a: number[] = [];
    const b: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      a.push(time(bundled));
      b.push(time(transpiled));
    }
    const med = (xs: number[]) => xs.sort((x, y) => x - y)[Math.floor(xs.length / 2)] as number;
    const value = med(a);
    const peerValue = med(b);
    return [
      {
        figure: `CLI spawn for the tests: \`reprise --help\` on the esbuild bundle (median of ${RUNS})`,
        value,
        peer: "the same through tsx's loader",
        peerValue,
        target: `<= ${TARGET}x tsx`,
        met: value <= TARGET * peerValue,
      },
    ];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
