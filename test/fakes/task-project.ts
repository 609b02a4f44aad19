/**
 * A temporary git repository of small tasks for engine tests. Every task runs `tasks/run.mjs`
 * with this node binary (process.execPath); what the script does is set by the task's `env`, so
 * a test reads what each task does from its spec alone. Each run first appends one line
 * (`EXECUTION NODE ATTEMPT`) to the project's counter file, so tests count real process runs.
 *
 * The knobs, all optional (an env change changes the task digest, as any change would):
 * - `WAIT_FILE`: wait until this file exists before going on (a gate the test opens); a gate
 *   still closed after 60 s fails the task, so a test that died never leaves one behind for long;
 * - `SLEEP_MS`: then wait that long before finishing;
 * - `PID_FILE`: write the task's pid there at start;
 * - `FAIL`: exit 1 with this message on stderr, after writing valid outputs;
 * - `FAIL_ONCE`: a state file: when it does not exist, create it and exit 1 (after writing
 *   valid outputs); when it exists, succeed;
 * - `OUTPUTS_RAW`: write exactly this to $REPRISE_OUTPUTS; `NO_OUTPUTS`: write nothing;
 * - otherwise the outputs are `{ value: "<TAG or ran> <inputs as JSON>" }`, merged with the JSON
 *   object in the repository file `EXTRA_OUTPUTS` (a path relative to the checkout) when set.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type TempRepo, tempRepo } from "./git-repo.js";

export const NODE = process.execPath;

export const TASK_SCRIPT = `import { appendFileSync, existsSync, readFileSync, writeFileSync } from "node:fs";
const env = process.env;
appendFileSync(env.COUNT_FILE, [env.REPRISE_EXECUTION_ID, env.REPRISE_NODE_ID, env.REPRISE_ATTEMPT].join(" ") + "\\n");
if (env.PID_FILE) writeFileSync(env.PID_FILE, String(process.pid));
function finish() {
  if (env.OUTPUTS_RAW !== undefined) writeFileSync(env.REPRISE_OUTPUTS, env.OUTPUTS_RAW);
  else if (env.NO_OUTPUTS === undefined) {
    const inputs = JSON.parse(readFileSync(env.REPRISE_INPUTS, "utf8"));
    const outputs = { value: (env.TAG ?? "ran") + " " + JSON.stringify(inputs) };
    if (env.EXTRA_OUTPUTS) Object.assign(outputs, JSON.parse(readFileSync(env.EXTRA_OUTPUTS, "utf8")));
    writeFileSync(env.REPRISE_OUTPUTS, JSON.stringify(outputs));
  }
  if (env.FAIL_ONCE && !existsSync(env.FAIL_ONCE)) {
    writeFileSync(env.FAIL_ONCE, "failed once\\n");
    console.error("failing on the first attempt");
    process.exit(1);
  }
  if (env.FAIL) {
    console.error(env.FAIL);
    process.exit(1);
  }
}
function afterGate() {
  const ms = Number(env.SLEEP_MS ?? "0");
  if (ms > 0) setTimeout(finish, ms);
  else finish();
}
if (env.WAIT_FILE) {
  const since = Date.now();
  const gate = setInterval(() => {
    if (existsSync(env.WAIT_FILE)) {
      clearInterval(gate);
      afterGate();
    } else if (Date.now() - since > 60000) {
      console.error("the gate never opened");
      process.exit(1);
    }
  }, 20);
} else afterGate();
`;

export interface TaskOptions {
  inputs?: Record<string, unknown>;
  /** Default `{ value: string }`, what the script writes. */
  outputs?: Record<string, unknown>;
  /** The script's knobs (see above); COUNT_FILE is added. */
  env?: Record<string, string>;
  cache?: boolean | { version?: string; ignore_inputs?: string[]; ttl?: string };
  retries?: number;
  timeout?: string;
  /** Extra arguments after the script (the script ignores them: a command change only). */
  args?: string[];
  sources?: string[];
}

export interface RunLine {
  execution: string;
  node: string;
  attempt: number;
}

export interface TaskProject {
  dir: string;
  repo: TempRepo;
  /** The counter file every task of this project appends to. */
  counter: string;
  /** An absolute path in this project's scratch directory (state, pid and gate files). */
  path(name: string): string;
  /** Creates the file `path(name)`: opens the gate of tasks with `WAIT_FILE: path(name)`. */
  open(name: string): void;
  /** A task entry for reprise.yaml running tasks/run.mjs. */
  task(options?: TaskOptions): Record<string, unknown>;
  /** Writes reprise.yaml (as JSON, which is YAML), the script and `files`, and commits. */
  commit(
    spec: { tasks: Record<string, unknown>; workflows: Record<string, unknown> },
    files?: Record<string, string>,
  ): string;
  /** The process runs so far, optionally of one execution. */
  runs(execution?: string): RunLine[];
  remove(): void;
}

export function taskProject(): TaskProject {
  const repo = tempRepo("reprise-engine-repo-");
  const scratch = mkdtempSync(join(taskScratchRoot(), "reprise-engine-scratch-"));
  const counter = join(scratch, "runs.txt");
  let commits = 0;
  return {
    dir: repo.dir,
    repo,
    counter,
    path: (name) => join(scratch, name),
    open: (name) => writeFileSync(join(scratch, name), "open\n"),
    task(o = {}) {
      return {
        command: [NODE, "tasks/run.mjs", ...(o.args ?? [])],
        env: { COUNT_FILE: counter, ...o.env },
        ...(o.inputs ? { inputs: o.inputs } : {}),
        outputs: o.outputs ?? { value: "string" },
        ...(o.cache !== undefined ? { cache: o.cache } : {}),
        ...(o.retries !== undefined ? { retries: o.retries } : {}),
        ...(o.timeout !== undefined ? { timeout: o.timeout } : {}),
        ...(o.sources !== undefined ? { sources: o.sources } : {}),
      };
    },
    commit(spec, files = {}) {
      const doc = { version: 1, defaults: { image: "node:20-slim", timeout: "2m" }, ...spec };
      repo.write({
        "reprise.yaml": `${JSON.stringify(doc, null, 2)}\n`,
        "tasks/run.mjs": TASK_SCRIPT,
        ...files,
      });
      commits += 1;
      return repo.commit(`commit ${commits}`);
    },
    runs(execution) {
      if (!existsSync(counter)) return [];
      return readFileSync(counter, "utf8")
        .split("\n")
        .filter((l) => l !== "")
        .map((l) => {
          const [e = "", node = "", attempt = "0"] = l.split(" ");
          return { execution: e, node, attempt: Number(attempt) };
        })
        .filter((r) => execution === undefined || r.execution === execution);
    },
    remove() {
      repo.remove();
      rmSync(scratch, { recursive: true, force: true });
    },
  };
}

/**
 * Where task projects keep their scratch: the directory vitest.config.ts opens to sandboxed
 * tasks with REPRISE_SANDBOX_WRITABLE (made here when missing).
 */
export function taskScratchRoot(): string {
  const root = process.env.REPRISE_SANDBOX_WRITABLE || join(tmpdir(), "reprise-task-scratch");
  mkdirSync(root, { recursive: true });
  return root;
}
