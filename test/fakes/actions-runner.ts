/**
 * A GitHub Actions runner, as far as a JavaScript action sees one: the committed bundle run in a
 * child process with INPUT_* and GITHUB_* in its environment and the runner's files
 * (GITHUB_OUTPUT, GITHUB_STEP_SUMMARY, GITHUB_STATE) to write; a post step gets the main step's
 * saved state as STATE_*, and a running step can be cancelled with the runner's signals.
 * Asynchronous, so that servers the step talks to may live in the test's own process.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { ROOT } from "./cli.js";

export interface StepResult {
  code: number | null;
  /** The signal that ended it (a cancelled step), or null. */
  signal: NodeJS.Signals | null;
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

export interface StepOptions {
  /** The step's `with:` inputs (the runner gives the post step the same ones). */
  inputs: Record<string, string>;
  /** GITHUB_* and the OIDC endpoint; PATH and HOME are added. */
  env: Record<string, string>;
  cwd: string;
  /** A directory for the runner's files. */
  scratch: string;
  entry?: "index.js" | "post.js";
  /**
   * GITHUB_STATE as the main step left it (its StepResult.state): the post step gets each saved
   * value as STATE_<name>, as the runner does.
   */
  state?: string;
}

/** A step running: what it printed so far, and the runner's cancellation of it. */
export interface RunningStep {
  pid: number;
  /** stdout and stderr so far. */
  output(): string;
  /** Ends when the step's process exits, whether by itself or cancelled. */
  done: Promise<StepResult>;
  /**
   * The job cancelled while this step runs, as the runner does it (ProcessInvoker): SIGINT, then
   * SIGTERM if it is still running after `sigintMs` (the runner's 7.5 s), then SIGKILL after
   * `sigtermMs` more (2.5 s). Resolves with the step's result, its signal in `signal`.
   */
  cancel(grace?: { sigintMs?: number; sigtermMs?: number }): Promise<StepResult>;
}

/**
 * The state a step saved (core.saveState), as the runner reads GITHUB_STATE after the step: both
 * of its forms, `name<<DELIMITER` heredocs and `name=value` lines; a later value wins.
 */
export function parseState(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] as string;
    if (line === "") continue;
    const heredoc = /^([^=]+?)<<(.+)$/.exec(line);
    const eq = line.indexOf("=");
    if (heredoc && (eq < 0 || eq > line.indexOf("<<"))) {
      const end = lines.indexOf(heredoc[2] as string, i + 1);
      if (end < 0) throw new Error(`GITHUB_STATE: no closing ${heredoc[2]} for ${heredoc[1]}`);
      out[heredoc[1] as string] = lines.slice(i + 1, end).join("\n");
      i = end;
    } else if (eq > 0) out[line.slice(0, eq)] = line.slice(eq + 1);
    else throw new Error(`GITHUB_STATE: "${line}" is neither name=value nor name<<DELIMITER`);
  }
  return out;
}

/** Starts action/dist/`entry` (index.js, or post.js) as one step of a job. */
export function startStep(opts: StepOptions): RunningStep {
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
      Object.entries(opts.inputs).map(([k, v]) => [
        `INPUT_${k.replace(/ /g, "_").toUpperCase()}`,
        v,
      ]),
    ),
  };
  // A post step gets the main step's saved state as STATE_* variables.
  if (opts.state)
    for (const [k, v] of Object.entries(parseState(opts.state))) env[`STATE_${k}`] = v;
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
  const done = new Promise<StepResult>((resolve, reject) => {
    child.once("error", reject);
    child.once("close", (code, signal) => {
      clearTimeout(timer);
      resolve({
        code,
        signal,
        stdout,
        outputs: parseOutputs(readFileSync(files.output, "utf8")),
        state: readFileSync(files.state, "utf8"),
        summary: readFileSync(files.summary, "utf8"),
      });
    });
  });
  const exited = () => child.exitCode !== null || child.signalCode !== null;
  return {
    pid: child.pid as number,
    output: () => stdout,
    done,
    async cancel(grace = {}) {
      const escalate = async (signal: NodeJS.Signals, ms: number) => {
        if (exited()) return;
        child.kill(signal);
        await Promise.race([done, new Promise((r) => setTimeout(r, ms))]);
      };
      await escalate("SIGINT", grace.sigintMs ?? 7_500);
      await escalate("SIGTERM", grace.sigtermMs ?? 2_500);
      if (!exited()) child.kill("SIGKILL");
      return done;
    },
  };
}

/** Runs action/dist/`entry` (index.js, or post.js) as one step of a job, to its end. */
export function runStep(opts: StepOptions): Promise<StepResult> {
  return startStep(opts).done;
}
