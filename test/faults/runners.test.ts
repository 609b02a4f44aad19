/**
 * Several runners on one Postgres, one of them killed (issue 9): three `reprise worker`
 * processes share a database and a data directory (one machine, several processes); one gets
 * SIGKILL while it drives executions whose tasks are real processes. Its leases move to the
 * others once they expire (REPRISE_LEASE_SECONDS), its running tasks are re-attached, and every
 * node is launched exactly once, counted by the tasks themselves.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cliArgs } from "../fakes/cli.js";
import { type TaskProject, taskProject } from "../fakes/task-project.js";
import { openTestStore, POSTGRES_AVAILABLE, type TestStore } from "../setup/stores.js";
import { queueChains } from "./chains.js";

const EXECUTIONS = 8;

describe.skipIf(!POSTGRES_AVAILABLE)("three runners on one Postgres, one killed", () => {
  let store: TestStore;
  let project: TaskProject;
  let dataDir: string;
  const workers: ChildProcess[] = [];

  beforeAll(async () => {
    store = await openTestStore("postgres");
    project = taskProject();
    dataDir = mkdtempSync(join(tmpdir(), "reprise-runners-"));
  }, 60_000);

  afterAll(async () => {
    for (const w of workers) if (w.exitCode === null && w.signalCode === null) w.kill("SIGKILL");
    await store?.dispose();
    project?.remove();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  function worker(name: string): ChildProcess {
    const child = spawn(process.execPath, cliArgs("worker"), {
      cwd: project.dir,
      env: {
        ...process.env,
        NODE_OPTIONS: "",
        DATABASE_URL: store.url as string,
        REPRISE_DATA_DIR: dataDir,
        REPRISE_MAX_PARALLEL: "3",
        REPRISE_LEASE_SECONDS: "3",
        USER: name,
      },
      stdio: ["ignore", "ignore", "pipe"],
    });
    workers.push(child);
    return child;
  }

  it("moves the dead runner's executions to the others and launches every node once", async () => {
    const ids = await queueChains(store.store, project, { env: { SLEEP_MS: "1500" } }, EXECUTIONS);
    const [first] = [worker("w1"), worker("w2"), worker("w3")];
    // Kill w1 once it drives something and a task of its own is running.
    const leaseOwners = async () =>
      (await Promise.all(ids.map((id) => store.store.executions.get(id)))).map(
        (e) => e?.leaseOwner ?? null,
      );
    let victim: string | null = null;
    const deadline = Date.now() + 60_000;
    while (victim === null) {
      if (Date.now() > deadline) throw new Error("no runner picked up an execution");
      const owners = (await leaseOwners()).filter((o): o is string => o !== null);
      if (owners.length > 0 && project.runs().length >= 2) victim = owners[0] as string;
      else await new Promise((r) => setTimeout(r, 100));
    }
    const victimPid = Number(victim.split(":").at(-1));
    const byVictim = workers.find((w) => w.pid === victimPid) ?? first;
    byVictim?.kill("SIGKILL");
    const heldByVictim = (await leaseOwners()).filter((o) => o === victim).length;
    expect(heldByVictim).toBeGreaterThan(0);

    const end = Date.now() + 120_000;
    for (;;) {
      const states = await Promise.all(
        ids.map(async (id) => (await store.store.executions.get(id))?.state),
      );
      if (states.every((s) => s === "SUCCEEDED" || s === "FAILED" || s === "ABORTED")) {
        expect(states).toEqual(ids.map(() => "SUCCEEDED"));
        break;
      }
      if (Date.now() > end) throw new Error(`executions stuck: ${states.join(", ")}`);
      await new Promise((r) => setTimeout(r, 250));
    }
    // Every node of every execution ran once, in one attempt: nothing was launched twice.
    const runs = project.runs();
    expect(runs.length).toBe(EXECUTIONS * 3);
    expect(new Set(runs.map((r) => `${r.execution}/${r.node}`)).size).toBe(EXECUTIONS * 3);
    expect(runs.every((r) => r.attempt === 1)).toBe(true);
    for (const id of ids)
      expect((await store.store.executions.attempts(id)).map((a) => a.attempt)).toEqual([1, 1, 1]);
  }, 180_000);
});
