/**
 * `on.schedule` as the runtime fires it (runner/schedules.ts), for a local (file://) repository:
 * once per slot whatever the number of replicas (two Schedulers on one PGlite store, two runtimes'
 * connections to one Postgres database), on the production version, with the schedule's inputs,
 * looking 3 minutes back and no further. The clock is the Scheduler's `now`.
 */
import pino from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { type OpenStore, openStore, type Store } from "../../db/store.js";
import type { ExecutionRecord } from "../../db/types.js";
import { registerLocalCommit } from "../../runner/registry.js";
import { SCHEDULE_PREFIX, Scheduler } from "../../runner/schedules.js";
import { type TempRepo, tempRepo } from "../fakes/git-repo.js";
import { openTestStore, POSTGRES_AVAILABLE, type TestStore } from "../setup/stores.js";

const spec = (cron: string) => `version: 1
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
      schedule: [{ cron: "${cron}", inputs: { day: today } }]
  manual:
    nodes: { a: { task: t, inputs: { day: x } } }
`;

const silent = pino({ level: "silent" });
const cleanup: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

async function store(driver: "pglite" | "postgres"): Promise<TestStore> {
  const db = await openTestStore(driver);
  cleanup.push(() => db.dispose());
  return db;
}

/** A local repository whose production version schedules `nightly` on `cron`. */
async function scheduledRepo(s: Store, cron: string): Promise<{ repo: TempRepo; key: string }> {
  const repo = tempRepo("reprise-schedules-");
  cleanup.push(() => repo.remove());
  repo.write({ "reprise.yaml": spec(cron) });
  repo.commit("schedule");
  const { version } = await registerLocalCommit(s, repo.dir, "HEAD");
  await s.production.activate({ repo: version.repo, sha: version.sha, actor: "t", reason: "test" });
  return { repo, key: version.repo };
}

/** A Scheduler whose clock the test sets. */
function scheduler(s: Store, clock: { now: number }): Scheduler {
  return new Scheduler({ store: s, log: silent, now: () => new Date(clock.now) });
}

/** The start of a minute at least `ahead` ms from now that is a multiple of `every` minutes. */
function nextSlot(everyMinutes: number, ahead = 60_000): number {
  const every = everyMinutes * 60_000;
  return Math.ceil((Date.now() + ahead) / every) * every;
}

const scheduled = (s: Store, repo: string) =>
  s.executions.list({ repo }).then((l) => l.filter((e) => e.trigger.kind === "schedule"));

