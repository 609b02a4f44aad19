import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { GitHubApp } from "../../runner/github/app.js";
import { queueSchedules } from "../../runner/github/schedules.js";
import { registerLocalCommit } from "../../runner/registry.js";
import { tempRepo } from "../fakes/git-repo.js";
import { testGitHubApp } from "../fakes/github/index.js";
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
const repo = tempRepo("reprise-schedules-");
let apps: GitHubApp[];

beforeAll(async () => {
  db = await openTestStore("pglite");
  repo.write({ "reprise.yaml": SPEC });
  repo.commit("schedule");
  // Their own ticks look at 1970, before the activation: only the test's calls count.
  apps = [0, 1].map(() => testGitHubApp({ store: db.store, now: () => new Date(0) }));
});

afterAll(async () => {
  await Promise.all(apps.map((a) => a.close()));
  await db.dispose();
  repo.remove();
});

describe("schedules", () => {
  it("fire once per slot across replicas, on the production version, with the schedule's inputs", async () => {
    const { version } = await registerLocalCommit(db.store, repo.dir, "HEAD");
    await db.store.production.activate({
      repo: version.repo,
      sha: version.sha,
      actor: "t",
      reason: "test",
    });
    // The next five-minute slot, a little after it starts.
    const slot = Math.ceil((Date.now() + 60_000) / 300_000) * 300_000;
    const [a, b] = apps as [GitHubApp, GitHubApp];
    const first = await Promise.all([
      queueSchedules(a.ctx, new Date(slot + 5_000)),
      queueSchedules(b.ctx, new Date(slot + 7_000)),
    ]);
    expect(first[0] + first[1]).toBe(1);
    // A minute later both look back over the same slot: nothing new.
    const again = await Promise.all([
      queueSchedules(a.ctx, new Date(slot + 65_000)),
      queueSchedules(b.ctx, new Date(slot + 66_000)),
    ]);
    expect(again).toEqual([0, 0]);
    // No slot of the cron in between: nothing either.
    expect(await queueSchedules(a.ctx, new Date(slot + 120_000))).toBe(0);

    for (const app of apps) app.start();
    await apps[0]?.idle();
    await apps[1]?.idle();
    const started = await db.store.executions.list({ repo: version.repo });
    expect(started).toHaveLength(1);
    expect(started[0]).toMatchObject({
      sha: version.sha,
      workflow: "nightly",
      inputs: { day: "today" },
      trigger: { kind: "schedule", actor: "schedule */5 * * * *" },
    });
  });
});
