/**
 * Hostile API bodies (issue 9): arbitrary JSON, and arbitrary bytes, posted to every route that
 * takes a body, with a valid credential. Every answer is a 4xx that says what is wrong (or a
 * success for a body that happens to be valid), never a 500, and the server goes on answering.
 */
import fc from "fast-check";
import type { Hono } from "hono";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createApp } from "../../runner/server/app.js";
import { Authenticator } from "../../runner/server/auth.js";
import { Metrics } from "../../runner/server/metrics.js";
import { gitRegistration, pipeline } from "../fixtures/specs.js";
import { openTestStore, type TestStore } from "../setup/stores.js";

const REPO = encodeURIComponent("github.com/acme/fuzz");
let store: TestStore;
let app: Hono;
let token: string;
let execution: string;
const errors: string[] = [];

beforeAll(async () => {
  store = await openTestStore("pglite");
  token = (await store.store.tokens.create({ repos: ["github.com/acme/fuzz"], readOnly: false }))
    .token;
  app = createApp({
    store: store.store,
    executor: { logTail: async () => null },
    auth: new Authenticator({ store: store.store, open: false, oidc: null }),
    metrics: new Metrics(),
    publicUrl: null,
    log: (_level, message, extra) => errors.push(`${message} ${JSON.stringify(extra)}`),
  });
  const reg = gitRegistration(pipeline());
  const s = reg.sha;
  const post = (path: string, body: unknown) =>
    app.request(path, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify(body),
    });
  expect((await post(`/api/v1/repos/${REPO}/versions`, reg)).status).toBe(201);
  const started = await post(`/api/v1/repos/${REPO}/executions`, { workflow: "train", sha: s });
  execution = ((await started.json()) as { id: string }).id;
}, 60_000);

afterAll(async () => {
  await store?.dispose();
});

const ROUTES = () => [
  `/api/v1/repos/${REPO}/versions`,
  `/api/v1/repos/${REPO}/executions`,
  `/api/v1/repos/${REPO}/production`,
  `/api/v1/executions/${execution}/relaunch`,
];

async function send(path: string, body: string): Promise<number> {
  const res = await app.request(path, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body,
  });
  const text = await res.text();
  if (res.status >= 400) {
    const parsed = JSON.parse(text) as { error?: { code?: string; message?: string } };
    expect(parsed.error?.code, text).toBeTruthy();
    expect(parsed.error?.message, text).toBeTruthy();
  }
  return res.status;
}

describe("API bodies", () => {
  it("arbitrary JSON values: 2xx or 4xx with an error document, never 500", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...ROUTES()),
        fc.jsonValue({ maxDepth: 5 }),
        async (path, value) => {
          const status = await send(path, JSON.stringify(value) ?? "null");
          expect(status).toBeLessThan(500);
        },
      ),
      { numRuns: 150 },
    );
    expect(errors).toEqual([]);
  }, 120_000);

  it("objects shaped like the real bodies, with hostile field values", async () => {
    const field = fc.oneof(
      fc.string({ maxLength: 50 }),
      fc.integer(),
      fc.constant(null),
      fc.array(fc.anything({ maxDepth: 2 }), { maxLength: 3 }),
      fc.constant("a".repeat(40)),
      fc.constant("../../etc/passwd"),
    );
    const body = fc.record(
      {
        workflow: field,
        sha: field,
        ref: field,
        production: fc.oneof(fc.boolean(), field),
        inputs: fc.oneof(
          fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 3 })),
          field,
        ),
        spec: field,
        tree: fc.oneof(
          fc.array(fc.record({ path: field, mode: field, sha: field }), { maxLength: 4 }),
          field,
        ),
        recover: fc.oneof(fc.boolean(), field),
        reason: field,
      },
      { requiredKeys: [] },
    );
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...ROUTES()), body, async (path, value) => {
        expect(await send(path, JSON.stringify(value))).toBeLessThan(500);
      }),
      { numRuns: 200 },
    );
    expect(errors).toEqual([]);
  }, 120_000);

  it("bytes that are not JSON: 400", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...ROUTES()),
        fc.string({ unit: "binary", maxLength: 200 }),
        async (path, text) => {
          let json = true;
          try {
            JSON.parse(text);
          } catch {
            json = false;
          }
          fc.pre(!json);
          expect(await send(path, text)).toBe(400);
        },
      ),
      { numRuns: 100 },
    );
  }, 60_000);
});
