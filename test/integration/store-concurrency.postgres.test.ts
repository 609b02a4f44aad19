/**
 * Races on real Postgres, each over separate connections: one winner every time. (PGlite is one
 * connection in one process, so these races cannot happen there.)
 */
import { sql } from "drizzle-orm";
import { drizzle } from "drizzle-orm/node-postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Db } from "../../db/connect.js";
import { rows } from "../../db/query.js";
import * as schema from "../../db/schema.js";
import { Store } from "../../db/store.js";
import { built, pipeline, sha } from "../fixtures/specs.js";
import { testPool } from "../setup/postgres.js";
import { openTestStore, POSTGRES_AVAILABLE, type TestStore } from "../setup/stores.js";

const REPO = "github.com/acme/race";

describe.skipIf(!POSTGRES_AVAILABLE)("concurrency on Postgres", () => {
  let t: TestStore;
  const pools: ReturnType<typeof testPool>[] = [];
  beforeAll(async () => {
    t = await openTestStore("postgres");
  });
  afterAll(async () => {
    await Promise.all(pools.map((p) => p.close()));
    await t?.dispose();
  });

  /** A Store on its own pool of `size` connections to the test database. */
  function separateStore(size: number): Store {
    const p = testPool(t.url as string, size);
    pools.push(p);
    return new Store(drizzle(p.pool, { schema }) as unknown as Db);
  }

  it("20 connections registering the same SHA yield exactly one version", async () => {
    const at = sha();
    const stores = Array.from({ length: 20 }, () => separateStore(1));
    const results = await Promise.all(
      stores.map((s, i) =>
        s.versions.register({
          repo: REPO,
          sha: at,
          parents: [],
          ref: "main",
          message: `writer ${i}`,
          result: built(pipeline()),
          by: { source: "client", actor: `token:${i}` },
        }),
      ),
    );
    expect(results.filter((r) => r.created)).toHaveLength(1);
    const winner = results.find((r) => r.created)?.version;
    for (const r of results) expect(r.version).toEqual(winner);
    const [count] = await rows<{ versions: number; mappings: number }>(
      t.store.db,
      sql`select (select count(*)::int from versions where sha = ${at}) as versions,
                 (select count(*)::int from version_tasks where sha = ${at}) as mappings`,
    );
    expect(count).toEqual({ versions: 1, mappings: 2 });
  });

  it("50 concurrent claims of one reservation have exactly one winner", async () => {
    const s = separateStore(50);
    const key = `sha256:${sha()}`;
    const claims = await Promise.all(
      Array.from({ length: 50 }, (_, i) => s.cache.reserve(key, REPO, `e${i}/a/1`, 30_000)),
    );
    const winners = claims.filter((c) => c.acquired);
    expect(winners).toHaveLength(1);
    for (const c of claims) expect(c.owner).toBe(winners[0]?.owner);
  });

  it("two runners racing for the same executions never share one", async () => {
    const { version } = await t.store.versions.register({
      repo: REPO,
      sha: sha(),
      parents: [],
      ref: null,
      message: null,
      result: built(pipeline()),
      by: { source: "client", actor: "token:t" },
    });
    const ids: string[] = [];
    for (let i = 0; i < 20; i++) {
      const e = await t.store.executions.create({
        repo: REPO,
        sha: version.sha,
        workflow: "train",
        inputs: {},
        trigger: { kind: "api", actor: "x" },
      });
      ids.push(e.id);
    }
    const [r1, r2] = [separateStore(4), separateStore(4)];
    const race = async (s: Store, owner: string) => {
      const got: string[] = [];
      // Small batches, many rounds: the runners interleave on the same rows.
      for (let round = 0; round < 20; round++) {
        const leases = await s.executions.claim(owner, { leaseMs: 60_000, limit: 2, ids });
        got.push(...leases.map((l) => l.executionId));
      }
      return got;
    };
    const [a, b] = await Promise.all([race(r1, "runner-a"), race(r2, "runner-b")]);
    expect(a.filter((id) => b.includes(id))).toEqual([]);
    expect([...a, ...b].sort()).toEqual([...ids].sort());
    const owners = await rows<{ lease_owner: string; n: number }>(
      t.store.db,
      sql`select lease_owner, count(*)::int as n from executions where id in (${sql.join(
        ids.map((i) => sql`${i}`),
        sql`, `,
      )}) group by lease_owner order by lease_owner`,
    );
    expect(owners.reduce((n, o) => n + o.n, 0)).toBe(20);
    expect(owners.find((o) => o.lease_owner === "runner-a")?.n).toBe(a.length);
  });
});
