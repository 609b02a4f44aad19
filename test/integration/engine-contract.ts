/**
 * The engine's contract (docs/design.md sections 3, 5 and 6), run on every driver: PGlite always, real
 * Postgres when DATABASE_URL is set. Real things throughout: temporary git repositories registered
 * as versions, the local executor running node processes, the Store on the driver. Each task run
 * appends a line to a counter file (test/fakes/task-project.ts), so "ran" and "did not run" are
 * counted from real process launches, not from the engine's own records.
 *
 * Each test has its own repository, hence its own repository key and so its own cache scope: tests
 * cannot see each other's cache entries.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { JsonValue } from "../../core/spec/types.js";
import type { CreateExecution, ExecutionTx } from "../../db/store/executions.js";
import { type OpenStore, openStore, type Store } from "../../db/store.js";
import type { ExecutionRecord, Lease, NodeRecord, VersionRecord } from "../../db/types.js";
import { Engine, type EngineEvent, type EngineOptions } from "../../runner/engine/engine.js";
import { createLocalExecutor, type LocalExecutor } from "../../runner/executors/local/index.js";
import { signalGroup, wrapperAlive } from "../../runner/executors/local/process-group.js";
import { registerLocalCommit } from "../../runner/registry.js";
import { type TaskProject, taskProject } from "../fakes/task-project.js";
import { type Driver, openTestStore, type TestStore } from "../setup/stores.js";
import { processesWithEnv, processRunning } from "./executor-contract.js";

type Nodes = Record<string, NodeRecord>;

export function engineContract(driver: Driver): void {
  let t: TestStore;
  let store: Store;
  let dataDir: string;
  const projects: TaskProject[] = [];
  const executors: LocalExecutor[] = [];
  const extraStores: OpenStore[] = [];

  beforeAll(async () => {
    t = await openTestStore(driver);
    store = t.store;
    dataDir = mkdtempSync(join(tmpdir(), "reprise-engine-data-"));
  });

  afterAll(async () => {
    for (const executor of executors) await executor.close();
    // A failed test may leave a task running: do not leak it past the test run. Only groups led
    // by a wrapper of ours still alive (the pid of a finished attempt may have been reused).
    const attempts = dataDir ? join(dataDir, "local", "attempts") : "";
    for (const handle of attempts && existsSync(attempts) ? readdirSync(attempts) : []) {
      const pidFile = join(attempts, handle, "pid");
      if (!existsSync(pidFile)) continue;
      const pid = Number(readFileSync(pidFile, "utf8"));
      if (await wrapperAlive(pid, join(attempts, handle))) signalGroup(pid, "SIGKILL");
    }
    for (const s of extraStores) await s.close();
    await t?.dispose();
    for (const p of projects) p.remove();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  function project(): TaskProject {
    const p = taskProject();
    projects.push(p);
    return p;
  }

  /** A fresh engine (and local executor) on the shared data directory. */
  function engine(opts: Partial<EngineOptions> = {}): Engine {
    const executor = createLocalExecutor({ dataDir, env: process.env });
    executors.push(executor);
    return new Engine({
      store,
      executor,
      owner: "test-runner",
      maxParallel: 4,
      tickMs: 100,
      leaseMs: 5_000,
      ...opts,
    });
  }

  async function register(
    p: TaskProject,
    spec: Parameters<TaskProject["commit"]>[0],
    files?: Record<string, string>,
  ): Promise<VersionRecord> {
    p.commit(spec, files);
    const { version } = await registerLocalCommit(store, p.dir, "HEAD");
    if (version.status !== "registered")
      throw new Error(`invalid spec:\n${version.errors.map((e) => e.message).join("\n")}`);
    return version;
  }

  function create(
    v: VersionRecord,
    workflow: string,
    inputs: Record<string, JsonValue>,
    extra: Partial<CreateExecution> = {},
  ): Promise<ExecutionRecord> {
    return store.executions.create({
      repo: v.repo,
      sha: v.sha,
      workflow,
      inputs,
      trigger: { kind: "cli", actor: "engine-test" },
      ...extra,
    });
  }

  async function nodesOf(executionId: string): Promise<Nodes> {
    return Object.fromEntries(
      (await store.executions.nodes(executionId)).map((n) => [n.nodeId, n]),
    );
  }

  /** Creates an execution, drives it to its end, returns it with its nodes. */
  async function run(
    v: VersionRecord,
    workflow: string,
    inputs: Record<string, JsonValue>,
    extra: Partial<CreateExecution> = {},
    on: Engine = engine(),
  ): Promise<{ exec: ExecutionRecord; nodes: Nodes }> {
    const created = await create(v, workflow, inputs, extra);
    const exec = await on.drive(created.id);
    return { exec, nodes: await nodesOf(created.id) };
  }

  async function until(what: string, check: () => Promise<boolean>, timeoutMs = 10_000) {
    const deadline = Date.now() + timeoutMs;
    while (!(await check())) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  async function nodeState(executionId: string, nodeId: string) {
    return (await nodesOf(executionId))[nodeId]?.state;
  }

  const count = (p: TaskProject, execution?: string) => p.runs(execution).length;

  describe(`memoization [${driver}]`, () => {
    it("serves a second execution with the same inputs from the cache: all HITs with lineage, no process runs", async () => {
      const p = project();
      const v = await register(p, {
        tasks: {
          produce: p.task({ inputs: { x: "string" }, cache: true }),
          consume: p.task({ inputs: { v: "string" }, cache: true }),
        },
        workflows: {
          wf: {
            inputs: { x: "string" },
            nodes: {
              a: { task: "produce", inputs: { x: "${{ inputs.x }}" } },
              b: { task: "consume", inputs: { v: "${{ nodes.a.outputs.value }}" } },
            },
            outputs: { out: "${{ nodes.b.outputs.value }}" },
          },
        },
      });

      const first = await run(v, "wf", { x: "1" });
      expect(first.exec.state).toBe("SUCCEEDED");
      expect(first.nodes).toMatchObject({
        a: { state: "SUCCEEDED", cacheStatus: "POPULATED", attempts: 1, source: null },
        b: { state: "SUCCEEDED", cacheStatus: "POPULATED", attempts: 1, source: null },
      });
      expect(count(p, first.exec.id)).toBe(2);

      const second = await run(v, "wf", { x: "1" });
      expect(second.exec.state).toBe("SUCCEEDED");
      expect(second.exec.outputs).toEqual(first.exec.outputs);
      expect(second.nodes).toMatchObject({
        a: {
          state: "SUCCEEDED",
          cacheStatus: "HIT",
          attempts: 0,
          source: { execution: first.exec.id, node: "a" },
          outputs: first.nodes.a?.outputs,
        },
        b: {
          state: "SUCCEEDED",
          cacheStatus: "HIT",
          attempts: 0,
          source: { execution: first.exec.id, node: "b" },
          outputs: first.nodes.b?.outputs,
        },
      });
      expect(count(p, second.exec.id)).toBe(0);
      expect(await store.executions.attempts(second.exec.id)).toEqual([]);
    });

    it("misses the cache for different inputs, and always runs a `cache: false` task (DISABLED)", async () => {
      const p = project();
      const v = await register(p, {
        tasks: {
          produce: p.task({ inputs: { x: "string" }, cache: true }),
          plain: p.task({ inputs: { x: "string" }, cache: false }),
        },
        workflows: {
          cached: {
            inputs: { x: "string" },
            nodes: { a: { task: "produce", inputs: { x: "${{ inputs.x }}" } } },
          },
          uncached: {
            inputs: { x: "string" },
            nodes: { n: { task: "plain", inputs: { x: "${{ inputs.x }}" } } },
          },
        },
      });

      const one = await run(v, "cached", { x: "1" });
      const two = await run(v, "cached", { x: "2" });
      expect(one.nodes.a).toMatchObject({ state: "SUCCEEDED", cacheStatus: "POPULATED" });
      expect(two.nodes.a).toMatchObject({ state: "SUCCEEDED", cacheStatus: "POPULATED" });
      expect(two.nodes.a?.cacheKey).not.toBe(one.nodes.a?.cacheKey);
      expect(count(p, two.exec.id)).toBe(1);

      for (let i = 0; i < 2; i++) {
        const u = await run(v, "uncached", { x: "1" });
        expect(u.exec.state).toBe("SUCCEEDED");
        expect(u.nodes.n).toMatchObject({
          state: "SUCCEEDED",
          cacheStatus: "DISABLED",
          cacheKey: null,
          attempts: 1,
          source: null,
        });
        expect(count(p, u.exec.id)).toBe(1);
      }
    });
  });

  describe(`failures are never cached [${driver}]`, () => {
    it("does not cache the outputs of a task that wrote valid outputs and then exited 1; a relaunch runs it again", async () => {
      const p = project();
      const v = await register(p, {
        tasks: {
          flaky: p.task({
            inputs: { x: "string" },
            cache: true,
            env: { FAIL: "boom after outputs" },
          }),
        },
        workflows: {
          wf: {
            inputs: { x: "string" },
            nodes: { a: { task: "flaky", inputs: { x: "${{ inputs.x }}" } } },
          },
        },
      });

      const first = await run(v, "wf", { x: "1" });
      expect(first.exec.state).toBe("FAILED");
      const a = first.nodes.a as NodeRecord;
      expect(a).toMatchObject({ state: "FAILED", outputs: null });
      expect(a.error).toMatchObject({ kind: "user", reason: "exit", exitCode: 1 });
      expect(a.error?.message).toContain("boom after outputs");
      // A miss that wrote nothing: MISS, never POPULATED.
      expect(a.cacheStatus).toBe("MISS");
      expect(a.cacheKey).toMatch(/^sha256:/);
      expect(await store.cache.lookup(a.cacheKey as string)).toBeNull();
      // The reservation is released on every terminal state.
      expect(await store.cache.reservation(a.cacheKey as string)).toBeNull();

      const again = await run(v, "wf", { x: "1" }, { parentId: first.exec.id });
      expect(again.exec.state).toBe("FAILED");
      expect(again.nodes.a).toMatchObject({ state: "FAILED", attempts: 1 });
      expect(again.nodes.a?.cacheStatus).toBe("MISS");
      expect(count(p, again.exec.id)).toBe(1);
      expect(count(p)).toBe(2);
      expect(await store.cache.lookup(a.cacheKey as string)).toBeNull();
    });

    it("fails a node whose outputs are missing, undeclared or ill-typed as a user failure that says why; nothing is cached", async () => {
      const p = project();
      const v = await register(p, {
        tasks: {
          missing: p.task({ cache: true, env: { NO_OUTPUTS: "1" } }),
          undeclared: p.task({
            cache: true,
            env: { OUTPUTS_RAW: JSON.stringify({ value: "ok", extra: 1 }) },
          }),
          "ill-typed": p.task({
            cache: true,
            outputs: { value: "integer" },
            env: { OUTPUTS_RAW: JSON.stringify({ value: "one" }) },
          }),
        },
        workflows: {
          wf: {
            nodes: {
              m: { task: "missing" },
              u: { task: "undeclared" },
              w: { task: "ill-typed" },
            },
          },
        },
      });

      const { exec, nodes } = await run(v, "wf", {});
      expect(exec.state).toBe("FAILED");
      const expected = {
        m: /no outputs written: write a JSON object with value to \$REPRISE_OUTPUTS/,
        u: /undeclared output "extra"/,
        w: /output "value": expected an integer, got/,
      };
      for (const [id, message] of Object.entries(expected)) {
        const n = nodes[id] as NodeRecord;
        expect(n, id).toMatchObject({ state: "FAILED", outputs: null, attempts: 1 });
        expect(n.error, id).toMatchObject({ kind: "user", reason: "outputs" });
        expect(n.error?.message, id).toMatch(message);
        expect(n.cacheStatus, id).toBe("MISS");
        expect(n.cacheKey, id).toMatch(/^sha256:/);
        expect(await store.cache.lookup(n.cacheKey as string), id).toBeNull();
        const [attempt] = await store.executions.attempts(exec.id, id);
        expect(attempt, id).toMatchObject({
          state: "FAILED",
          errorKind: "user",
          errorReason: "outputs",
        });
      }
      expect(count(p, exec.id)).toBe(3);
    });
  });

  describe(`user retries and timeouts [${driver}]`, () => {
    it("retries a user failure up to `retries`: fails once, then succeeds with attempts = 2", async () => {
      const p = project();
      const v = await register(p, {
        tasks: {
          once: p.task({ retries: 1, env: { FAIL_ONCE: p.path("failed-once") } }),
        },
        workflows: { wf: { nodes: { a: { task: "once" } } } },
      });
      const { exec, nodes } = await run(v, "wf", {});
      expect(exec.state).toBe("SUCCEEDED");
      expect(nodes.a).toMatchObject({ state: "SUCCEEDED", attempts: 2, userFailures: 1 });
      const attempts = await store.executions.attempts(exec.id, "a");
      expect(attempts.map((a) => [a.attempt, a.state, a.errorReason])).toEqual([
        [1, "FAILED", "exit"],
        [2, "SUCCEEDED", null],
      ]);
      expect(p.runs(exec.id).map((r) => r.attempt)).toEqual([1, 2]);
    });

    it("fails for good after the first user failure when `retries: 0`", async () => {
      const p = project();
      const v = await register(p, {
        tasks: {
          once: p.task({ retries: 0, env: { FAIL_ONCE: p.path("failed-once") } }),
        },
        workflows: { wf: { nodes: { a: { task: "once" } } } },
      });
      const { exec, nodes } = await run(v, "wf", {});
      expect(exec.state).toBe("FAILED");
      expect(nodes.a).toMatchObject({ state: "FAILED", attempts: 1, userFailures: 1 });
      expect(nodes.a?.error).toMatchObject({ kind: "user", reason: "exit" });
      expect(count(p, exec.id)).toBe(1);
    });

    it("fails a task that outlives its `timeout` as a user failure with reason timeout", async () => {
      const p = project();
      const v = await register(p, {
        tasks: { sleepy: p.task({ timeout: "1s", env: { SLEEP_MS: "5000" } }) },
        workflows: { wf: { nodes: { a: { task: "sleepy" } } } },
      });
      const { exec, nodes } = await run(v, "wf", {});
      expect(exec.state).toBe("FAILED");
      expect(nodes.a).toMatchObject({ state: "FAILED", attempts: 1, userFailures: 1 });
      expect(nodes.a?.error).toMatchObject({ kind: "user", reason: "timeout" });
      const [attempt] = await store.executions.attempts(exec.id, "a");
      expect(attempt).toMatchObject({ state: "FAILED", errorKind: "user", errorReason: "timeout" });
    });
  });

  describe(`failure semantics [${driver}]`, () => {
    it("skips the dependants of a failed node, runs the independent branch to completion, and fails the execution naming the node", async () => {
      const p = project();
      const v = await register(p, {
        tasks: {
          ok: p.task({ inputs: { n: "string" } }),
          // The independent branch runs until the test opens its gate, once b has failed.
          slow: p.task({ inputs: { n: "string" }, env: { WAIT_FILE: p.path("gate") } }),
          bad: p.task({ inputs: { n: "string" }, env: { FAIL: "b is broken" } }),
        },
        workflows: {
          wf: {
            nodes: {
              a: { task: "ok", inputs: { n: "a" } },
              b: { task: "bad", inputs: { n: "${{ nodes.a.outputs.value }}" } },
              c: { task: "slow", inputs: { n: "${{ nodes.a.outputs.value }}" } },
              d: { task: "ok", inputs: { n: "${{ nodes.c.outputs.value }}" } },
              e: { task: "ok", inputs: { n: "${{ nodes.b.outputs.value }}" } },
              f: { task: "ok", inputs: { n: "f" }, after: ["e"] },
            },
          },
        },
      });
      const created = await create(v, "wf", {});
      const driving = engine().drive(created.id);
      await until("b to fail", async () => (await nodeState(created.id, "b")) === "FAILED");
      await until("e to be skipped", async () => (await nodeState(created.id, "e")) === "SKIPPED");
      // The failure does not end the execution while the independent branch still runs.
      expect((await store.executions.get(created.id))?.state).toBe("RUNNING");
      expect(await nodeState(created.id, "c")).toBe("RUNNING");
      p.open("gate");
      const exec = await driving;
      const nodes = await nodesOf(created.id);
      expect(exec.state).toBe("FAILED");
      expect(exec.error).toMatchObject({ node: "b" });
      expect(exec.error?.message).toMatch(/^node "b" failed/);
      expect(Object.fromEntries(Object.values(nodes).map((n) => [n.nodeId, n.state]))).toEqual({
        a: "SUCCEEDED",
        b: "FAILED",
        c: "SUCCEEDED",
        d: "SUCCEEDED",
        e: "SKIPPED",
        f: "SKIPPED",
      });
      expect(nodes.e?.attempts).toBe(0);
      expect(nodes.f?.attempts).toBe(0);
      expect(
        p
          .runs(exec.id)
          .map((r) => r.node)
          .sort(),
      ).toEqual(["a", "b", "c", "d"]);
    });
  });

  describe(`pinning [${driver}]`, () => {
    it("finishes a running execution with its own version's graph after a new version with another graph is activated", async () => {
      const p = project();
      const gate = p.path("gate");
      const v1 = await register(p, {
        tasks: {
          // Runs until the test opens the gate, after the new version is active.
          slow: p.task({ env: { WAIT_FILE: gate, TAG: "v1" } }),
          next: p.task({ inputs: { v: "string" }, env: { TAG: "v1" } }),
        },
        workflows: {
          wf: {
            nodes: {
              first: { task: "slow" },
              second: { task: "next", inputs: { v: "${{ nodes.first.outputs.value }}" } },
            },
            outputs: { out: "${{ nodes.second.outputs.value }}" },
          },
        },
      });
      const created = await create(v1, "wf", {});
      const driving = engine().drive(created.id);
      await until("the first node to run", async () => count(p, created.id) === 1);

      const v2 = await register(p, {
        tasks: {
          slow: p.task({ env: { WAIT_FILE: gate, TAG: "v2" } }),
          next: p.task({ inputs: { v: "string" }, env: { TAG: "v2" } }),
        },
        workflows: {
          wf: {
            nodes: {
              first: { task: "slow" },
              inserted: { task: "next", inputs: { v: "${{ nodes.first.outputs.value }}" } },
              second: { task: "next", inputs: { v: "${{ nodes.inserted.outputs.value }}" } },
            },
            outputs: { out: "${{ nodes.second.outputs.value }}" },
          },
        },
      });
      await store.production.activate({
        repo: v2.repo,
        sha: v2.sha,
        actor: "engine-test",
        reason: "new graph",
      });
      expect((await store.production.current(v2.repo))?.sha).toBe(v2.sha);
      expect(v2.tasks.slow).not.toBe(v1.tasks.slow);
      expect(v2.tasks.next).not.toBe(v1.tasks.next);
      expect((await store.executions.get(created.id))?.state).toBe("RUNNING");
      p.open("gate");

      const exec = await driving;
      expect(exec).toMatchObject({ state: "SUCCEEDED", sha: v1.sha });
      const nodes = await nodesOf(created.id);
      expect(Object.keys(nodes).sort()).toEqual(["first", "second"]);
      expect(nodes.first?.taskDigest).toBe(v1.tasks.slow);
      expect(nodes.second?.taskDigest).toBe(v1.tasks.next);
      expect(String(exec.outputs?.out)).toMatch(/^v1 /);
      expect(
        p
          .runs(created.id)
          .map((r) => r.node)
          .sort(),
      ).toEqual(["first", "second"]);
    }, 20_000);
  });

  describe(`cache identity [${driver}]`, () => {
    it("misses the cache when a task gains an output (an interface change), nothing else changing", async () => {
      const p = project();
      const spec = (outputs: Record<string, unknown>) => ({
        tasks: {
          // Only tasks/** are sources, so the file that says what to output is not part of the digest.
          iface: p.task({
            cache: true,
            sources: ["tasks/**"],
            outputs,
            env: { EXTRA_OUTPUTS: "extra.json" },
          }),
        },
        workflows: { wf: { nodes: { a: { task: "iface" } } } },
      });
      const v1 = await register(p, spec({ value: "string" }), { "extra.json": "{}" });
      const one = await run(v1, "wf", {});
      expect(one.nodes.a).toMatchObject({ state: "SUCCEEDED", cacheStatus: "POPULATED" });

      const v2 = await register(p, spec({ value: "string", extra: "integer" }), {
        "extra.json": '{ "extra": 7 }',
      });
      expect(v2.tasks.iface).not.toBe(v1.tasks.iface);
      const two = await run(v2, "wf", {});
      expect(two.nodes.a).toMatchObject({ state: "SUCCEEDED", cacheStatus: "POPULATED" });
      expect(two.nodes.a?.outputs).toMatchObject({ extra: 7 });
      expect(count(p, two.exec.id)).toBe(1);
    });

    it("hits the cache across different values of an input in `cache.ignore_inputs`", async () => {
      const p = project();
      const v = await register(p, {
        tasks: {
          seeded: p.task({
            inputs: { x: "string", seed: "integer" },
            cache: { ignore_inputs: ["seed"] },
          }),
        },
        workflows: {
          wf: {
            inputs: { x: "string", seed: "integer" },
            nodes: {
              a: { task: "seeded", inputs: { x: "${{ inputs.x }}", seed: "${{ inputs.seed }}" } },
            },
          },
        },
      });
      const one = await run(v, "wf", { x: "1", seed: 1 });
      expect(one.nodes.a?.cacheStatus).toBe("POPULATED");
      const two = await run(v, "wf", { x: "1", seed: 2 });
      expect(two.nodes.a).toMatchObject({
        state: "SUCCEEDED",
        cacheStatus: "HIT",
        source: { execution: one.exec.id, node: "a" },
      });
      expect(count(p, two.exec.id)).toBe(0);
      const other = await run(v, "wf", { x: "2", seed: 1 });
      expect(other.nodes.a?.cacheStatus).toBe("POPULATED");
      expect(count(p, other.exec.id)).toBe(1);
    });

    it('hits the cache across a command change with `cache: { version: "1" }`, and misses after bumping it to "2"', async () => {
      const p = project();
      const spec = (version: string, args: string[]) => ({
        tasks: { manual: p.task({ cache: { version }, args }) },
        workflows: { wf: { nodes: { a: { task: "manual" } } } },
      });
      const v1 = await register(p, spec("1", []));
      const one = await run(v1, "wf", {});
      expect(one.nodes.a?.cacheStatus).toBe("POPULATED");

      const v2 = await register(p, spec("1", ["--changed"]));
      expect(v2.tasks.manual).not.toBe(v1.tasks.manual);
      const two = await run(v2, "wf", {});
      expect(two.nodes.a).toMatchObject({
        state: "SUCCEEDED",
        cacheStatus: "HIT",
        source: { execution: one.exec.id, node: "a" },
      });
      expect(count(p, two.exec.id)).toBe(0);

      const v3 = await register(p, spec("2", ["--changed"]));
      const three = await run(v3, "wf", {});
      expect(three.nodes.a?.cacheStatus).toBe("POPULATED");
      expect(count(p, three.exec.id)).toBe(1);
    });
  });

  describe(`--overwrite-cache [${driver}]`, () => {
    it("runs the task although an entry exists, replaces the entry (its source is the new execution), cache status SKIPPED", async () => {
      const p = project();
      const v = await register(p, {
        tasks: { t: p.task({ cache: true }) },
        workflows: { wf: { nodes: { a: { task: "t" } } } },
      });
      const first = await run(v, "wf", {});
      const key = first.nodes.a?.cacheKey as string;
      expect((await store.cache.lookup(key))?.source).toEqual({
        execution: first.exec.id,
        node: "a",
      });

      const over = await run(v, "wf", {}, { overwriteCache: true });
      expect(over.exec.state).toBe("SUCCEEDED");
      expect(over.nodes.a).toMatchObject({
        state: "SUCCEEDED",
        cacheStatus: "SKIPPED",
        cacheKey: key,
        attempts: 1,
        source: null,
      });
      expect(count(p, over.exec.id)).toBe(1);
      expect((await store.cache.lookup(key))?.source).toEqual({
        execution: over.exec.id,
        node: "a",
      });

      const after = await run(v, "wf", {});
      expect(after.nodes.a).toMatchObject({
        cacheStatus: "HIT",
        source: { execution: over.exec.id, node: "a" },
      });
    });
  });

  describe(`recover mode [${driver}]`, () => {
    it("reuses a succeeded non-cached node of the parent (RECOVERED, no run, lineage to the parent) and runs the fixed failing node", async () => {
      const p = project();
      const spec = (trainEnv: Record<string, string>) => ({
        tasks: {
          // Only its script is a source: reprise.yaml changing elsewhere leaves its digest alone.
          prep: p.task({ cache: false, inputs: { x: "string" }, sources: ["tasks/**"] }),
          train: p.task({ cache: true, inputs: { v: "string" }, env: trainEnv }),
        },
        workflows: {
          wf: {
            inputs: { x: "string" },
            nodes: {
              a: { task: "prep", inputs: { x: "${{ inputs.x }}" } },
              b: { task: "train", inputs: { v: "${{ nodes.a.outputs.value }}" } },
            },
          },
        },
      });
      const broken = await register(p, spec({ FAIL: "train is broken" }));
      const parent = await run(broken, "wf", { x: "1" });
      expect(parent.exec.state).toBe("FAILED");
      expect(parent.nodes.a).toMatchObject({ state: "SUCCEEDED", cacheStatus: "DISABLED" });
      expect(parent.nodes.b?.state).toBe("FAILED");

      const fixed = await register(p, spec({}));
      expect(fixed.tasks.prep).toBe(broken.tasks.prep);
      const child = await run(fixed, "wf", parent.exec.inputs, {
        parentId: parent.exec.id,
        mode: "recover",
      });
      expect(child.exec).toMatchObject({
        state: "SUCCEEDED",
        mode: "recover",
        parentId: parent.exec.id,
      });
      expect(child.nodes.a).toMatchObject({
        state: "SUCCEEDED",
        cacheStatus: "RECOVERED",
        attempts: 0,
        source: { execution: parent.exec.id, node: "a" },
        outputs: parent.nodes.a?.outputs,
      });
      expect(child.nodes.b).toMatchObject({
        state: "SUCCEEDED",
        cacheStatus: "POPULATED",
        attempts: 1,
      });
      expect(p.runs(child.exec.id).map((r) => r.node)).toEqual(["b"]);
    });
  });

  describe(`single-flight [${driver}]`, () => {
    const spec = (p: TaskProject) => ({
      tasks: { slow: p.task({ cache: true, inputs: { x: "string" }, env: { SLEEP_MS: "1000" } }) },
      workflows: {
        wf: {
          inputs: { x: "string" },
          nodes: { a: { task: "slow", inputs: { x: "${{ inputs.x }}" } } },
        },
      },
    });

    async function expectOneRun(p: TaskProject, done: ExecutionRecord[]) {
      expect(done.map((e) => e.state)).toEqual(done.map(() => "SUCCEEDED"));
      expect(count(p)).toBe(1);
      const nodes = await Promise.all(done.map(async (e) => (await nodesOf(e.id)).a as NodeRecord));
      const populated = nodes.filter((n) => n.cacheStatus === "POPULATED");
      expect(populated).toHaveLength(1);
      const source = { execution: populated[0]?.executionId, node: "a" };
      const hits = nodes.filter((n) => n.cacheStatus === "HIT");
      expect(hits).toHaveLength(done.length - 1);
      for (const h of hits) expect(h).toMatchObject({ attempts: 0, source });
    }

    it("runs a cacheable task once for 20 executions with the same inputs driven at once by one engine; 19 HITs", async () => {
      const p = project();
      const v = await register(p, spec(p));
      const created = await Promise.all(
        Array.from({ length: 20 }, () => create(v, "wf", { x: "1" })),
      );
      const e = engine();
      const done = await Promise.all(created.map((c) => e.drive(c.id)));
      await expectOneRun(p, done);
    }, 30_000);

    // ENGINE BUG (see the report): Driver.launch (runner/engine/driver.ts) looks the cache up,
    // then reserves the key, and never looks again once it holds the reservation. A holder that
    // finishes in between (its entry written and its reservation released in one statement)
    // leaves the waiter a free reservation and a stale miss: the waiter runs the task again. Here
    // the interleaving is forced: the waiter's reserve() goes through only once the holder is done.
    it("does not run the task again when the holder finishes between a waiter's cache lookup and its reservation", async () => {
      const p = project();
      const v = await register(p, {
        tasks: {
          gated: p.task({
            cache: true,
            inputs: { x: "string" },
            env: { WAIT_FILE: p.path("gate") },
          }),
        },
        workflows: {
          wf: {
            inputs: { x: "string" },
            nodes: { a: { task: "gated", inputs: { x: "${{ inputs.x }}" } } },
          },
        },
      });
      const holder = await create(v, "wf", { x: "1" });
      const holding = engine({ owner: "holder" }).drive(holder.id);
      await until("the holder to run", async () => count(p) === 1);

      let reserving: () => void = () => undefined;
      const reserveCalled = new Promise<void>((resolve) => {
        reserving = resolve;
      });
      const cache = Object.create(store.cache) as Store["cache"];
      cache.reserve = async (...args) => {
        reserving();
        await until(
          "the holder to succeed",
          async () => (await nodeState(holder.id, "a")) === "SUCCEEDED",
        );
        return store.cache.reserve(...args);
      };
      const racing = Object.assign(Object.create(store) as Store, { cache });
      const waiter = await create(v, "wf", { x: "1" });
      const executor = createLocalExecutor({ dataDir, env: process.env });
      executors.push(executor);
      const waiting = new Engine({
        store: racing,
        executor,
        owner: "waiter",
        maxParallel: 4,
        tickMs: 100,
        leaseMs: 5_000,
      }).drive(waiter.id);
      // The waiter looked the key up (a miss: the holder still runs) and goes to reserve it. If
      // it never reserves (the engine changed), the gate opens after 5 s and one run is still required.
      await Promise.race([reserveCalled, new Promise((r) => setTimeout(r, 5_000))]);
      p.open("gate");
      const done = await waiting;
      await holding;
      await expectOneRun(p, [await store.executions.get(holder.id), done] as ExecutionRecord[]);
    }, 30_000);

    it(`runs it once when two engines (different owners${driver === "postgres" ? ", separate connections" : ""}) each drive half of 20 such executions`, async () => {
      const p = project();
      const v = await register(p, spec(p));
      let otherStore = store;
      if (driver === "postgres") {
        const other = await openStore({ databaseUrl: t.url as string });
        extraStores.push(other);
        otherStore = other.store;
      }
      const created = await Promise.all(
        Array.from({ length: 20 }, () => create(v, "wf", { x: "1" })),
      );
      const one = engine({ owner: "test-runner-1" });
      const executor = createLocalExecutor({ dataDir, env: process.env });
      executors.push(executor);
      const two = new Engine({
        store: otherStore,
        executor,
        owner: "test-runner-2",
        maxParallel: 4,
        tickMs: 100,
        leaseMs: 5_000,
      });
      const done = await Promise.all(created.map((c, i) => (i % 2 ? two : one).drive(c.id)));
      await expectOneRun(p, done);
    }, 30_000);
  });

  describe(`parallelism [${driver}]`, () => {
    it("runs at most maxParallel attempts at once: 4 one-second tasks with maxParallel 2 run two at a time", async () => {
      const p = project();
      const nodes: Record<string, unknown> = {};
      for (const id of ["a", "b", "c", "d"]) nodes[id] = { task: "sleep", inputs: { n: id } };
      const v = await register(p, {
        tasks: { sleep: p.task({ inputs: { n: "string" }, env: { SLEEP_MS: "1000" } }) },
        workflows: { wf: { nodes } },
      });
      const { exec } = await run(v, "wf", {}, {}, engine({ maxParallel: 2 }));
      expect(exec.state).toBe("SUCCEEDED");
      const attempts = await store.executions.attempts(exec.id);
      expect(attempts).toHaveLength(4);
      // A sweep over the attempts' recorded starts and finishes (a finish before a start at the
      // same instant): how many ran at once, at most.
      const events = attempts
        .flatMap((a) => [
          [a.startedAt.getTime(), 1],
          [(a.finishedAt as Date).getTime(), -1],
        ])
        .sort((x, y) => (x[0] as number) - (y[0] as number) || (x[1] as number) - (y[1] as number));
      let running = 0;
      let most = 0;
      for (const [, delta] of events) {
        running += delta as number;
        most = Math.max(most, running);
      }
      expect(most).toBe(2);
    }, 20_000);
  });

  describe(`abort [${driver}]`, () => {
    it("kills the running task's process and ends the node, the pending nodes and the execution ABORTED", async () => {
      const p = project();
      const pidFile = p.path("pid");
      const v = await register(p, {
        tasks: {
          long: p.task({ cache: true, env: { SLEEP_MS: "30000", PID_FILE: pidFile } }),
          after: p.task({ inputs: { v: "string" } }),
        },
        workflows: {
          wf: {
            nodes: {
              a: { task: "long" },
              b: { task: "after", inputs: { v: "${{ nodes.a.outputs.value }}" } },
              c: { task: "after", inputs: { v: "x" }, after: ["b"] },
            },
          },
        },
      });
      const created = await create(v, "wf", {});
      const driving = engine().drive(created.id);
      await until("the task to write its pid", async () => existsSync(pidFile));
      // The pid the task wrote is its own pid namespace's (the sandbox): find it from here by
      // the environment only its processes carry.
      const pids = processesWithEnv(`PID_FILE=${pidFile}`);
      expect(pids.length).toBeGreaterThan(0);

      expect(await store.executions.requestAbort(created.id)).toBe(true);
      const exec = await driving;
      expect(exec.state).toBe("ABORTED");
      const nodes = await nodesOf(created.id);
      expect(Object.fromEntries(Object.values(nodes).map((n) => [n.nodeId, n.state]))).toEqual({
        a: "ABORTED",
        b: "ABORTED",
        c: "ABORTED",
      });
      const [attempt] = await store.executions.attempts(created.id, "a");
      expect(attempt).toMatchObject({ state: "ABORTED", errorReason: "aborted" });
      // Nothing cached, and the reservation released (docs/design.md 5: on every terminal state).
      const key = nodes.a?.cacheKey as string;
      expect(key).toMatch(/^sha256:/);
      expect(await store.cache.lookup(key)).toBeNull();
      expect(await store.cache.reservation(key)).toBeNull();
      await until(
        "the task's processes to be gone",
        async () => pids.every((pid) => !processRunning(pid)),
        5_000,
      );
      expect(count(p, created.id)).toBe(1);
    }, 20_000);
  });

  describe(`attempt outcomes [${driver}]`, () => {
    // A regression test: an earlier driver re-read the nodes on every pass and re-attached every
    // node a snapshot showed RUNNING without a watcher, so an outcome recorded between the
    // snapshot and the check was recorded twice (cache status POPULATED -> MISS, or a failure
    // counted twice against `retries`). The driver now reads the nodes once and keeps them in
    // memory; the interleaving is still forced for any read that shows the node RUNNING (the read
    // after a write, or a first read the driver attaches from): the snapshot is held while the
    // task finishes, until the outcome is recorded. If no read shows it, the gate opens after 1 s
    // and the outcome must still be recorded once.
    it("records an attempt's outcome once, even when it lands while a reconcile holds a snapshot of the nodes", async () => {
      const p = project();
      const v = await register(p, {
        tasks: { gated: p.task({ cache: true, env: { WAIT_FILE: p.path("gate") } }) },
        workflows: { wf: { nodes: { a: { task: "gated" } } } },
      });
      const created = await create(v, "wf", {});
      let armed = false;
      let wrote = false; // a write since this pass's get()
      let readAfterWrite = false; // this pass read the nodes again after its write
      let firstReadRunning = false; // this pass's first read showed the node RUNNING
      let attachesFromFirstRead = false;
      const executions = Object.create(store.executions) as Store["executions"];
      executions.get = (id, db) => {
        if (armed && firstReadRunning && !readAfterWrite) attachesFromFirstRead = true;
        wrote = false;
        readAfterWrite = false;
        firstReadRunning = false;
        return store.executions.get(id, db);
      };
      executions.withLease = async <T>(lease: Lease, fn: (tx: ExecutionTx) => Promise<T>) => {
        try {
          return await store.executions.withLease(lease, fn);
        } finally {
          wrote = true;
        }
      };
      executions.nodes = async (id, db) => {
        if (db) return store.executions.nodes(id, db);
        const afterWrite = wrote;
        if (afterWrite) readAfterWrite = true;
        const rows = await store.executions.nodes(id);
        if (armed && rows.some((n) => n.nodeId === "a" && n.state === "RUNNING")) {
          if (afterWrite || attachesFromFirstRead) {
            armed = false;
            p.open("gate");
            await until("a to succeed", async () => (await nodeState(id, "a")) === "SUCCEEDED");
            // The watcher's own clean-up (it stops being a watcher) runs right after its write.
            await new Promise((r) => setTimeout(r, 200));
          } else firstReadRunning = true;
        }
        return rows;
      };
      const racing = Object.assign(Object.create(store) as Store, { executions });
      const events: EngineEvent[] = [];
      const executor = createLocalExecutor({ dataDir, env: process.env });
      executors.push(executor);
      const driving = new Engine({
        store: racing,
        executor,
        owner: "test-runner",
        maxParallel: 4,
        tickMs: 100,
        leaseMs: 5_000,
        onEvent: (e) => events.push(e),
      }).drive(created.id);
      await until("the task to run", async () => count(p) === 1);
      armed = true;
      const fallback = setTimeout(() => p.open("gate"), 1_000);
      const exec = await driving;
      clearTimeout(fallback);
      expect(exec.state).toBe("SUCCEEDED");
      expect(count(p)).toBe(1);
      expect((await nodesOf(created.id)).a).toMatchObject({
        state: "SUCCEEDED",
        cacheStatus: "POPULATED",
        attempts: 1,
      });
      const recorded = events.filter(
        (e) => e.type === "node" && e.nodeId === "a" && e.state === "SUCCEEDED",
      );
      expect(recorded).toHaveLength(1);
    }, 20_000);
  });

  describe(`restart [${driver}]`, () => {
    /**
     * Engine A launches a task that runs until the test opens its gate; then `die` stops A
     * without closing anything; engine B (another owner, a new executor on the same data
     * directory) drives the same execution, and the gate opens only once B holds the lease.
     */
    async function restartScenario(
      die: (executionId: string, stop: AbortController) => Promise<void>,
    ) {
      const p = project();
      const v = await register(p, {
        tasks: { slow: p.task({ cache: true, env: { WAIT_FILE: p.path("gate") } }) },
        workflows: { wf: { nodes: { a: { task: "slow" } } } },
      });
      const created = await create(v, "wf", {});
      const eventsA: EngineEvent[] = [];
      const eventsB: EngineEvent[] = [];
      const a = engine({ owner: "runner-a", leaseMs: 1_000, onEvent: (e) => eventsA.push(e) });
      const stop = new AbortController();
      const drivingA = a.drive(created.id, stop.signal);
      // Launched: the node is RUNNING and its process has started (it counted itself).
      await until(
        "the task to run",
        async () => (await nodeState(created.id, "a")) === "RUNNING" && count(p) === 1,
      );
      await die(created.id, stop);

      const b = engine({ owner: "runner-b", onEvent: (e) => eventsB.push(e) });
      const drivingB = b.drive(created.id);
      await until(
        "B to hold the lease",
        async () => (await store.executions.get(created.id))?.leaseOwner === "runner-b",
      );
      p.open("gate");
      const exec = await drivingB;
      await drivingA;
      expect(exec.state).toBe("SUCCEEDED");
      expect(count(p)).toBe(1);
      const nodes = await nodesOf(created.id);
      expect(nodes.a).toMatchObject({ state: "SUCCEEDED", attempts: 1, cacheStatus: "POPULATED" });
      expect(await store.executions.attempts(created.id)).toHaveLength(1);
      const did = (events: EngineEvent[], state: string) =>
        events.some((e) => e.type === "node" && e.nodeId === "a" && e.state === state);
      // B re-attached (it launched nothing) and recorded the outcome; A, fenced out, did not.
      expect({
        bLaunched: did(eventsB, "RUNNING"),
        bRecorded: did(eventsB, "SUCCEEDED"),
        aRecorded: did(eventsA, "SUCCEEDED"),
      }).toEqual({ bLaunched: false, bRecorded: true, aRecorded: false });
    }

    it(
      "re-attaches to a task a dead runner launched (A stops driving): B finishes the execution, the task runs once",
      () =>
        restartScenario(async (_id, stop) => {
          // Runner A dies: it stops driving (no more lease renewals); nothing is closed.
          stop.abort();
        }),
      20_000,
    );

    it(
      "re-attaches to a task launched by a runner whose lease expired under it (a stalled runner): B takes over, the task runs once",
      () =>
        restartScenario(async (id, stop) => {
          // A stalls past its lease (expired here at once): it can neither renew it nor write.
          await store.db.execute(
            sql`update executions set lease_expires_at = now() - interval '1 second' where id = ${id}`,
          );
          // Its drive() gives up rather than claim the execution back while B is being started.
          stop.abort();
        }),
      20_000,
    );
  });
}
