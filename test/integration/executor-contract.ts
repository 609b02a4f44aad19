/**
 * The Executor contract (runner/executors/types.ts, docs/design.md sections 3 and 7), run on every
 * implementation: the local process executor, and Kubernetes against its fake apiserver.
 *
 * A harness commits CONTRACT_FILES to a real git repository and builds launch specs at that
 * commit. The tasks are small node scripts, run with this node binary (process.execPath), that
 * report what they see through their outputs, their log, or files under a scratch directory the
 * test passes in their env (both executors run the processes on this machine).
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { attemptName } from "../../core/engine/attempt-name.js";
import type { AttemptOutcome, Executor, LaunchSpec } from "../../runner/executors/types.js";

export interface ExecutorHarness {
  executor: Executor;
  /** A launch spec at the harness's commit; the contract sets handle, ids, command and so on. */
  spec(overrides: Partial<LaunchSpec>): LaunchSpec;
  /** Another executor on the same state, as a runner that restarted would build. */
  restart(): Promise<Executor>;
  /**
   * Makes the attempt vanish from under the executor, as a crash or a lost machine would: the
   * local harness kills its processes, wrapper included; the Kubernetes one deletes its Job (and
   * so its pod) behind the executor's back.
   */
  killAttempt(handle: string): Promise<void>;
  /**
   * A directory the tasks can write, shared with this test (ready files, counters); the
   * contract makes one under the temporary directory when the harness gives none (a Kubernetes
   * pod has a /tmp of its own, so its harness shares one of its choosing with the pods).
   */
  scratch?: string;
  cleanup(): Promise<void>;
}

const NODE = process.execPath;

/** The tasks, committed by the harness at the root of its repository. */
export const CONTRACT_FILES: Record<string, string> = {
  // Reports its inputs file, every REPRISE_* variable and the variables named in argv.
  "tasks/report.mjs": `import { readFileSync, writeFileSync } from "node:fs";
const names = process.argv.slice(2);
const env = Object.fromEntries(
  Object.entries(process.env).filter(([k]) => k.startsWith("REPRISE_") || names.includes(k)),
);
const inputs = JSON.parse(readFileSync(process.env.REPRISE_INPUTS, "utf8"));
const outputs = { inputs, env, word: "hi", count: 42, ratio: 0.5, ok: true };
writeFileSync(process.env.REPRISE_OUTPUTS, JSON.stringify(outputs));
`,
  // Run with workdir sub/dir: it finds its neighbour only if that is its working directory.
  "sub/dir/where.mjs": `import { readFileSync, writeFileSync } from "node:fs";
const outputs = { cwd: process.cwd(), marker: readFileSync("marker.txt", "utf8") };
writeFileSync(process.env.REPRISE_OUTPUTS, JSON.stringify(outputs));
`,
  "sub/dir/marker.txt": "found me",
  // Interleaves stdout and stderr, then exits with the code in argv.
  "tasks/say.mjs": `process.stdout.write("out 1\\n");
process.stderr.write("err 2\\n");
process.stdout.write("out 3\\n");
process.exitCode = Number(process.argv[2] ?? "0");
`,
  // Writes one kind of wrong outputs for a task that declares { answer: integer }.
  "tasks/bad-outputs.mjs": `import { writeFileSync } from "node:fs";
const kind = process.argv[2];
const body = {
  undeclared: JSON.stringify({ answer: 1, extra: 2 }),
  "ill-typed": JSON.stringify({ answer: "one" }),
  oversized: JSON.stringify({ answer: 1 }) + " ".repeat(5000),
}[kind];
if (body !== undefined) writeFileSync(process.env.REPRISE_OUTPUTS, body);
`,
  // Starts a grandchild in its process group, says so in $READY_FILE, then never ends.
  "tasks/linger.mjs": `import { spawn } from "node:child_process";
import { renameSync, writeFileSync } from "node:fs";
const grandchild = spawn("sleep", ["30"], { stdio: "ignore" });
const ready = process.env.READY_FILE;
writeFileSync(ready + ".tmp", String(grandchild.pid));
renameSync(ready + ".tmp", ready);
console.log("lingering with grandchild " + grandchild.pid);
setInterval(() => {}, 1000);
`,
  // Succeeds after the number of milliseconds in argv.
  "tasks/slow.mjs": `import { writeFileSync } from "node:fs";
setTimeout(() => {
  writeFileSync(process.env.REPRISE_OUTPUTS, JSON.stringify({ done: true }));
}, Number(process.argv[2]));
`,
  // Counts its runs in $COUNT_FILE, and runs long enough for a second launch to overlap it.
  "tasks/count.mjs": `import { appendFileSync } from "node:fs";
appendFileSync(process.env.COUNT_FILE, "run\\n");
setTimeout(() => {}, 300);
`,
};