describe("schedules fired by the runtime", () => {
  it("fire once per slot across replicas, on the production version, with the schedule's inputs", async () => {
    const db = await store("pglite");
    const { key } = await scheduledRepo(db.store, "*/5 * * * *");
    const slot = nextSlot(5);
    const clock = { now: slot + 5_000 };
    const [a, b] = [scheduler(db.store, clock), scheduler(db.store, clock)];
    const heard: ExecutionRecord[] = [];
    for (const s of [a, b]) s.onStarted((e) => void heard.push(e));

    const first = await Promise.all([a.tick(), b.tick()]);
    expect(first[0].length + first[1].length).toBe(1);
    expect(heard.map((e) => e.id)).toEqual([...first[0], ...first[1]].map((e) => e.id));
    // A minute later both look back over the same slot: nothing new.
    clock.now = slot + 65_000;
    expect(await Promise.all([a.tick(), b.tick()])).toEqual([[], []]);
    // No slot of the cron in between: nothing either.
    clock.now = slot + 120_000;
    expect(await a.tick()).toEqual([]);

    const started = await scheduled(db.store, key);
    expect(started).toHaveLength(1);
    expect(started[0]).toMatchObject({
      workflow: "nightly",
      inputs: { day: "today" },
      trigger: { kind: "schedule", actor: "schedule */5 * * * *" },
    });
    // The slot's claim is an inbox row already processed: no App processor ever takes it up.
    const claim = await db.store.deliveries.get(
      `${SCHEDULE_PREFIX}${key}:nightly:0:${new Date(slot).toISOString()}`,
    );
    expect(claim).toMatchObject({
      event: "reprise.schedule",
      outcome: `started ${started[0]?.id}`,
    });
    expect(claim?.processedAt).toBeInstanceOf(Date);
    expect(await db.store.deliveries.pendingCount()).toBe(0);
  });

  it("a slot missed by a stopped replica fires within 3 minutes; an older one is skipped", async () => {
    const db = await store("pglite");
    const { key } = await scheduledRepo(db.store, "*/10 * * * *");
    const slot = nextSlot(10);
    // Nothing ran at the slot; the first tick after it comes 2 min 50 s late: still in time.
    const late = { now: slot + 170_000 };
    expect(await scheduler(db.store, late).tick()).toHaveLength(1);
    // The next slot is first looked at 3 minutes after it: too late, as cron skips it.
    const later = { now: slot + 600_000 + 180_000 };
    expect(await scheduler(db.store, later).tick()).toEqual([]);
    expect(await scheduled(db.store, key)).toHaveLength(1);
  });

  it("only the production version's schedules fire, and not for slots before its activation", async () => {
    const db = await store("pglite");
    const { repo, key } = await scheduledRepo(db.store, "* * * * *");
    // Every minute is a slot, but those looked at are before the activation (less a minute's
    // grace): they belonged to the version before (none).
    const early = { now: Math.floor(Date.now() / 60_000) * 60_000 - 180_000 };
    const s = scheduler(db.store, early);
    expect(await s.tick()).toEqual([]);
    // The next version drops the schedule and becomes production: the old one's stop firing.
    repo.write({ "reprise.yaml": spec("* * * * *").replace(/ {4}on:\n.*\n/, "") });
    repo.commit("no schedule");
    const { version } = await registerLocalCommit(db.store, repo.dir, "HEAD");
    await db.store.production.activate({
      repo: key,
      sha: version.sha,
      actor: "t",
      reason: "drop the schedule",
    });
    const clock = { now: nextSlot(1) + 1_000 };
    expect(await scheduler(db.store, clock).tick()).toEqual([]);
    expect(await scheduled(db.store, key)).toEqual([]);
  });

  it("start() ticks on its own timer and stop() waits for the tick under way", async () => {
    const db = await store("pglite");
    const { key } = await scheduledRepo(db.store, "* * * * *");
    const s = new Scheduler({ store: db.store, log: silent, tickMs: 20 });
    const heard: string[] = [];
    s.onStarted((e) => void heard.push(e.id));
    s.start();
    cleanup.push(() => s.stop());
    for (let i = 0; i < 200 && heard.length === 0; i++) await new Promise((r) => setTimeout(r, 25));
    await s.stop();
    const started = await scheduled(db.store, key);
    // Every minute is a slot of `* * * * *`: the test may straddle one, never fire one twice.
    expect(started.length).toBeGreaterThanOrEqual(1);
    expect(heard.sort()).toEqual(started.map((e) => e.id).sort());
  });
});

describe.skipIf(!POSTGRES_AVAILABLE)("schedules on one Postgres database", () => {
  it("two runtimes fire each slot once, however their ticks interleave", async () => {
    const db = await store("postgres");
    // The second runtime's own connections to the same database.
    const other: OpenStore = await openStore({ databaseUrl: db.url as string, poolSize: 10 });
    cleanup.push(() => other.close());
    const { key } = await scheduledRepo(db.store, "* * * * *");
    const start = nextSlot(1, 10 * 60_000);
    const clock = { now: start };
    const replicas = [scheduler(db.store, clock), scheduler(other.store, clock)];
    let fired = 0;
    for (let minute = 0; minute < 8; minute++) {
      clock.now = start + minute * 60_000 + 1_000;
      // Both at once, several times a minute: each sees the other's claims or races it.
      for (let round = 0; round < 3; round++)
        for (const started of await Promise.all(replicas.map((r) => r.tick())))
          fired += started.length;
    }
    const started = await scheduled(db.store, key);
    // 8 minutes, and the 2 the first tick looked back on.
    expect(started).toHaveLength(10);
    expect(fired).toBe(10);
  });

  it("createOnce: concurrent claims of one slot create one execution", async () => {
    const db = await store("postgres");
    const other: OpenStore = await openStore({ databaseUrl: db.url as string, poolSize: 10 });
    cleanup.push(() => other.close());
    const { key } = await scheduledRepo(db.store, "0 0 1 1 *");
    const current = await db.store.production.current(key);
    const input = {
      repo: key,
      sha: current?.sha as string,
      workflow: "nightly",
      inputs: { day: "x" },
      trigger: { kind: "schedule" as const, actor: "t" },
    };
    const claim = { id: `${SCHEDULE_PREFIX}race`, event: "reprise.schedule", payload: {} };
    const results = await Promise.all(
      Array.from({ length: 12 }, (_, i) =>
        (i % 2 === 0 ? db.store : other.store).executions.createOnce(input, claim),
      ),
    );
    const created = results.filter((r) => r !== null);
    expect(created).toHaveLength(1);
    expect(await db.store.executions.list({ repo: key })).toHaveLength(1);
    expect((await db.store.deliveries.get(claim.id))?.outcome).toBe(`started ${created[0]?.id}`);
  });
});
