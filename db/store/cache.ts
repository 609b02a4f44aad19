/**
 * The memo cache (docs/design.md section 5): lookups, single-flight reservations, eviction, stats.
 * Entries are written only by ExecutionTx.completeNode, in the node's success transaction.
 */
import { and, eq, gt, inArray, type SQL, sql } from "drizzle-orm";
import type { JsonValue } from "../../core/spec/types.js";
import type { Db } from "../connect.js";
import { rows } from "../query.js";
import { cacheEntries, cacheReservations } from "../schema.js";
import type { CacheEntry, Reservation } from "../types.js";

export interface CacheStats {
  taskName: string;
  taskDigest: string;
  entries: number;
  hits: number;
  lastHitAt: Date | null;
}

export class CacheStore {
  // Lookups are the hottest read: named prepared statements skip parsing and planning per call.
  private readonly lookupAny;
  private readonly lookupFresh;

  constructor(private readonly db: Db) {
    this.lookupAny = this.db
      .select()
      .from(cacheEntries)
      .where(eq(cacheEntries.key, sql.placeholder("key")))
      .prepare("reprise_cache_lookup");
    this.lookupFresh = this.db
      .select()
      .from(cacheEntries)
      .where(
        and(
          eq(cacheEntries.key, sql.placeholder("key")),
          gt(cacheEntries.createdAt, sql`now() - make_interval(secs => ${sql.placeholder("ttl")})`),
        ),
      )
      .prepare("reprise_cache_lookup_ttl");
  }

  /** The entry for `key`, ignoring one older than `ttlSeconds` (null: any age). */
  async lookup(key: string, ttlSeconds: number | null = null): Promise<CacheEntry | null> {
    const [r] =
      ttlSeconds === null
        ? await this.lookupAny.execute({ key })
        : await this.lookupFresh.execute({ key, ttl: ttlSeconds });
    return r ? toEntry(r) : null;
  }

  /**
   * Many lookups in one query (the nodes of a fan-out that became ready together): the entries
   * found, by key, each ignoring one older than its own `ttlSeconds`.
   */
  async lookupMany(
    wanted: ReadonlyArray<{ key: string; ttlSeconds: number | null }>,
  ): Promise<Map<string, CacheEntry>> {
    const found = new Map<string, CacheEntry>();
    if (wanted.length === 0) return found;
    const ttl = new Map(wanted.map((w) => [w.key, w.ttlSeconds]));
    const rs = await this.db
      .select({
        entry: cacheEntries,
        ageSeconds: sql<number>`extract(epoch from now() - ${cacheEntries.createdAt})::float8`,
      })
      .from(cacheEntries)
      .where(inArray(cacheEntries.key, [...ttl.keys()]));
    for (const { entry, ageSeconds } of rs) {
      const limit = ttl.get(entry.key);
      if (limit === null || limit === undefined || Number(ageSeconds) < limit)
        found.set(entry.key, toEntry(entry));
    }
    return found;
  }

  /**
   * Takes the reservation of `key` for `owner`, or takes it over when its holder's heartbeat
   * expired, in one statement. Otherwise says who holds it and until when.
   */
  async reserve(key: string, repo: string, owner: string, ttlMs: number): Promise<Reservation> {
    const [mine] = await rows<{ owner: string; expires_at: Date | string }>(
      this.db,
      sql`insert into cache_reservations (key, repo, owner, expires_at)
          values (${key}, ${repo}, ${owner}, now() + make_interval(secs => ${ttlMs / 1000}))
          on conflict (key) do update
             set owner = excluded.owner, expires_at = excluded.expires_at, created_at = now()
           where cache_reservations.expires_at < now() or cache_reservations.owner = excluded.owner
       returning owner, expires_at`,
    );
    if (mine) return { acquired: true, owner: mine.owner, expiresAt: new Date(mine.expires_at) };
    const [held] = await this.db
      .select()
      .from(cacheReservations)
      .where(eq(cacheReservations.key, key));
    // Released between our insert and this read: try once more.
    if (!held) return this.reserve(key, repo, owner, ttlMs);
    return { acquired: false, owner: held.owner, expiresAt: held.expiresAt };
  }

  /** Extends a held reservation; false when it was lost (expired and taken over). */
  async heartbeat(key: string, owner: string, ttlMs: number): Promise<boolean> {
    const r = await this.db
      .update(cacheReservations)
      .set({ expiresAt: sql`now() + make_interval(secs => ${ttlMs / 1000})` })
      .where(and(eq(cacheReservations.key, key), eq(cacheReservations.owner, owner)))
      .returning({ key: cacheReservations.key });
    return r.length > 0;
  }

  async release(key: string, owner: string): Promise<boolean> {
    const r = await this.db
      .delete(cacheReservations)
      .where(and(eq(cacheReservations.key, key), eq(cacheReservations.owner, owner)))
      .returning({ key: cacheReservations.key });
    return r.length > 0;
  }

  async reservation(key: string): Promise<{ owner: string; expiresAt: Date } | null> {
    const [r] = await this.db
      .select()
      .from(cacheReservations)
      .where(eq(cacheReservations.key, key));
    return r ? { owner: r.owner, expiresAt: r.expiresAt } : null;
  }

  /** Evicts entries of one repository by key, task (name or digest) or source execution. */
  async evict(
    repo: string,
    by: { key?: string; taskName?: string; taskDigest?: string; sourceExecution?: string },
  ): Promise<number> {
    const where: SQL[] = [eq(cacheEntries.repo, repo)];
    if (by.key) where.push(eq(cacheEntries.key, by.key));
    if (by.taskName) where.push(eq(cacheEntries.taskName, by.taskName));
    if (by.taskDigest) where.push(eq(cacheEntries.taskDigest, by.taskDigest));
    if (by.sourceExecution) where.push(eq(cacheEntries.sourceExecutionId, by.sourceExecution));
    if (where.length === 1) throw new Error("evict needs a key, a task or a source execution");
    const r = await this.db
      .delete(cacheEntries)
      .where(and(...where))
      .returning({ key: cacheEntries.key });
    return r.length;
  }

  async stats(repo: string): Promise<CacheStats[]> {
    const rs = await rows<{
      task_name: string;
      task_digest: string;
      entries: string | number;
      hits: string | number;
      last_hit_at: Date | string | null;
    }>(
      this.db,
      sql`select task_name, task_digest, count(*) as entries, coalesce(sum(hit_count), 0) as hits, max(last_hit_at) as last_hit_at
            from cache_entries where repo = ${repo}
           group by task_name, task_digest order by task_name, task_digest`,
    );
    return rs.map((r) => ({
      taskName: r.task_name,
      taskDigest: r.task_digest,
      entries: Number(r.entries),
      hits: Number(r.hits),
      lastHitAt: r.last_hit_at === null ? null : new Date(r.last_hit_at),
    }));
  }
}

function toEntry(r: typeof cacheEntries.$inferSelect): CacheEntry {
  return {
    key: r.key,
    repo: r.repo,
    taskName: r.taskName,
    taskDigest: r.taskDigest,
    identity: r.identity,
    outputs: r.outputs as Record<string, JsonValue>,
    source: { execution: r.sourceExecutionId, node: r.sourceNodeId },
    createdAt: r.createdAt,
    lastHitAt: r.lastHitAt,
    hitCount: r.hitCount,
  };
}
