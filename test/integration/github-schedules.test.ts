/**
 * Schedules of GitHub repositories: the runtime fires them (runner/schedules.ts) and the App only
 * adds the check run, as a listener of the scheduler. Two replicas (a Scheduler and an App each,
 * one store) fire a slot once and open one check run; a local repository's scheduled execution
 * gets none. The version comes the real way: a signed push to the default branch.
 */
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { GitHubApp } from "../../app/app.js";
import { CHECK_RUN_PREFIX } from "../../app/schedules.js";
import { registerLocalCommit } from "../../runner/registry.js";
import { Scheduler } from "../../runner/schedules.js";
import { tempRepo } from "../fakes/git-repo.js";
import { FakeGitHub, pushPayload, sign, testGitHubApp, until } from "../fakes/github/index.js";
import { openTestStore, type TestStore } from "../setup/stores.js";

const SPEC = `version: 1
tasks:
  t:
    image: "busybox@sha256:${"b".repeat(64)}"
    command: [echo]
    inputs: { day: string }
workflows:
  nightly:
    inputs: { day: string }
    nodes: { a: { task: t, inputs: { day: "\${{ inputs.day }}" } } }
    on:
      schedule: [{ cron: "*/5 * * * *", inputs: { day: today } }]
  manual:
    nodes: { a: { task: t, inputs: { day: x } } }
`;

let db: TestStore;
let fake: FakeGitHub;
const gh = tempRepo("reprise-schedules-gh-");
const local = tempRepo("reprise-schedules-local-");
let apps: GitHubApp[];
let schedulers: Scheduler[];
const clock = { now: 0 };

beforeAll(async () => {
  db = await openTestStore("pglite");
  fake = await FakeGitHub.start();
  for (const r of [gh, local]) {
    r.write({ "reprise.yaml": SPEC });
    r.commit("schedule");
  }
  fake.addRepo({ fullName: "acme/nightly", dir: gh.dir });
  apps = [0, 1].map(() =>
    testGitHubApp({ store: db.store, fake, host: fake.host, secret: "s", tickMs: 50 }),
  );
  schedulers = apps.map((app) => {
    const s = new Scheduler({
      store: db.store,
      log: pino({ level: "silent" }),
      now: () => new Date(clock.now),
    });
    s.onStarted(app.scheduled);
    return s;
  });
  for (const app of apps) app.start();
});

afterAll(async () => {
  await Promise.all(apps.map((a) => a.close()));
  await fake.close();
  await db.dispose();
  gh.remove();
  local.remove();
});

describe("schedules of GitHub repositories", () => {
  it("fire once per slot across replicas, and the App opens one check run for the execution", async () => {
    const body = JSON.stringify(
      pushPayload({
        repo: "acme/nightly",
        branch: "main",
        before: "0".repeat(40),
        after: gh.git("rev-parse", "HEAD"),
      }),
    );
    const answer = await (apps[0] as GitHubApp).webhooks(
      new Request("http://x/api/github/webhooks", {
        method: "POST",
        headers: {
          "x-github-event": "push",
          "x-github-delivery": "push-1",
          "x-hub-signature-256": sign("s", body),
        },
        body,
      }),
    );
    expect(answer.status).toBe(202);
    await apps[0]?.idle();
    const key = `${fake.host}/acme/nightly`;
    expect((await db.store.production.current(key))?.sha).toBe(gh.git("rev-parse", "HEAD"));
    const { version: localVersion } = await registerLocalCommit(db.store, local.dir, "HEAD");
    await db.store.production.activate({
      repo: localVersion.repo,
      sha: localVersion.sha,
      actor: "t",
      reason: "test",
    });

    // The next five-minute slot, a little after it starts; both replicas tick at once.
    const slot = Math.ceil((Date.now() + 60_000) / 300_000) * 300_000;
    clock.now = slot + 5_000;
    const started = (await Promise.all(schedulers.map((s) => s.tick()))).flat();
    // One slot for each repository.
    expect(started.map((e) => e.repo).sort()).toEqual([key, localVersion.repo].sort());
    clock.now = slot + 65_000;
    expect((await Promise.all(schedulers.map((s) => s.tick()))).flat()).toEqual([]);

    const exec = started.find((e) => e.repo === key);
    const run = await until("the scheduled execution's check run", () =>
      fake.checkRuns.find((c) => c.name === "reprise/nightly"),
    );
    for (const app of apps) await app.idle();
    expect(run).toMatchObject({
      head_sha: gh.git("rev-parse", "HEAD"),
      status: "in_progress",
      external_id: exec?.id,
    });
    expect(run.output?.summary).toContain("started by schedule (schedule */5 * * * *)");
    expect(fake.checkRuns.filter((c) => c.name === "reprise/nightly")).toHaveLength(1);
    expect(await db.store.checkRuns.get(exec?.id as string)).toMatchObject({ checkRunId: run.id });
    // The local repository's execution runs without one.
    const localExec = started.find((e) => e.repo === localVersion.repo);
    expect(await db.store.deliveries.get(`${CHECK_RUN_PREFIX}${localExec?.id}`)).toBeNull();
    expect(await db.store.checkRuns.get(localExec?.id as string)).toBeNull();
  });
});
