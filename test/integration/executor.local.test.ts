/**
 * The local process executor: the Executor contract on a real temporary git repository, then
 * what only this executor does (checkouts cached per SHA, the image it ignores, the wrapper). How
 * a checkout is made is the checkout contract's (checkout-contract.ts, checkout.git-archive.test.ts).
 */
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { attemptName } from "../../core/engine/attempt-name.js";
import { localRepoKey } from "../../core/version/repo-key.js";
import {
  baseEnvFrom,
  type Checkout,
  gitArchiveCheckout,
  LocalExecutor,
} from "../../runner/executors/local/index.js";
import type { LaunchSpec } from "../../runner/executors/types.js";
import { type TempRepo, tempRepo } from "../fakes/git-repo.js";
import {
  CONTRACT_FILES,
  type ExecutorHarness,
  executorContract,
  processRunning,
  REPORT_OUTPUTS,
} from "./executor-contract.js";

const NODE = process.execPath;
const UNSANDBOXED = { kind: "none", why: "REPRISE_SANDBOX=none" } as const;

interface LocalSetup {
  repo: TempRepo;
  sha: string;
  root: string;
  checkouts: string;
  executors: LocalExecutor[];
  executor(checkout?: Checkout): LocalExecutor;
  spec(overrides: Partial<LaunchSpec>): LaunchSpec;
  attemptDir(handle: string): string;
  cleanup(): Promise<void>;
}

function localSetup(files: Record<string, string> = {}): LocalSetup {
  const repo = tempRepo("reprise-local-repo-");
  repo.write({ ...CONTRACT_FILES, ...files });
  const sha = repo.commit("tasks");
  const root = mkdtempSync(join(tmpdir(), "reprise-local-root-"));
  const checkouts = join(root, "checkouts");
  const executors: LocalExecutor[] = [];
  const attemptDir = (handle: string) => join(root, "attempts", handle);
  return {
    repo,
    sha,
    root,
    checkouts,
    executors,
    attemptDir,
    executor(checkout = gitArchiveCheckout(repo.dir, checkouts)) {
      // Unsandboxed: the contract shares a scratch directory with its tasks and reads their
      // pids; what the sandbox adds is executor.local-sandbox.test.ts's.
      const executor = new LocalExecutor({
        root,
        checkout,
        baseEnv: baseEnvFrom(process.env),
        sandbox: UNSANDBOXED,
      });
      executors.push(executor);
      return executor;
    },
    spec(overrides) {
      return {
        handle: attemptName("exec", "node", 1),
        repo: localRepoKey(repo.dir),
        sha,
        executionId: "exec",
        nodeId: "node",
        attempt: 1,
        taskName: "task",
        taskDigest: `sha256:${"d".repeat(64)}`,
        image: "node:20-slim",
        command: [NODE, "tasks/say.mjs", "0"],
        env: {},
        workdir: ".",
        inputs: {},
        outputs: {},
        timeoutSeconds: 60,
        secrets: {},
        ...overrides,
      };
    },
    async cleanup() {
      for (const executor of executors) await executor.close();
      // A failed test may leave a task running: do not leak it past the test run.
      const attempts = join(root, "attempts");
      for (const handle of existsSync(attempts) ? readdirSync(attempts) : []) {
        const pidFile = join(attempts, handle, "pid");
        if (!existsSync(pidFile)) continue;
        try {
          process.kill(-Number(readFileSync(pidFile, "utf8")), "SIGKILL");
        } catch {
          // already gone
        }
      }
      rmSync(root, { recursive: true, force: true });
      repo.remove();
    },
  };
}

describe("LocalExecutor", () => {
  executorContract("local", async () => {
    const local = localSetup();
    const harness: ExecutorHarness = {
      executor: local.executor(),
      spec: local.spec,
      restart: async () => local.executor(),
      async killAttempt(handle) {
        const pid = Number(readFileSync(join(local.attemptDir(handle), "pid"), "utf8"));
        process.kill(-pid, "SIGKILL");
      },
      cleanup: () => local.cleanup(),
    };
    return harness;
  });
});

