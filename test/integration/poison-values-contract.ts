/**
 * Values the database cannot store, and writes it refuses, never wedge an execution (issue 14,
 * finding 6; docs/design.md sections 3 and 6), run on every driver. Real things throughout: tasks
 * are node processes run by the local executor, the Store is PGlite or Postgres, and a refused
 * write is a real trigger installed in the test's database that raises for one execution.
 */
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MAX_INPUTS_ENV_BYTES } from "../../core/engine/input-env.js";
import type { JsonValue } from "../../core/spec/types.js";
import { rootCause } from "../../db/errors.js";
import type { Store } from "../../db/store.js";
import type { ExecutionRecord, NodeRecord, VersionRecord } from "../../db/types.js";
import { Engine, type EngineOptions, MAX_DRIVER_FAILURES } from "../../runner/engine/engine.js";
import { createLocalExecutor, type LocalExecutor } from "../../runner/executors/local/index.js";
import { registerLocalCommit } from "../../runner/registry.js";
import { RequestError, startExecution } from "../../runner/service.js";
import { type TaskProject, taskProject } from "../fakes/task-project.js";
import { type Driver, openTestStore, type TestStore } from "../setup/stores.js";

export function poisonValuesContract(driver: Driver): void {
  let t: TestStore;
  let store: Store;
  let dataDir: string;
  const projects: TaskProject[] = [];
  const executors: LocalExecutor[] = [];
  let triggers = 0;

  beforeAll(async () => {
    t = await openTestStore(driver);
    store = t.store;
    dataDir = mkdtempSync(join(tmpdir(), "reprise-poison-data-"));
  });

  afterAll(async () => {
    for (const executor of executors) await executor.close();
    await t?.dispose();
    for (const p of projects) p.remove();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  function project(): TaskProject {
    const p = taskProject();
    projects.push(p);
    return p;
  }

  function engine(opts: Partial<EngineOptions> = {}): Engine {
    const executor = createLocalExecutor({ dataDir, env: process.env });
    executors.push(executor);
    return new Engine({
      store,
      executor,
      owner: "poison-test",
      maxParallel: 4,
      tickMs: 50,
      leaseMs: 5_000,
      ...opts,
    });
  }

  async function register(
    p: TaskProject,
    spec: Parameters<TaskProject["commit"]>[0],
  ): Promise<VersionRecord> {
    p.commit(spec);
    const { version } = await registerLocalCommit(store, p.dir, "HEAD");
    if (version.status !== "registered")
      throw new Error(`invalid spec:\n${version.errors.map((e) => e.message).join("\n")}`);
    return version;
  }

  function create(v: VersionRecord, inputs: Record<string, JsonValue> = {}) {
    return store.executions.create({
      repo: v.repo,
      sha: v.sha,
      workflow: "wf",
      inputs,
      trigger: { kind: "cli", actor: "poison-test" },
    });
  }

  async function nodesOf(id: string): Promise<Record<string, NodeRecord>> {
    return Object.fromEntries((await store.executions.nodes(id)).map((n) => [n.nodeId, n]));
  }

  /** One task writing `raw` to $REPRISE_OUTPUTS, its output `x` of `type`. */
  async function writing(raw: string, type = "string") {
    const p = project();
    const v = await register(p, {
      tasks: { t: p.task({ env: { OUTPUTS_RAW: raw }, outputs: { x: type } }) },
      workflows: { wf: { nodes: { a: { task: "t" } } } },
    });
    const created = await create(v);
    const exec = await engine().drive(created.id);
    return { exec, a: (await nodesOf(created.id)).a as NodeRecord };
  }

  /**
   * A real fault: a trigger that refuses, for this execution only, every write marking one of
   * its nodes SUCCEEDED (what a value the database cannot store does to the completion).
   */
  async function refuseSuccessOf(executionId: string): Promise<void> {
    const fn = `poison_refuse_${++triggers}`;
    const id = executionId.replace(/'/g, "''");
    await store.db.execute(
      sql.raw(`create function ${fn}() returns trigger language plpgsql as $$
        begin
          if new.execution_id = '${id}' and new.state = 'SUCCEEDED' then
            raise exception 'the test refuses writes of execution ${id}';
          end if;
          return new;
        end $$`),
    );
    await store.db.execute(
      sql.raw(
        `create trigger ${fn} before update on node_executions for each row execute function ${fn}()`,
      ),
    );
  }

  async function until(what: string, check: () => Promise<boolean>, timeoutMs = 20_000) {
    const deadline = Date.now() + timeoutMs;
    while (!(await check())) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  describe(`outputs the database cannot store [${driver}]`, () => {
    it("a NUL in an output's string fails the node as a user failure naming the output, and the execution ends FAILED", async () => {
      const { exec, a } = await writing('{"x":"a\\u0000b"}');
      expect(exec.state).toBe("FAILED");
      expect(a.state).toBe("FAILED");
      expect(a.error).toMatchObject({ kind: "user", reason: "outputs" });
      expect(a.error?.message).toContain('output "x": the string at x contains U+0000 (NUL)');
      expect(a.error?.message).toContain("cannot store");
      expect(exec.error?.message).toContain('node "a" failed');
    }, 30_000);

    it("a lone surrogate deep in a json output, or a NUL in one of its keys, is named by its path", async () => {
      const surrogate = await writing('{"x":{"k":[1,"\\ud800"]}}', "json");
      expect(surrogate.exec.state).toBe("FAILED");
      expect(surrogate.a.error).toMatchObject({ kind: "user", reason: "outputs" });
      expect(surrogate.a.error?.message).toContain(
        "the string at x.k[1] contains a lone surrogate U+D800",
      );
      const key = await writing('{"x":{"ok":{"a\\u0000":1}}}', "json");
      expect(key.exec.state).toBe("FAILED");
      expect(key.a.error?.message).toContain('the key "a\\u0000" in x.ok contains U+0000 (NUL)');
    }, 30_000);

    it("an undeclared output whose name holds a NUL fails the node (the message is storable)", async () => {
      const { exec, a } = await writing('{"x":"fine","\\u0000":1}');
      expect(exec.state).toBe("FAILED");
      expect(a.error).toMatchObject({ kind: "user", reason: "outputs" });
      expect(a.error?.message).toContain('undeclared output "\\u0000"');
    }, 30_000);
  });

  describe(`inputs too big for the task's environment [${driver}]`, () => {
    it("a 200 KiB literal fails the node at launch as a user failure naming the input, and nothing runs", async () => {
      const p = project();
      const v = await register(p, {
        tasks: { t: p.task({ inputs: { big: "string" } }) },
        workflows: { wf: { nodes: { a: { task: "t", inputs: { big: "x".repeat(200 * 1024) } } } } },
      });
      const created = await create(v);
      const exec = await engine().drive(created.id);
      const { a } = await nodesOf(created.id);
      expect(exec.state).toBe("FAILED");
      expect(a?.error).toMatchObject({ kind: "user", reason: "inputs" });
      expect(a?.error?.message).toContain('input "big" is 204800 bytes');
      expect(a?.error?.message).toContain("file input");
      expect(p.runs(created.id)).toEqual([]);
    }, 30_000);

    it("upstream outputs that together overflow a downstream task's environment fail it, naming the limit", async () => {
      const p = project();
      const value = "v".repeat(4_000);
      const count = Math.ceil(MAX_INPUTS_ENV_BYTES / value.length) + 2;
      const names = Array.from({ length: count }, (_, i) => `i${i}`);
      const v = await register(p, {
        tasks: {
          up: p.task({ env: { OUTPUTS_RAW: JSON.stringify({ value }) } }),
          down: p.task({ inputs: Object.fromEntries(names.map((n) => [n, "string"])) }),
        },
        workflows: {
          wf: {
            nodes: {
              a: { task: "up" },
              b: {
                task: "down",
                inputs: Object.fromEntries(names.map((n) => [n, "${{ nodes.a.outputs.value }}"])),
              },
            },
          },
        },
      });
      const created = await create(v);
      const exec = await engine().drive(created.id);
      const nodes = await nodesOf(created.id);
      expect(exec.state).toBe("FAILED");
      expect(nodes.a?.state).toBe("SUCCEEDED");
      expect(nodes.b?.error).toMatchObject({ kind: "user", reason: "inputs" });
      expect(nodes.b?.error?.message).toContain(`over the ${MAX_INPUTS_ENV_BYTES}-byte limit`);
      expect(p.runs(created.id).map((r) => r.node)).toEqual(["a"]);
    }, 30_000);
  });

  describe(`inputs refused at start [${driver}]`, () => {
    async function version() {
      const p = project();
      return register(p, {
        tasks: { t: p.task({ inputs: { s: "string", j: "json" } }) },
        workflows: {
          wf: {
            inputs: { s: { type: "string", default: "" }, j: { type: "json", default: {} } },
            nodes: { a: { task: "t", inputs: { s: "${{ inputs.s }}", j: "${{ inputs.j }}" } } },
          },
        },
      });
    }
    const start = async (v: VersionRecord, inputs: Record<string, JsonValue>) => {
      try {
        await startExecution(store, {
          repo: v.repo,
          at: { sha: v.sha },
          workflow: "wf",
          inputs,
          trigger: { kind: "api", actor: "poison-test" },
        });
      } catch (e) {
        return e;
      }
      throw new Error("the start was not refused");
    };

    it("a NUL, a lone surrogate or a 200 KiB value is refused with invalid_inputs naming the input", async () => {
      const v = await version();
      const before = (await store.executions.list({ limit: 1_000 })).length;
      const nul = await start(v, { s: "a\u0000b" });
      expect(nul).toBeInstanceOf(RequestError);
      expect(nul).toMatchObject({ code: "invalid_inputs" });
      expect((nul as Error).message).toContain('input "s": the string at s contains U+0000');
      const lone = await start(v, { j: { deep: ["\ud800"] } });
      expect((lone as Error).message).toContain(
        'input "j": the string at j.deep[0] contains a lone surrogate U+D800',
      );
      const big = await start(v, { s: "x".repeat(200 * 1024) });
      expect(big).toMatchObject({ code: "invalid_inputs" });
      expect((big as Error).message).toContain('input "s" is 204800 bytes');
      expect((big as Error).message).toContain("pass large data as a file input");
      expect((await store.executions.list({ limit: 1_000 })).length).toBe(before);
    });
  });

  describe(`an engine error on one execution [${driver}]`, () => {
    it(`ends that execution FAILED after ${MAX_DRIVER_FAILURES} failures with a system error, logged with its id, while the others run`, async () => {
      const p = project();
      const v = await register(p, {
        tasks: { t: p.task() },
        workflows: { wf: { nodes: { a: { task: "t" } } } },
      });
      const poisoned = await create(v, {});
      await refuseSuccessOf(poisoned.id);
      const healthy = await create(v, {});
      const errors: Array<{ id: string | undefined; message: string }> = [];
      const e = engine({
        onError: (err, id) => errors.push({ id, message: rootCause(err).message }),
      });
      const stop = new AbortController();
      const working = e.work(stop.signal);
      const ended = (id: string) => async () =>
        ["SUCCEEDED", "FAILED", "ABORTED"].includes(
          ((await store.executions.get(id)) as ExecutionRecord).state,
        );
      await until(
        "both executions to end",
        async () => (await ended(poisoned.id)()) && (await ended(healthy.id)()),
      );
      stop.abort();
      await working;

      expect((await store.executions.get(healthy.id))?.state).toBe("SUCCEEDED");
      const exec = (await store.executions.get(poisoned.id)) as ExecutionRecord;
      expect(exec.state).toBe("FAILED");
      expect(exec.error?.message).toContain(
        `the engine failed ${MAX_DRIVER_FAILURES} times in a row driving this execution`,
      );
      expect(exec.error?.message).toContain(`the test refuses writes of execution ${poisoned.id}`);
      const { a } = await nodesOf(poisoned.id);
      expect(a?.state).toBe("FAILED");
      expect(a?.error).toMatchObject({ kind: "system", reason: "engine" });
      const [attempt] = await store.executions.attempts(poisoned.id, "a");
      expect(attempt).toMatchObject({ state: "FAILED", errorReason: "engine" });
      const logged = errors.filter((x) => x.id === poisoned.id);
      expect(logged.length).toBe(MAX_DRIVER_FAILURES);
      expect(logged[0]?.message).toContain("the test refuses writes");
      expect(errors.filter((x) => x.id !== poisoned.id)).toEqual([]);
      // The task ran once: the engine re-attached to its outcome, it did not run it again.
      expect(p.runs(poisoned.id)).toHaveLength(1);
    }, 30_000);

    it("asked to stop while its node's completion cannot be written, it ends ABORTED", async () => {
      const p = project();
      const v = await register(p, {
        tasks: { t: p.task() },
        workflows: { wf: { nodes: { a: { task: "t" }, b: { task: "t", after: ["a"] } } } },
      });
      const created = await create(v, {});
      await refuseSuccessOf(created.id);
      // A first runner meets the refused write once, and stops driving (the test's doing).
      const first = new AbortController();
      const refused: string[] = [];
      const one = engine({
        onError: (err) => {
          refused.push(rootCause(err).message);
          first.abort();
        },
      });
      expect((await one.drive(created.id, first.signal)).state).toBe("RUNNING");
      expect(refused[0]).toContain("the test refuses writes");
      expect(await store.executions.requestAbort(created.id)).toBe(true);

      const exec = await engine().drive(created.id);
      expect(exec.state).toBe("ABORTED");
      const nodes = await nodesOf(created.id);
      expect(nodes.a?.state).toBe("ABORTED");
      expect(nodes.a?.error).toMatchObject({ kind: "system", reason: "engine" });
      expect(nodes.b?.state).toBe("ABORTED");
      expect(existsSync(dataDir)).toBe(true);
    }, 30_000);
  });
}