/** What tasks/report.mjs writes. */
export const REPORT_OUTPUTS: LaunchSpec["outputs"] = {
  inputs: { type: "json" },
  env: { type: "json" },
  word: { type: "string" },
  count: { type: "integer" },
  ratio: { type: "number" },
  ok: { type: "boolean" },
};

export function executorContract(name: string, make: () => Promise<ExecutorHarness>): void {
  let h: ExecutorHarness;
  let scratch: string;
  let seq = 0;
  const restarted: Executor[] = [];

  beforeAll(async () => {
    h = await make();
    scratch = h.scratch ?? mkdtempSync(join(tmpdir(), "reprise-contract-"));
  });
  afterAll(async () => {
    for (const executor of restarted) await executor.close();
    await h?.cleanup();
    if (scratch && !h?.scratch) rmSync(scratch, { recursive: true, force: true });
  });

  /** A spec for a fresh attempt: its own execution id, so its own handle. */
  function attempt(overrides: Partial<LaunchSpec>): LaunchSpec {
    seq += 1;
    const executionId = `e${seq}-${process.pid}-${Date.now().toString(36)}`;
    return h.spec({
      executionId,
      nodeId: "node",
      attempt: 1,
      handle: attemptName(executionId, "node", 1),
      taskName: "task",
      taskDigest: `sha256:${"d".repeat(64)}`,
      env: {},
      secrets: {},
      inputs: {},
      outputs: {},
      workdir: ".",
      timeoutSeconds: 60,
      ...overrides,
    });
  }

  async function run(spec: LaunchSpec, executor = h.executor): Promise<AttemptOutcome> {
    await executor.launch(spec);
    return executor.wait(spec);
  }

  async function restart(): Promise<Executor> {
    const executor = await h.restart();
    restarted.push(executor);
    return executor;
  }

  /** Runs linger.mjs and returns once it runs, with its grandchild's pid. */
  async function lingering(overrides: Partial<LaunchSpec> = {}) {
    const ready = join(scratch, `ready-${++seq}`);
    const spec = attempt({
      command: [NODE, "tasks/linger.mjs"],
      env: { READY_FILE: ready },
      ...overrides,
    });
    await h.executor.launch(spec);
    await expect.poll(() => existsSync(ready), { timeout: 10_000, interval: 20 }).toBe(true);
    return { spec, grandchild: Number(readFileSync(ready, "utf8")) };
  }

  function expectFailure(outcome: AttemptOutcome, kind: "user" | "system", reason: string) {
    if (outcome.ok) throw new Error(`expected a ${kind} failure (${reason}), got success`);
    expect(outcome.error).toMatchObject({ kind, reason });
    return outcome.error;
  }

  async function expectGone(pid: number) {
    await expect.poll(() => processRunning(pid), { timeout: 5_000, interval: 50 }).toBe(false);
  }

  describe(`${name} executor: the task I/O contract`, () => {
    it("runs a task that succeeds, returning its outputs checked against their declared types", async () => {
      const outcome = await run(
        attempt({
          command: [NODE, "tasks/report.mjs"],
          outputs: REPORT_OUTPUTS,
        }),
      );
      if (!outcome.ok) throw new Error(`task failed: ${outcome.error.message}`);
      expect(outcome.outputs).toMatchObject({ word: "hi", count: 42, ratio: 0.5, ok: true });
      expect(typeof outcome.logRef).toBe("string");
    });

    it("passes inputs as the REPRISE_INPUTS file and as REPRISE_INPUT_<NAME>, with every REPRISE_* variable", async () => {
      const inputs = {
        "data-set": 'say "hi"',
        n: 3,
        flags: { a: [1, 2] },
        on: true,
        nothing: null,
      };
      const spec = attempt({
        command: [NODE, "tasks/report.mjs"],
        inputs,
        attempt: 2,
        outputs: REPORT_OUTPUTS,
      });
      const outcome = await run(spec);
      if (!outcome.ok) throw new Error(`task failed: ${outcome.error.message}`);
      expect(outcome.outputs.inputs).toEqual(inputs);
      expect(outcome.outputs.env).toEqual({
        REPRISE_INPUTS: expect.stringMatching(/\S/),
        REPRISE_OUTPUTS: expect.stringMatching(/\S/),
        REPRISE_INPUT_DATA_SET: 'say "hi"',
        REPRISE_INPUT_N: "3",
        REPRISE_INPUT_FLAGS: '{"a":[1,2]}',
        REPRISE_INPUT_ON: "true",
        REPRISE_INPUT_NOTHING: "null",
        REPRISE_EXECUTION_ID: spec.executionId,
        REPRISE_NODE_ID: "node",
        REPRISE_ATTEMPT: "2",
        REPRISE_GIT_SHA: spec.sha,
        REPRISE_TASK_DIGEST: spec.taskDigest,
      });
    });

    it("gives the task its env and its secrets", async () => {
      const outcome = await run(
        attempt({
          command: [NODE, "tasks/report.mjs", "GREETING", "API_TOKEN"],
          env: { GREETING: "hello there" },
          secrets: { API_TOKEN: "s3cret" },
          outputs: REPORT_OUTPUTS,
        }),
      );
      if (!outcome.ok) throw new Error(`task failed: ${outcome.error.message}`);
      expect(outcome.outputs.env).toMatchObject({ GREETING: "hello there", API_TOKEN: "s3cret" });
    });

    it("runs the task in the repository at the commit, in its workdir", async () => {
      const outcome = await run(
        attempt({
          command: [NODE, "where.mjs"],
          workdir: "sub/dir",
          outputs: { cwd: { type: "string" }, marker: { type: "string" } },
        }),
      );
      if (!outcome.ok) throw new Error(`task failed: ${outcome.error.message}`);
      expect(outcome.outputs.marker).toBe("found me");
      expect(outcome.outputs.cwd).toMatch(/\/sub\/dir$/);
    });

    it("captures stdout and stderr in the log, in the order they were written", async () => {
      const outcome = await run(attempt({ command: [NODE, "tasks/say.mjs", "0"] }));
      if (!outcome.ok) throw new Error(`task failed: ${outcome.error.message}`);
      const log = await h.executor.logTail(outcome.logRef, 64 * 1024);
      expect(log).toContain("out 1\nerr 2\nout 3\n");
    });

    it("returns the last bytes of a log, and null for a log it does not have", async () => {
      const outcome = await run(attempt({ command: [NODE, "tasks/say.mjs", "0"] }));
      if (!outcome.ok) throw new Error(`task failed: ${outcome.error.message}`);
      expect(await h.executor.logTail(outcome.logRef, 6)).toBe("out 3\n");
      expect(await h.executor.logTail(`${outcome.logRef}-missing`, 6)).toBeNull();
    });
  });

  describe(`${name} executor: failures`, () => {
    it("reports a non-zero exit as a user failure with the exit code and the end of the log", async () => {
      const error = expectFailure(
        await run(attempt({ command: [NODE, "tasks/say.mjs", "3"] })),
        "user",
        "exit",
      );
      expect(error.exitCode).toBe(3);
      expect(error.message).toMatch(/exited with code 3/);
      expect(error.message).toContain("err 2");
      expect(error.message).toContain("out 3");
    });

    it.each([
      ["missing", /no outputs written/],
      ["undeclared", /undeclared output "extra"/],
      ["ill-typed", /output "answer": expected an integer/],
      ["oversized", /over the 4096-byte limit/],
    ])("fails an attempt whose outputs are %s as a user failure (outputs)", async (kind, why) => {
      const error = expectFailure(
        await run(
          attempt({
            command: [NODE, "tasks/bad-outputs.mjs", kind],
            outputs: { answer: { type: "integer" } },
          }),
        ),
        "user",
        "outputs",
      );
      expect(error.message).toMatch(why);
    });

    it("kills the whole process group on timeout, grandchildren included (user failure, timeout)", async () => {
      const { spec, grandchild } = await lingering({ timeoutSeconds: 1 });
      expect(processRunning(grandchild)).toBe(true);
      const error = expectFailure(await h.executor.wait(spec), "user", "timeout");
      expect(error.message).toBe("timed out after 1s");
      await expectGone(grandchild);
    });

    it("aborts a running attempt, process group included (reason aborted)", async () => {
      const { spec, grandchild } = await lingering();
      const waiting = h.executor.wait(spec);
      await h.executor.abort(spec.handle);
      expectFailure(await waiting, "user", "aborted");
      await expectGone(grandchild);
    });

    it("aborting an attempt that already finished changes nothing", async () => {
      const spec = attempt({ command: [NODE, "tasks/say.mjs", "0"] });
      expect((await run(spec)).ok).toBe(true);
      await h.executor.abort(spec.handle);
      expect((await h.executor.wait(spec)).ok).toBe(true);
    });

    it("reports an attempt whose processes were killed, wrapper included, as lost (system failure)", async () => {
      const { spec } = await lingering();
      await h.killAttempt(spec.handle);
      const error = expectFailure(await h.executor.wait(spec), "system", "lost");
      expect(error.message).toMatch(/gone|lost|killed/);
    });

    it("reports a handle that was never launched as lost", async () => {
      const spec = attempt({ command: [NODE, "tasks/say.mjs", "0"] });
      expectFailure(await h.executor.wait(spec), "system", "lost");
    });
  });

  describe(`${name} executor: idempotence and restarts`, () => {
    it("runs a task once however often its handle is launched", async () => {
      const counter = join(scratch, `count-${++seq}`);
      const spec = attempt({ command: [NODE, "tasks/count.mjs"], env: { COUNT_FILE: counter } });
      await Promise.all([h.executor.launch(spec), h.executor.launch(spec)]);
      await h.executor.launch(spec);
      expect((await h.executor.wait(spec)).ok).toBe(true);
      await h.executor.launch(spec);
      await (await restart()).launch(spec);
      expect(readFileSync(counter, "utf8")).toBe("run\n");
    });

    it("lets a restarted runner collect an attempt that finished while it was down", async () => {
      const spec = attempt({
        command: [NODE, "tasks/slow.mjs", "0"],
        outputs: { done: { type: "boolean" } },
      });
      await run(spec);
      const outcome = await (await restart()).wait(spec);
      expect(outcome).toMatchObject({ ok: true, outputs: { done: true } });
    });

    it("lets a restarted runner wait for an attempt that is still running", async () => {
      const spec = attempt({
        command: [NODE, "tasks/slow.mjs", "1500"],
        outputs: { done: { type: "boolean" } },
      });
      await h.executor.launch(spec);
      const outcome = await (await restart()).wait(spec);
      expect(outcome).toMatchObject({ ok: true, outputs: { done: true } });
    });

    it("enforces the timeout after a restart", async () => {
      const { spec, grandchild } = await lingering({ timeoutSeconds: 1 });
      expectFailure(await (await restart()).wait(spec), "user", "timeout");
      await expectGone(grandchild);
    });

    it("tells a restarted runner that an attempt killed while it was down is lost", async () => {
      const { spec } = await lingering();
      await h.killAttempt(spec.handle);
      expectFailure(await (await restart()).wait(spec), "system", "lost");
    });
  });
}

/**
 * Whether a process runs. A zombie is not running, though `kill(pid, 0)` still finds it until
 * its parent reaps it; /proc tells the difference where there is one.
 */
/** The pids of this machine's processes whose environment holds `entry` (NAME=value). */
export function processesWithEnv(entry: string): number[] {
  const pids: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      if (readFileSync(`/proc/${name}/environ`, "latin1").split("\0").includes(entry))
        pids.push(Number(name));
    } catch {
      // Gone meanwhile, or not ours to read.
    }
  }
  return pids;
}

export function processRunning(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    if (process.platform === "linux") return false;
  }
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
