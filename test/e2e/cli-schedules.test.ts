/**
 * `on.schedule` fired by real `reprise serve` and `reprise worker` processes, without a GitHub App,
 * for a local (file://) repository. The cron is `* * * * *`, so the minute the test runs in is a
 * slot at once (no fake clock), and REPRISE_SCHEDULE_TICK_MS=200 has each process look again five
 * times a second: a slot fired twice would show. Every slot's claim (an inbox row) must name
 * exactly one execution, and each execution run once.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import type { Store } from "../../db/store.js";
import { loadConfig } from "../../runner/config.js";
import { openConfiguredStore } from "../../runner/open-store.js";
import { SCHEDULE_PREFIX } from "../../runner/schedules.js";
import { type Background, reprise, repriseBackground } from "../fakes/cli.js";
import { until } from "../fakes/github/index.js";
import { type TaskProject, taskProject } from "../fakes/task-project.js";
import { openTestStore, POSTGRES_AVAILABLE } from "../setup/stores.js";

const cleanup: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

function scheduledProject(): TaskProject {
  const project = taskProject();
  cleanup.push(() => project.remove());
  project.commit({
    tasks: { t: project.task({ inputs: { day: "string" } }) },
    workflows: {
      nightly: {
        inputs: { day: "string" },
        nodes: { a: { task: "t", inputs: { day: "${{ inputs.day }}" } } },
        on: { schedule: [{ cron: "* * * * *", inputs: { day: "today" } }] },
      },
    },
  });
  return project;
}

function environment(extra: Record<string, string>): Record<string, string | undefined> {
  const data = mkdtempSync(join(tmpdir(), "reprise-schedules-"));
  cleanup.push(() => rmSync(data, { recursive: true, force: true }));
  return {
    REPRISE_DATA_DIR: data,
    DATABASE_URL: "",
    PORT: "0",
    REPRISE_AUTH: "none",
    REPRISE_SCHEDULE_TICK_MS: "200",
    LOG_LEVEL: "debug",
    // No GitHub App: the runtime alone fires schedules.
    APP_ID: undefined,
    ...extra,
  };
}

/** Registers the checkout and makes it production; returns its repository key. */
function activate(project: TaskProject, env: Record<string, string | undefined>): string {
  const registered = reprise({ cwd: project.dir, env }, "register", "--json");
  expect(registered.code, registered.stderr).toBe(0);
  const activated = reprise({ cwd: project.dir, env }, "activate", "HEAD");
  expect(activated.code, activated.stderr).toBe(0);
  return (JSON.parse(registered.stdout) as { repo: string }).repo;
}

const ticks = (p: Background) => p.stderr().split('"msg":"schedules looked at"').length - 1;
const fired = (p: Background) => p.stderr().split('"msg":"schedule fired"').length - 1;

/** Each slot's claim names one scheduled execution, and each execution ran at most once. */
async function slotsFiredOnce(store: Store, repo: string, project: TaskProject): Promise<number> {
  const executions = (await store.executions.list({ repo })).filter(
    (e) => e.trigger.kind === "schedule",
  );
  const claims = (await store.deliveries.list(1_000)).filter((d) =>
    d.id.startsWith(`${SCHEDULE_PREFIX}${repo}:nightly:0:`),
  );
  expect(executions.length).toBeGreaterThanOrEqual(1);
  expect(claims.map((c) => c.outcome).sort()).toEqual(
    executions.map((e) => `started ${e.id}`).sort(),
  );
  for (const e of executions) {
    expect(e.inputs).toEqual({ day: "today" });
    // A minute that turned just before the stop may have left its execution unfinished.
    if (e.state === "SUCCEEDED") expect(project.runs(e.id)).toHaveLength(1);
    else expect(project.runs(e.id).length).toBeLessThanOrEqual(1);
  }
  expect(executions.filter((e) => e.state === "SUCCEEDED").length).toBeGreaterThanOrEqual(1);
  return claims.length;
}

describe("schedules fired by the runtime, through real processes", () => {
  it("`reprise serve` without a GitHub App fires a local repository's schedule, once per slot", async () => {
    const project = scheduledProject();
    const env = environment({});
    const repo = activate(project, env);
    const served = await repriseBackground({ cwd: project.dir, env }, "serve");
    cleanup.push(() => served.stop());
    const api = `${served.url}/api/v1/repos/${encodeURIComponent(repo)}/executions`;
    await until(
      "the scheduled execution to succeed",
      async () => {
        const { executions } = (await (await fetch(api)).json()) as {
          executions: Array<{ status: string; trigger: { kind: string } }>;
        };
        return executions.some((e) => e.trigger.kind === "schedule" && e.status === "SUCCEEDED");
      },
      90_000,
    );
    // More ticks over the same minute: none may fire it again.
    const seen = ticks(served);
    await until("five more ticks", () => ticks(served) >= seen + 5);
    const { code, stderr } = await served.stop();
    expect(code).toBe(0);

    const open = await openConfiguredStore(loadConfig({ ...process.env, ...env }));
    try {
      const slots = await slotsFiredOnce(open.store, repo, project);
      expect(stderr.split('"msg":"schedule fired"').length - 1).toBe(slots);
    } finally {
      await open.close();
    }
  }, 180_000);

  it.skipIf(!POSTGRES_AVAILABLE)(
    "`reprise worker` fires schedules too, and with `reprise serve` on one Postgres database each slot fires once",
    async () => {
      const db = await openTestStore("postgres");
      cleanup.push(() => db.dispose());
      const project = scheduledProject();
      const env = environment({ DATABASE_URL: db.url as string });
      const repo = activate(project, env);
      const ready = /driving executions/;
      const worker = await repriseBackground({ cwd: project.dir, env, ready }, "worker");
      cleanup.push(() => worker.stop());
      // The worker alone: it fires the minute's slot and runs it.
      await until(
        "the worker's scheduled execution to succeed",
        async () =>
          (await db.store.executions.list({ repo })).some(
            (e) => e.trigger.kind === "schedule" && e.state === "SUCCEEDED",
          ),
        60_000,
      );
      expect(fired(worker)).toBeGreaterThanOrEqual(1);
      // A second replica: both look at the same slots from now on.
      const served = await repriseBackground({ cwd: project.dir, env }, "serve");
      cleanup.push(() => served.stop());
      const [w, s] = [ticks(worker), ticks(served)];
      await until(
        "both to tick five more times",
        () => ticks(worker) >= w + 5 && ticks(served) >= s + 5,
      );
      // A minute may have turned meanwhile: its slot runs before the count.
      await until(
        "every scheduled execution to end",
        async () =>
          (await db.store.executions.list({ repo })).every((e) => e.state === "SUCCEEDED"),
        60_000,
      );
      const stopped = await Promise.all([worker.stop(), served.stop()]);
      expect(stopped.map((x) => x.code)).toEqual([0, 0]);
      const slots = await slotsFiredOnce(db.store, repo, project);
      expect(fired(worker) + fired(served)).toBe(slots);
    },
    180_000,
  );
});
