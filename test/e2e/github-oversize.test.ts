/**
 * Webhook deliveries by size, over real HTTP (issue 9): the webhook route takes what GitHub may
 * send (payloads up to 25 MB), the rest of the API keeps its 1 MiB. A body over 25 MiB is refused
 * with 413 and an error document, whether its length is declared or it comes chunked, signed or
 * not, and nothing is stored; the server goes on answering.
 */
import { randomUUID } from "node:crypto";
import { request as httpRequest } from "node:http";
import { type ServerType, serve } from "@hono/node-server";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { GitHubApp } from "../../app/app.js";
import { createApp, MAX_WEBHOOK_BYTES } from "../../runner/server/app.js";
import { Authenticator } from "../../runner/server/auth.js";
import { Metrics } from "../../runner/server/metrics.js";
import { tempRepo } from "../fakes/git-repo.js";
import { FakeGitHub, pushPayload, sign, testGitHubApp } from "../fakes/github/index.js";
import { openTestStore, type TestStore } from "../setup/stores.js";

const SECRET = "oversize-secret";
const MiB = 1024 * 1024;

let db: TestStore;
let fake: FakeGitHub;
let github: GitHubApp;
let server: ServerType;
let port: number;
let repo: ReturnType<typeof tempRepo>;
let head: string;

beforeAll(async () => {
  db = await openTestStore("pglite");
  fake = await FakeGitHub.start();
  repo = tempRepo("reprise-github-oversize-");
  repo.write({ "README.md": "no spec\n" });
  head = repo.commit("first");
  fake.addRepo({ fullName: "acme/big", dir: repo.dir });
  github = testGitHubApp({
    store: db.store,
    fake,
    secret: SECRET,
    tickMs: 50,
  });
  const app = createApp({
    store: db.store,
    executor: { logTail: async () => null },
    auth: new Authenticator({ store: db.store, open: false, oidc: null }),
    metrics: new Metrics(),
    publicUrl: null,
    log: () => undefined,
    webhooks: github.webhooks,
  });
  await new Promise<void>((resolve) => {
    server = serve({ fetch: app.fetch, hostname: "127.0.0.1", port: 0 }, (info) => {
      port = info.port;
      resolve();
    });
  });
  github.start();
}, 60_000);

afterAll(async () => {
  await github?.close();
  await new Promise((r) => server?.close(r));
  await fake?.close();
  repo?.remove();
  await db?.dispose();
});

interface Answer {
  status: number;
  body: { error?: { code: string; message: string } } & Record<string, unknown>;
}

/**
 * POSTs `body` with node:http, as a declared length or in 1 MiB chunks. Resolves with the answer
 * even when the server answers before the body is sent and closes (writes after that fail).
 */
function post(
  path: string,
  body: Buffer,
  headers: Record<string, string>,
  chunked = false,
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      {
        host: "127.0.0.1",
        port,
        path,
        method: "POST",
        // A connection of its own: the server may close one whose body it did not read.
        agent: false,
        headers: {
          "content-type": "application/json",
          ...headers,
          ...(chunked ? {} : { "content-length": String(body.length) }),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as Answer["body"] });
        });
        res.on("error", reject);
      },
    );
    req.setMaxListeners(0);
    let answered = false;
    req.on("response", () => {
      answered = true;
    });
    req.on("error", (e) => {
      if (!answered) reject(e);
    });
    if (!chunked) {
      req.end(body);
      return;
    }
    (async () => {
      for (let i = 0; i < body.length && !answered && !req.destroyed; i += MiB) {
        if (!req.write(body.subarray(i, i + MiB)))
          await new Promise<void>((r) => {
            req.once("drain", r);
            req.once("close", r);
          });
      }
      if (!req.destroyed) req.end();
    })().catch(() => undefined);
  });
}

function webhook(
  payload: string,
  opts: { signed?: boolean; chunked?: boolean; id?: string } = {},
): Promise<Answer & { id: string }> {
  const id = opts.id ?? randomUUID();
  const headers: Record<string, string> = { "x-github-event": "push", "x-github-delivery": id };
  if (opts.signed !== false) headers["x-hub-signature-256"] = sign(SECRET, payload);
  return post("/api/github/webhooks", Buffer.from(payload), headers, opts.chunked).then((a) => ({
    ...a,
    id,
  }));
}

/** A valid push payload of about `bytes` (a long commit message: GitHub sends them as they are). */
function pushOf(bytes: number): string {
  const p = pushPayload({ repo: "acme/big", branch: "main", before: "0".repeat(40), after: head });
  const size = Buffer.byteLength(JSON.stringify(p)) - 100;
  p.head_commit = { id: head, message: "m".repeat(Math.max(0, bytes - size)) };
  return JSON.stringify(p);
}

async function stillAnswering(): Promise<void> {
  const health = await fetch(`http://127.0.0.1:${port}/healthz`);
  expect(health.status).toBe(200);
  const small = await webhook(pushOf(1_000));
  expect(small.status).toBe(202);
}

describe("webhook deliveries by size", () => {
  it("takes a 2 MiB push, which the API's 1 MiB limit would refuse, and processes it", async () => {
    const body = pushOf(2 * MiB);
    expect(body.length).toBeGreaterThan(2 * MiB - 1);
    const sent = await webhook(body);
    expect(sent.status).toBe(202);
    await github.idle();
    expect(await db.store.deliveries.get(sent.id)).toMatchObject({
      attempts: 1,
      outcome: "no reprise.yaml",
    });
    // The rest of the API keeps its limit (registration has its own, for a spec and its trees).
    const api = await post("/api/v1/repos/x/executions", Buffer.from(body), {});
    expect(api.status).toBe(413);
    expect(api.body.error?.message).toContain("1048576 bytes");
  }, 60_000);

  it("refuses a delivery over 25 MiB with 413, declared or chunked, signed or not; stores nothing", async () => {
    const body = pushOf(MAX_WEBHOOK_BYTES + MiB);
    for (const opts of [
      { signed: true, chunked: false },
      { signed: true, chunked: true },
      { signed: false, chunked: false },
      { signed: false, chunked: true },
    ]) {
      const sent = await webhook(body, opts);
      expect(sent.status, JSON.stringify(opts)).toBe(413);
      expect(sent.body.error?.code).toBe("payload_too_large");
      expect(sent.body.error?.message).toContain(`${MAX_WEBHOOK_BYTES} bytes (25 MiB)`);
      expect(await db.store.deliveries.get(sent.id)).toBeNull();
      await stillAnswering();
    }
    await github.idle();
    expect(await db.store.deliveries.pendingCount()).toBe(0);
  }, 60_000);

  it("refuses an unsigned delivery under the limit with 401, without storing it", async () => {
    const sent = await webhook(pushOf(3 * MiB), { signed: false });
    expect(sent.status).toBe(401);
    expect(await db.store.deliveries.get(sent.id)).toBeNull();
    await stillAnswering();
  }, 30_000);
});
