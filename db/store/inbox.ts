/**
 * The durable inbox of GitHub deliveries: stored once per X-GitHub-Delivery (answered fast),
 * processed after. A redelivery is recognised and never acts twice; a crash between the answer
 * and the processing loses nothing, because an unfinished claim expires and is claimed again.
 */
import { asc, eq, sql } from "drizzle-orm";
import type { Db } from "../connect.js";
import { rows } from "../query.js";
import { deliveries } from "../schema.js";
import type { Delivery } from "../types.js";

export class DeliveryInbox {
  constructor(private readonly db: Db) {}

  /** Stores a delivery; `stored: false` when this delivery id was already received. */
  async record(d: {
    id: string;
    event: string;
    action: string | null;
    payload: unknown;
  }): Promise<{ stored: boolean }> {
    const r = await this.db
      .insert(deliveries)
      .values(d)
      .onConflictDoNothing()
      .returning({ id: deliveries.id });
    return { stored: r.length > 0 };
  }

  /**
   * Stores many deliveries in one statement (group commit of concurrent webhook requests); returns
   * the ids that were new. An id repeated within `ds` is stored once.
   */
  async recordMany(
    ds: ReadonlyArray<{ id: string; event: string; action: string | null; payload: unknown }>,
  ): Promise<Set<string>> {
    if (ds.length === 0) return new Set();
    const r = await this.db
      .insert(deliveries)
      .values([...ds])
      .onConflictDoNothing()
      .returning({ id: deliveries.id });
    return new Set(r.map((x) => x.id));
  }

  /** Claims the oldest unprocessed delivery not claimed by a live processor. */
  async claimNext(claimMs: number): Promise<Delivery | null> {
    const [r] = await rows<{ id: string }>(
      this.db,
      sql`with next as (
            select id from deliveries
             where processed_at is null and (locked_until is null or locked_until < now())
             order by received_at, id limit 1 for update skip locked)
          update deliveries d set locked_until = now() + make_interval(secs => ${claimMs / 1000}), attempts = d.attempts + 1
            from next where d.id = next.id
          returning d.id`,
    );
    return r ? this.get(r.id) : null;
  }

  /** Gives a claimed delivery back, to be claimed again after `ms` (a failed attempt's backoff). */
  async retryLater(id: string, ms: number, error: string): Promise<void> {
    await this.db
      .update(deliveries)
      .set({
        lockedUntil: sql`now() + make_interval(secs => ${ms / 1000})`,
        outcome: `retrying: ${error}`,
      })
      .where(eq(deliveries.id, id));
  }

  async finish(id: string, outcome: string): Promise<void> {
    await this.db
      .update(deliveries)
      .set({ processedAt: sql`now()`, outcome, lockedUntil: null })
      .where(eq(deliveries.id, id));
  }

  async get(id: string): Promise<Delivery | null> {
    const [r] = await this.db.select().from(deliveries).where(eq(deliveries.id, id));
    if (!r) return null;
    return {
      id: r.id,
      event: r.event,
      action: r.action,
      payload: r.payload,
      receivedAt: r.receivedAt,
      attempts: r.attempts,
      processedAt: r.processedAt,
      outcome: r.outcome,
    };
  }

  async pendingCount(): Promise<number> {
    const [r] = await rows<{ n: string | number }>(
      this.db,
      sql`select count(*) as n from deliveries where processed_at is null`,
    );
    return Number(r?.n ?? 0);
  }

  async list(limit = 50): Promise<Delivery[]> {
    const rs = await this.db
      .select({ id: deliveries.id })
      .from(deliveries)
      .orderBy(asc(deliveries.receivedAt))
      .limit(limit);
    const out: Delivery[] = [];
    for (const r of rs) {
      const d = await this.get(r.id);
      if (d) out.push(d);
    }
    return out;
  }
}
