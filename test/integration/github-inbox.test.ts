/**
 * The App's inbox without HTTP: `app.webhooks(request)` as Hono calls it. Unsigned requests are
 * refused before anything is stored; a delivery stored by a replica that stopped before working
 * on it is processed by the next one to start.
 */
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sign, testGitHubApp } from "../fakes/github/index.js";
import { openTestStore, type TestStore } from "../setup/stores.js";

let db: TestStore;
const app = () => testGitHubApp({ store: db.store, tickMs: 50 });

function request(id: string, body: string, signature: string | null): Request {
  const headers: Record<string, string> = { "x-github-event": "ping", "x-github-delivery": id };
  if (signature) headers["x-hub-signature-256"] = signature;
  return new Request("http://x/api/github/webhooks", { method: "POST", headers, body });
}

beforeAll(async () => {
  db = await openTestStore("pglite");
});
afterAll(() => db.dispose());

describe("the delivery inbox", () => {
  it("stores a signed delivery once, and the next replica to start processes what the last left", async () => {
    const first = app();
    const body = JSON.stringify({ zen: "Keep it logically awesome." });
    const answer = await first.webhooks(request("d-1", body, sign("s", body)));
    expect(answer.status).toBe(202);
    expect(await answer.json()).toEqual({ delivery: "d-1", stored: true });
    const again = await first.webhooks(request("d-1", body, sign("s", body)));
    expect(again.status).toBe(200);
    // This replica stops before working on it (never started its processors).
    await first.close();
    expect(await db.store.deliveries.pendingCount()).toBe(1);

    const next = app();
    next.start();
    await next.idle();
    await next.close();
    expect(await db.store.deliveries.get("d-1")).toMatchObject({
      attempts: 1,
      outcome: "ignored: event ping",
    });
  });

  it("refuses a missing or wrong signature with 401 before storing anything", async () => {
    const a = app();
    const body = "{}";
    expect((await a.webhooks(request("d-2", body, null))).status).toBe(401);
    expect((await a.webhooks(request("d-3", body, sign("other", body)))).status).toBe(401);
    expect((await a.webhooks(request("d-4", "[1]", sign("s", "[1]")))).status).toBe(400);
    await a.close();
    for (const id of ["d-2", "d-3", "d-4"]) expect(await db.store.deliveries.get(id)).toBeNull();
  });

  it("stores the good deliveries of a burst that also carries one the database refuses", async () => {
    const a = app();
    const good = JSON.stringify({ zen: "fine" });
    // The endpoint makes any JSON storable (test/fuzz/github.fuzz.test.ts), so the refusal is
    // injected: a trigger that refuses one delivery id, as a constraint or a full disk might.
    await db.store.db.execute(sql`
      create function refuse_g2() returns trigger language plpgsql as $$
      begin
        if new.id = 'g-2' then raise exception 'refused by the test'; end if;
        return new;
      end $$`);
    await db.store.db.execute(
      sql`create trigger refuse_g2 before insert on deliveries for each row execute function refuse_g2()`,
    );
    try {
      const answers = await Promise.all([
        a.webhooks(request("g-1", good, sign("s", good))),
        a.webhooks(request("g-2", good, sign("s", good))),
        a.webhooks(request("g-3", good, sign("s", good))),
      ]);
      expect(answers.map((r) => r.status)).toEqual([202, 500, 202]);
      expect(await answers[1]?.json()).toMatchObject({ error: { code: "not_stored" } });
      expect(await db.store.deliveries.get("g-1")).not.toBeNull();
      expect(await db.store.deliveries.get("g-2")).toBeNull();
      expect(await db.store.deliveries.get("g-3")).not.toBeNull();
    } finally {
      await a.close();
      await db.store.db.execute(sql`drop trigger refuse_g2 on deliveries`);
    }
  });
});
