/** Runs the real `reprise` entry point in a child process, as a user would (through tsx). */
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

export const ROOT = join(import.meta.dirname, "../..");
const TSX = pathToFileURL(join(ROOT, "node_modules/tsx/dist/loader.mjs")).href;

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function reprise(
  opts: { cwd: string; env?: Record<string, string | undefined> },
  ...args: string[]
): CliResult {
  const env: Record<string, string | undefined> = { ...process.env, NODE_OPTIONS: "", ...opts.env };
  for (const [k, v] of Object.entries(env)) if (v === undefined) delete env[k];
  const r = spawnSync(
    process.execPath,
    ["--import", TSX, join(ROOT, "runner/cli/bin.ts"), ...args],
    {
      cwd: opts.cwd,
      encoding: "utf8",
      env: env as NodeJS.ProcessEnv,
      timeout: 120_000,
    },
  );
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}
