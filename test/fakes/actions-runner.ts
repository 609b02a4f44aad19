/**
 * A GitHub Actions runner, as far as a JavaScript action sees one: the committed bundle run in a
 * child process with INPUT_* and GITHUB_* in its environment and the runner's files
 * (GITHUB_OUTPUT, GITHUB_STEP_SUMMARY, GITHUB_STATE) to write. Asynchronous, so that servers the
 * step talks to may live in the test's own process.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { ROOT } from "./cli.js";

export interface StepResult {
  code: number | null;
  /** stdout and stderr together: workflow commands (::error::) and logs. */
  stdout: string;
  outputs: Record<string, string>;
  state: string;
  summary: string;
}

export async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((resolve) => s.listen(0, "127.0.0.1", resolve));
  const { port } = s.address() as { port: number };
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

/** `name<<DELIMITER\nvalue\nDELIMITER` records, as @actions/core writes GITHUB_OUTPUT. */
export function parseOutputs(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  const re = /^(.+?)<<(\S+)\n([\s\S]*?)\n\2$/gm;
  for (let m = re.exec(text); m; m = re.exec(text)) out[m[1] as string] = m[3] as string;
  return out;
}

/** Runs action/dist/`entry` (index.js, or post.js) as one step of a job. */
export async function runStep(opts: {
  /** The step's `with:` inputs. */
  inputs: Record<string, string>;
  /** GITHUB_* and the OIDC endpoint; PATH and HOME are added. */
  env: Record<string, string>;
  cwd: string;
  /** A directory for the runner's files. */
  scratch: string;
  entry?: "index.js" | "post.js";
  /** GITHUB_STATE as a previous step left it (the post step reads the main step's). */
  state?: string;
}): Promise<StepResult> {
  const step = mkdtempSync(join(opts.scratch, "step-"));
  const files = {
    output: join(step, "output"),
    summary: join(step, "summary"),
    state: join(step, "state"),
  };
  writeFileSync(files.output, "");
  writeFileSync(files.summary, "");
  writeFileSync(files.state, "");
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? "",
    HOME: process.env.HOME ?? opts.scratch,
    GITHUB_ACTIONS: "true",
    GITHUB_OUTPUT: files.output,
    GITHUB_STEP_SUMMARY: files.summary,
    GITHUB_STATE: files.state,
    ...opts.env,
    ...Object.fromEntries(
      Object.entries(opts.inputs).map(([k, v]) => [`INPUT_${k.toUpperCase()}`, v]),
    ),
  };
  // A post step gets the main step's saved state as STATE_* variables.
  if (opts.state)
    for (const [k, v] of Object.entries(parseOutputs(opts.state))) env[`STATE_${k}`] = v;
  const child = spawn(process.execPath, [join(ROOT, "action/dist", opts.entry ?? "index.js")], {
    cwd: opts.cwd,
    env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  child.stdout.setEncoding("utf8").on("data", (d: string) => {
    stdout += d;
  });
  child.stderr.setEncoding("utf8").on("data", (d: string) => {
    stdout += d;
  });
  const timer = setTimeout(() => child.kill("SIGKILL"), 120_000);
  const code = await new Promise<number | null>((resolve) => child.once("close", resolve));
  clearTimeout(timer);
  return {
    code,
    stdout,
    outputs: parseOutputs(readFileSync(files.output, "utf8")),
    state: readFileSync(files.state, "utf8"),
    summary: readFileSync(files.summary, "utf8"),
  };
}
