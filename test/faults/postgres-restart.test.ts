/**
 * Postgres restarted under running executions (issue 9): a real server of the test's own
 * (test/setup/private-postgres.ts: restarting the shared one would break every other test) is
 * restarted with `pg_ctl restart -m fast` while a worker drives executions whose tasks are real
 * processes. The worker keeps going: every execution completes, no task runs twice (the tasks
 * outlive the lost connections and are re-attached by handle), every cache entry has a succeeded
 * node behind it.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { rows } from "../../db/query.js";
import { type OpenStore, openStore } from "../../db/store.js";
import { Engine } from "../../runner/engine/engine.js";
import { createLocalExecutor, type LocalExecutor } from "../../runner/executors/local/index.js";
import { type TaskProject, taskProject } from "../fakes/task-project.js";
import { type PrivatePostgres, startPrivatePostgres } from "../setup/private-postgres.js";
import { queueChains } from "./chains.js";

let pg: PrivatePostgres;
let open: OpenStore;
let project: TaskProject;
let executor: LocalExecutor;
let dataDir: string;

beforeAll(async () => {
  pg = await startPrivatePostgres();
  open = await openStore({ databaseUrl: pg.url, migrate: true });
  project = taskProject();
  dataDir = mkdtempSync(join(tmpdir(), "reprise-restart-"));
  executor = createLocalExecutor({ dataDir, env: process.env });
}, 60_000);

afterAll(async () => {
  await executor?.close();
  await open?.close();
  pg?.stop();
  project?.remove();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

/** Retries a read while the server is down. */
async function eventually<T>(read: () => Promise<T>): Promise<T> {
  for (let i = 0; ; i++) {
    try {
      return await read();
    } catch (e) {
      if (i > 200) throw e;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

describe("a Postgres restart under a worker", () => {
  it("completes every execution, runs no task twice, and caches only what succeeded", async () => {
    const ids = await queueChains(
      open.store,
      project,
      { cache: true, env: { SLEEP_MS: "400" } },
      10,
    );
    const errors: string[] = [];
    const engine = new Engine({
      store: open.store,
      executor,
      owner: "worker-1",
      maxParallel: 8,
      tickMs: 200,
      leaseMs: 3_000,
      listen: open.database.listen,
      onError: (e) => errors.push(e.message),
    });
    const [started] = await rows<{ t: string }>(
      open.store.db,
      sql`select pg_postmaster_start_time()::text as t`,
    );
    const before = started?.t;
    const stop = new AbortController();
    const working = engine.work(stop.signal);
    try {
      // Restart once every execution has a node running or done, i.e. in the middle.
      await eventually(async () => {
        const started = await rows<{ n: number }>(
          open.store.db,
          sql`select count(distinct execution_id)::int as n from node_executions where state in ('RUNNING', 'SUCCEEDED')`,
        );
        if ((started[0]?.n ?? 0) < ids.length) throw new Error("not yet");
      });
      await pg.restart();
      await new Promise((r) => setTimeout(r, 700));
      await pg.restart();
      const deadline = Date.now() + 90_000;
      for (;;) {
        const states = await eventually(() =>
          Promise.all(ids.map(async (id) => (await open.store.executions.get(id))?.state)),
        );
        if (states.every((s) => s === "SUCCEEDED" || s === "FAILED" || s === "ABORTED")) {
          expect(states).toEqual(ids.map(() => "SUCCEEDED"));
          break;
        }
        if (Date.now() > deadline) throw new Error(`executions stuck: ${states.join(", ")}`);
        await new Promise((r) => setTimeout(r, 200));
      }
    } finally {
      stop.abort();
      await working;
    }
    // The server did restart (twice), whether or not a query was in flight at that moment.
    const [after] = await rows<{ t: string }>(
      open.store.db,
      sql`select pg_postmaster_start_time()::text as t`,
    );
    expect(after?.t).not.toBe(before);
    // Each node of each execution ran once: the restart re-ran nothing.
    const runs = project.runs();
    const perNode = new Map<string, number>();
    for (const r of runs)
      perNode.set(`${r.execution}/${r.node}`, (perNode.get(`${r.execution}/${r.node}`) ?? 0) + 1);
    expect(runs.length).toBe(ids.length * 3);
    expect([...perNode.values()].every((n) => n === 1)).toBe(true);
    const orphans = await rows<{ key: string }>(
      open.store.db,
      sql`select c.key from cache_entries c
           where not exists (select 1 from node_executions n
                              where n.execution_id = c.source_execution_id and n.node_id = c.source_node_id
                                and n.state = 'SUCCEEDED')`,
    );
    expect(orphans).toEqual([]);
  }, 150_000);
});
