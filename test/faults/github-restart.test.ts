/**
 * Postgres restarted in the middle of a burst of webhook deliveries (issue 9): the App's real
 * webhook endpoint over HTTP, on a Postgres server of the test's own (test/setup/private-postgres.ts)
 * that is restarted with `pg_ctl restart -m fast` while deliveries arrive and are processed.
 *
 * A delivery that could not be stored is answered 500 and the sender redelivers it with the same
 * id, as GitHub's "Redeliver" does (GitHub itself does not retry). Duplicates of ids already sent
 * are mixed into the burst. Then: every unique delivery is stored once and processed once (one
 * version per pushed SHA, one `reprise/register` check run per SHA), none is lost, none failed.
 */
import type { AddressInfo } from "node:net";
import { type ServerType, serve } from "@hono/node-server";
import { sql } from "drizzle-orm";
import type { Pool } from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { GitHubApp } from "../../app/app.js";
import { rows } from "../../db/query.js";
import { type OpenStore, openStore } from "../../db/store.js";
import { pushSeries, type TempRepo } from "../fakes/git-repo.js";
import { deliver, FakeGitHub, pushBurst, testGitHubApp, until } from "../fakes/github/index.js";
import { type PrivatePostgres, startPrivatePostgres } from "../setup/private-postgres.js";

const SECRET = "restart-secret";
const REPOS = 10;
const PUSHES = 8;
const DUPLICATES = 20;

let pg: PrivatePostgres;
let open: OpenStore;
let fake: FakeGitHub;
let app: GitHubApp;
let server: ServerType;
let url: string;
let repo: TempRepo;
let shas: string[];

beforeAll(async () => {
  pg = await startPrivatePostgres();
  open = await openStore({ databaseUrl: pg.url, migrate: true, poolSize: 8 });
  fake = await FakeGitHub.start();
  ({ repo, shas } = pushSeries(PUSHES));
  for (let r = 0; r < REPOS; r++)
    fake.addRepo({ fullName: `acme/r${r}`, dir: repo.dir, installationId: r + 1 });
  app = testGitHubApp({
    store: open.store,
    fake,
    secret: SECRET,
    host: fake.host,
    concurrency: 4,
    tickMs: 100,
  });
  server = serve({ fetch: (req) => app.webhooks(req), hostname: "127.0.0.1", port: 0 });
  await new Promise<void>((r) => (server.listening ? r() : server.once("listening", () => r())));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}, 60_000);

afterAll(async () => {
  // Each step bounded, so that a hang names itself rather than time the hook out.
  const step = async (what: string, p: Promise<unknown> | undefined) => {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} did not finish in 20 s`)), 20_000);
    });
    try {
      await Promise.race([p, late]);
    } finally {
      clearTimeout(timer);
    }
  };
  try {
    await step("the App's close()", app?.close());
    server?.close();
    await step("the fake GitHub's close()", fake?.close());
    await step("the store's close()", open?.close());
  } finally {
    pg?.stop();
    repo?.remove();
  }
}, 90_000);

describe("a Postgres restart during a burst of deliveries", () => {
  it("stores and processes every delivery exactly once", async () => {
    const unique = pushBurst("acme/r", REPOS, shas);
    // Duplicates (same id, same body) later in the same burst, some within the outage.
    const burst = [...unique];
    for (let i = 0; i < DUPLICATES; i++)
      burst.splice(20 + i * 4, 0, unique[i * 3] as (typeof unique)[number]);

    const [before] = await rows<{ t: string }>(
      open.store.db,
      sql`select pg_postmaster_start_time()::text as t`,
    );
    app.start();
    let answered = 0;
    let refused = 0;
    let restarting: Promise<void> | null = null;
    const answers = new Map<string, number[]>();
    let next = 0;
    const lane = async () => {
      for (let i = next++; i < burst.length; i = next++) {
        const d = burst[i] as (typeof burst)[number];
        // Redeliver what was not stored (a 5xx or no answer), as the App's answer asks.
        for (let tries = 0; ; tries++) {
          const status = await deliver(url, "push", d.payload, { secret: SECRET, id: d.id }).then(
            (s) => s.status,
            () => 0,
          );
          if (status === 200 || status === 202) {
            answers.set(d.id, [...(answers.get(d.id) ?? []), status]);
            break;
          }
          refused++;
          if (tries > 300) throw new Error(`delivery ${d.id} never stored (last answer ${status})`);
          await new Promise((r) => setTimeout(r, 100));
        }
        if (++answered === 20) restarting = pg.restart();
        // Paced while the server restarts, so that the burst spans the outage.
        if (restarting) await new Promise((r) => setTimeout(r, 40));
      }
    };
    await Promise.all(Array.from({ length: 8 }, lane));
    await restarting;
    // And again while the stored deliveries are being worked on.
    const processed = () =>
      rows<{ n: number }>(
        open.store.db,
        sql`select count(*)::int as n from deliveries where processed_at is not null`,
      ).then((r) => r[0]?.n ?? 0);
    await until("10 deliveries processed", async () => (await processed()) >= 10, 60_000);
    const midway = await processed();
    await pg.restart();
    await app.idle(120_000);

    const [after] = await rows<{ t: string }>(
      open.store.db,
      sql`select pg_postmaster_start_time()::text as t`,
    );
    expect(after?.t).not.toBe(before?.t);
    // The outage was met: some deliveries had to be redelivered.
    expect(refused).toBeGreaterThan(0);
    expect(midway).toBeLessThan(unique.length);

    // Each unique delivery stored once: one 202 for it, a 200 for any later copy.
    expect(answers.size).toBe(unique.length);
    for (const d of unique) {
      const got = answers.get(d.id) ?? [];
      expect(got.filter((s) => s === 202).length).toBeLessThanOrEqual(1);
    }
    const inbox = await rows<{ n: number; done: number; failed: number }>(
      open.store.db,
      sql`select count(*)::int as n,
                 count(*) filter (where processed_at is not null)::int as done,
                 count(*) filter (where outcome like 'failed%')::int as failed
            from deliveries where event = 'push'`,
    );
    expect(inbox[0]).toEqual({ n: unique.length, done: unique.length, failed: 0 });

    // Processed once: a version per pushed SHA, and one register check run for each.
    let versions = 0;
    for (let r = 0; r < REPOS; r++)
      versions += (await open.store.versions.list(`${fake.host}/acme/r${r}`, { limit: 100 }))
        .length;
    expect(versions).toBe(REPOS * PUSHES);
    const perCommit = new Map<string, number>();
    for (const c of fake.checkRuns.filter((c) => c.name === "reprise/register")) {
      const k = `${c.repo}@${c.head_sha}`;
      perCommit.set(k, (perCommit.get(k) ?? 0) + 1);
    }
    expect(perCommit.size).toBe(REPOS * PUSHES);
    expect([...perCommit.values()].filter((n) => n !== 1)).toEqual([]);

    // Every pooled connection went back: none was kept by a transaction whose BEGIN the restart
    // cut (drizzle-orm's own transaction() leaks those; db/query.ts transaction() does not).
    await app.close();
    const pool = (open.store.db as unknown as { $client: Pool }).$client;
    expect(pool.totalCount - pool.idleCount).toBe(0);
  }, 180_000);
});
