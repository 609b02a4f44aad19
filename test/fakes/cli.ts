/**
 * Runs the real `reprise` entry point in a child process, as a user would: the CLI bundled once
 * per test run (test/setup/cli-bundle.ts), run by plain `node`.
 */
import { spawn, spawnSync } from "node:child_process";
import { join } from "node:path";
import { inject } from "vitest";

export const ROOT = join(import.meta.dirname, "../..");

/**
 * What follows `node` (process.execPath) to run `reprise ...args`. Every test that spawns the
 * CLI uses this, so they all run the same build of it.
 */
export function cliArgs(...args: string[]): string[] {
  const bundle = inject("cliBundle");
  if (!bundle)
    throw new Error(
      "no bundled CLI: run the tests through vitest with vitest.config.ts, whose globalSetup (test/setup/global-setup.ts) bundles it",
    );
  if ("error" in bundle)
    throw new Error(`the CLI did not bundle (test/setup/cli-bundle.ts): ${bundle.error}`);
  // Stack traces name the .ts sources (the bundle carries source maps).
  return ["--enable-source-maps", bundle.path, ...args];
}

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
  const r = spawnSync(process.execPath, cliArgs(...args), {
    cwd: opts.cwd,
    encoding: "utf8",
    env: env as NodeJS.ProcessEnv,
    timeout: 120_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

export interface Background {
  /** What the server printed as its address ("listening on URL"); "" for a `ready` match. */
  url: string;
  /** Everything it wrote on stderr so far. */
  stderr(): string;
  /** SIGTERM, then its exit code and everything it wrote on stderr. */
  stop(): Promise<{ code: number | null; stderr: string }>;
}

/**
 * Starts a long-running command (`serve`) and waits until it says where it listens, or, for one
 * that does not listen (`worker`), until its stderr matches `ready`.
 */
export function repriseBackground(
  opts: { cwd: string; env?: Record<string, string | undefined>; ready?: RegExp },
  ...args: string[]
): Promise<Background> {
  const env: Record<string, string | undefined> = { ...process.env, NODE_OPTIONS: "", ...opts.env };
  for (const [k, v] of Object.entries(env)) if (v === undefined) delete env[k];
  const child = spawn(process.execPath, cliArgs(...args), {
    cwd: opts.cwd,
    env: env as NodeJS.ProcessEnv,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  const exited = new Promise<number | null>((resolve) =>
    child.once("exit", (code) => resolve(code)),
  );
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`no "${opts.ready ?? "listening on"}" within 60 s; stderr:\n${stderr}`));
    }, 60_000);
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
      stderr += chunk;
      const m = /listening on (\S+)/.exec(stderr);
      if (opts.ready ? opts.ready.test(stderr) : m) {
        clearTimeout(timer);
        resolve({
          url: opts.ready ? "" : (m?.[1] as string),
          stderr: () => stderr,
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