describe("LocalExecutor, beyond the contract", () => {
  let local: LocalSetup;
  let executor: LocalExecutor;
  let seq = 0;
  beforeAll(() => {
    local = localSetup({
      "tasks/cwd.mjs": `import { writeFileSync } from "node:fs";
writeFileSync(process.env.REPRISE_OUTPUTS, JSON.stringify({ cwd: process.cwd() }));
`,
    });
    executor = local.executor();
  });
  afterAll(() => local?.cleanup());

  function fresh(overrides: Partial<LaunchSpec> = {}): LaunchSpec {
    const executionId = `x${++seq}`;
    return local.spec({ executionId, handle: attemptName(executionId, "node", 1), ...overrides });
  }

  async function run(spec: LaunchSpec, on = executor) {
    await on.launch(spec);
    return on.wait(spec);
  }

  it("says in the log that it ignores the image, and what it runs where", async () => {
    const outcome = await run(fresh({ image: "python:3.12", workdir: "sub/dir" }));
    const log = await executor.logTail(outcome.logRef ?? "", 4096);
    expect(log?.split("\n")[0]).toBe(
      `[reprise] local executor: image "python:3.12" is ignored; running ${NODE} tasks/say.mjs 0 in sub/dir at ${local.sha}`,
    );
  });

  it("shares one checkout per SHA between attempts, extracted once", async () => {
    const spec = {
      command: [NODE, "tasks/cwd.mjs"],
      outputs: { cwd: { type: "string" as const } },
    };
    const first = await run(fresh(spec));
    const checkout = join(local.checkouts, local.sha);
    const inode = statSync(checkout).ino;
    const second = await run(fresh(spec), local.executor());
    expect(first).toMatchObject({ ok: true, outputs: { cwd: checkout } });
    expect(second).toMatchObject({ ok: true, outputs: { cwd: checkout } });
    expect(statSync(checkout).ino).toBe(inode);
    expect(readdirSync(local.checkouts).sort()).toEqual([`.size-${local.sha}`, local.sha]);
  });

  it("does not pass the runner's own environment to tasks", async () => {
    process.env.REPRISE_TEST_RUNNER_ONLY = "leak";
    try {
      const outcome = await run(
        fresh({
          command: [NODE, "tasks/report.mjs", "REPRISE_TEST_RUNNER_ONLY", "PATH"],
          outputs: REPORT_OUTPUTS,
        }),
        local.executor(),
      );
      if (!outcome.ok) throw new Error(outcome.error.message);
      const env = outcome.outputs.env as Record<string, string>;
      expect(env.PATH).toBe(process.env.PATH);
      expect(env).not.toHaveProperty("REPRISE_TEST_RUNNER_ONLY");
    } finally {
      delete process.env.REPRISE_TEST_RUNNER_ONLY;
    }
  });

  it("fails a task whose workdir does not exist at the commit, saying so in the message", async () => {
    const outcome = await run(fresh({ workdir: "no/such/dir" }));
    if (outcome.ok) throw new Error("expected a failure");
    expect(outcome.error).toMatchObject({ kind: "user", reason: "exit" });
    expect(outcome.error.message).toMatch(/can't cd to .*no\/such\/dir/);
  });

  it("refuses a workdir that leads out of the checkout through a symlink", async () => {
    const dir = mkdtempSync(join(tmpdir(), "reprise-escape-"));
    try {
      mkdirSync(join(dir, "repo"));
      symlinkSync(tmpdir(), join(dir, "repo", "out"));
      const escaping = local.executor(async () => join(dir, "repo"));
      await expect(escaping.launch(fresh({ workdir: "out" }))).rejects.toThrow(
        /workdir "out" leads outside the repository/,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("refuses to launch with a NUL byte in an input, naming the variable", async () => {
    const spec = fresh({ inputs: { blob: "a\0b" } });
    await expect(executor.launch(spec)).rejects.toThrow(/REPRISE_INPUT_BLOB contains a NUL byte/);
    expect(existsSync(local.attemptDir(spec.handle))).toBe(false);
  });

  it("reports exit 137 without its own markers as a user failure that names signal 9", async () => {
    const outcome = await run(
      fresh({ command: [NODE, "-e", 'process.kill(process.pid, "SIGKILL")'] }),
    );
    if (outcome.ok) throw new Error("expected a failure");
    expect(outcome.error).toMatchObject({ kind: "user", reason: "exit", exitCode: 137 });
    expect(outcome.error.message).toMatch(/signal 9, SIGKILL: out of memory/);
  });

  it("takes down what a task left running in the background when it ends", async () => {
    const pidFile = join(local.root, `background-${++seq}`);
    const script = `const c = require("node:child_process").spawn("sleep", ["30"], { stdio: "ignore" });
require("node:fs").writeFileSync(process.argv[1], String(c.pid)); c.unref();`;
    expect((await run(fresh({ command: [NODE, "-e", script, pidFile] }))).ok).toBe(true);
    const background = Number(readFileSync(pidFile, "utf8"));
    await expect.poll(() => processRunning(background), { timeout: 5_000 }).toBe(false);
  });

  it("aborting before launch leaves an aborted attempt that launch does not start", async () => {
    const counter = join(local.root, `count-${++seq}`);
    const spec = fresh({ command: [NODE, "tasks/count.mjs"], env: { COUNT_FILE: counter } });
    await executor.abort(spec.handle);
    await executor.launch(spec);
    const outcome = await executor.wait(spec);
    expect(outcome).toMatchObject({ ok: false, error: { kind: "user", reason: "aborted" } });
    expect(existsSync(counter)).toBe(false);
  });

  it("claims a never-launched attempt as lost, so a stalled runner's late launch does not start it", async () => {
    const counter = join(local.root, `count-${++seq}`);
    const spec = fresh({ command: [NODE, "tasks/count.mjs"], env: { COUNT_FILE: counter } });
    expect(await executor.wait(spec)).toMatchObject({
      ok: false,
      error: { kind: "system", reason: "lost" },
    });
    await executor.launch(spec);
    expect(await executor.wait(spec)).toMatchObject({
      ok: false,
      error: { kind: "system", reason: "lost" },
    });
    expect(existsSync(counter)).toBe(false);
  });

  it("on close stops waiting but leaves the task running, for the next runner to collect", async () => {
    const spec = fresh({
      command: [NODE, "tasks/slow.mjs", "800"],
      outputs: { done: { type: "boolean" } },
    });
    const closing = local.executor();
    await closing.launch(spec);
    const waiting = closing.wait(spec);
    await closing.close();
    await expect(waiting).rejects.toThrow(/closed while waiting/);
    await expect(closing.launch(fresh())).rejects.toThrow(/closed/);
    const outcome = await local.executor().wait(spec);
    expect(outcome).toMatchObject({ ok: true, outputs: { done: true } });
  });

  it("looks a SHA's checkout up once, and again only after it was removed", async () => {
    const lookups: string[] = [];
    const archive = gitArchiveCheckout(local.repo.dir, join(local.root, "counted-checkouts"));
    const counting = local.executor(async (repo, sha) => {
      lookups.push(sha);
      return archive(repo, sha);
    });
    expect((await run(fresh(), counting)).ok).toBe(true);
    const where = fresh({
      workdir: "sub/dir",
      command: [NODE, "where.mjs"],
      outputs: { cwd: { type: "string" }, marker: { type: "string" } },
    });
    expect(await run(where, counting)).toMatchObject({ ok: true, outputs: { marker: "found me" } });
    expect(lookups).toEqual([local.sha]);
    rmSync(join(local.root, "counted-checkouts"), { recursive: true, force: true });
    expect((await run(fresh(), counting)).ok).toBe(true);
    expect(lookups).toEqual([local.sha, local.sha]);
  });

  it("records the exit status with no tool from the task's PATH", async () => {
    const outcome = await run(fresh({ env: { PATH: "/nonexistent" } }));
    expect(outcome).toMatchObject({ ok: true });
  });

  it("does not believe an exit file until its status ends with a newline", async () => {
    const spec = fresh({
      command: [NODE, "tasks/slow.mjs", "600"],
      outputs: { done: { type: "boolean" } },
    });
    await executor.launch(spec);
    // What a reader could catch while the wrapper writes "1\n": the status without its newline.
    writeFileSync(join(local.attemptDir(spec.handle), "exit"), "1");
    const outcome = await executor.wait(spec);
    expect(outcome).toMatchObject({ ok: true, outputs: { done: true } });
    expect(readFileSync(join(local.attemptDir(spec.handle), "exit"), "utf8")).toBe("0\n");
  });

  it("reads only its own attempts' logs", async () => {
    const secret = join(local.root, "log");
    writeFileSync(secret, "not an attempt log");
    expect(await executor.logTail(secret, 100)).toBeNull();
    expect(await executor.logTail("/etc/passwd", 100)).toBeNull();
    expect(await executor.logTail(join(local.root, "attempts", "..", "log"), 100)).toBeNull();
  });
});
