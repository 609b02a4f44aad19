/** Runs the real `reprise` entry point in a child process, as a user would (through tsx). */
import { spawn, spawnSync } from "node:child_process";
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

export interface Background {
  /** What the server printed as its address ("listening on URL"). */
  url: string;
  /** SIGTERM, then its exit code and everything it wrote on stderr. */
  stop(): Promise<{ code: number | null; stderr: string }>;
}

/** Starts a long-running command (`serve`) and waits until it says where it listens. */
export function repriseBackground(
  opts: { cwd: string; env?: Record<string, string | undefined> },
  ...args: string[]
): Promise<Background> {
  const env: Record<string, string | undefined> = { ...process.env, NODE_OPTIONS: "", ...opts.env };
  for (const [k, v] of Object.entries(env)) if (v === undefined) delete env[k];
  const child = spawn(
    process.execPath,
    ["--import", TSX, join(ROOT, "runner/cli/bin.ts"), ...args],
    {
      cwd: opts.cwd,
      env: env as NodeJS.ProcessEnv,
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  let stderr = "";
  const exited = new Promise<number | null>((resolve) =>
    child.once("exit", (code) => resolve(code)),
  );
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`no "listening on" within 60 s; stderr:\n${stderr}`));
    }, 60_000);
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
      stderr += chunk;
      const m = /listening on (\S+)/.exec(stderr);
      if (m) {
        clearTimeout(timer);
        resolve({
          url: m[1] as string,
          stop: async () => {
            child.kill("SIGTERM");
            return { code: await exited, stderr };
          },
        });
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`exited ${code} before listening; stderr:\n${stderr}`));
    });
  });
}
