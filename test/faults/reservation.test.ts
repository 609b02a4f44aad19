/**
 * The holder of a cache reservation dies (issue 9): runner A computes a cacheable node and holds
 * its key; runner B's execution needs the same key and waits. A stops without a word (no release)
 * and its task process is killed, as when a machine goes away. A's heartbeat stops, the
 * reservation expires, B takes it over and computes the key, once; the entry is B's.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Engine, type EngineEvent } from "../../runner/engine/engine.js";
import { createLocalExecutor, type LocalExecutor } from "../../runner/executors/local/index.js";
import { registerLocalCommit } from "../../runner/registry.js";
import { type TaskProject, taskProject } from "../fakes/task-project.js";
import { openTestStore, type TestStore } from "../setup/stores.js";

let store: TestStore;
let project: TaskProject;
let dataDir: string;
const executors: LocalExecutor[] = [];

beforeAll(async () => {
  store = await openTestStore("pglite");
  project = taskProject();
  dataDir = mkdtempSync(join(tmpdir(), "reprise-reservation-"));
});

afterAll(async () => {
  for (const e of executors) await e.close();
  await store?.dispose();
  project?.remove();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

function engine(owner: string, onEvent?: (e: EngineEvent) => void): Engine {
  const executor = createLocalExecutor({ dataDir, env: process.env });
  executors.push(executor);
  return new Engine({
    store: store.store,
    executor,
    owner,
    maxParallel: 2,
    tickMs: 100,
    leaseMs: 60_000,
    reservationMs: 1_000,
    heartbeatMs: 200,
    ...(onEvent ? { onEvent } : {}),
  });
}

async function until(what: string, check: () => boolean | Promise<boolean>, ms = 20_000) {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe("a reservation holder that dies", () => {
  it("is taken over by the waiting node after expiry, and the key is computed once", async () => {
    const pidFile = project.path("pid");
    project.commit({
      tasks: {
        gated: project.task({
          cache: true,
          inputs: { x: "string" },
          env: { WAIT_FILE: project.path("gate"), PID_FILE: pidFile },
        }),
      },
      workflows: {
        wf: {
          inputs: { x: "string" },
          nodes: { a: { task: "gated", inputs: { x: "${{ inputs.x }}" } } },
        },
      },
    });
    const { version } = await registerLocalCommit(store.store, project.dir, "HEAD");
    const create = () =>
      store.store.executions.create({
        repo: version.repo,
        sha: version.sha,
        workflow: "wf",
        inputs: { x: "same" },
        trigger: { kind: "cli", actor: "test" },
      });

    const first = await create();
    const stopA = new AbortController();
    const drivingA = engine("runner-a").drive(first.id, stopA.signal);
    await until("A's task to start", () => project.runs().length === 1);
    const key = (await store.store.executions.nodes(first.id))[0]?.cacheKey as string;
    expect((await store.store.cache.reservation(key))?.owner).toBe(`${first.id}/a/1`);

    const events: EngineEvent[] = [];
    const second = await create();
    const drivingB = engine("runner-b", (e) => events.push(e)).drive(second.id);
    await until("B to wait for A", () => events.some((e) => e.type === "waiting"));

    // A dies: its driver stops without releasing anything, and its task is killed.
    stopA.abort();
    await drivingA;
    await until("the task's pid", () => readFileSync(pidFile, "utf8").length > 0);
    process.kill(Number(readFileSync(pidFile, "utf8")), "SIGKILL");

    // B takes the expired reservation over and runs the task itself.
    await until("B's own run", () => project.runs().length === 2);
    expect((await store.store.cache.reservation(key))?.owner).toBe(`${second.id}/a/1`);
    project.open("gate");
    const done = await drivingB;
    expect(done.state).toBe("SUCCEEDED");

    const [node] = await store.store.executions.nodes(second.id);
    expect(node).toMatchObject({ state: "SUCCEEDED", cacheStatus: "POPULATED", attempts: 1 });
    const entry = await store.store.cache.lookup(key);
    expect(entry?.source).toEqual({ execution: second.id, node: "a" });
    expect(await store.store.cache.reservation(key)).toBeNull();
    // A's run never completed: the key was computed once, by B.
    expect(project.runs().map((r) => r.execution)).toEqual([first.id, second.id]);
  }, 60_000);
});
