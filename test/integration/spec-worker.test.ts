/**
 * Issue 14 finding 10: reading a spec (parse, validate, hash) runs on worker threads, so a big
 * registration never holds the server's event loop, and the API takes a spec at its own 1 MiB
 * limit. Real worker threads, a real server on loopback, a real PGlite store.
 */
import { serve } from "@hono/node-server";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MAX_SPEC_BYTES } from "../../core/spec/yaml-source.js";
import { buildVersion } from "../../core/version/build-version.js";
import { createApp } from "../../runner/server/app.js";
import { Authenticator } from "../../runner/server/auth.js";
import { Metrics } from "../../runner/server/metrics.js";
import { SpecWorkerError, SpecWorkers, specWorkers } from "../../runner/spec-worker.js";
import { gitRegistration, pipeline, TREE } from "../fixtures/specs.js";
import { openTestStore, type TestStore } from "../setup/stores.js";

const ML = "github.com/acme/ml";

/** pipeline() padded with a comment to exactly `bytes` bytes. */
function specOf(bytes: number): string {
  const base = `${pipeline()}# `;
  return `${base}${"x".repeat(bytes - Buffer.byteLength(base) - 1)}\n`;
}

describe("spec workers", () => {
  const pool = new SpecWorkers({ size: 1 });
  afterAll(() => pool.close());

  it("build on a worker thread exactly what buildVersion builds on the main one", async () => {
    const spec = pipeline();
    expect(await pool.build(spec, TREE)).toEqual(buildVersion(spec, TREE));
    const invalid = "version: 1\ntasks: { a: { command: 3 } }\n";
    expect(await pool.build(invalid, TREE)).toEqual(buildVersion(invalid, TREE));
    expect(pool.stats.answered).toBe(2);
    expect([...pool.stats.threadIds]).not.toContain(0);
  });

  it("surface an error thrown while building as a SpecWorkerError, and keep the worker", async () => {
    await expect(pool.build(pipeline(), null as never)).rejects.toThrow(SpecWorkerError);
    expect(pool.stats.crashed).toBe(0);
    expect((await pool.build(pipeline(), TREE)).ok).toBe(true);
  });

  it("fail only the request whose worker died, and answer the next on a fresh worker", async () => {
    // A worker with a tiny heap, and a spec whose YAML tree does not fit in it: a real crash.
    const tiny = new SpecWorkers({ size: 1, resourceLimits: { maxOldGenerationSizeMb: 16 } });
    try {
      const heavy = `version: 1\nx: [${Array(250_000).fill("1").join(",")}]\n`;
      const [dies, next] = [tiny.build(heavy, []), tiny.build(pipeline(), TREE)];
      await expect(dies).rejects.toThrow(/the spec worker stopped \(.*memory.*\)/);
      expect((await next).ok).toBe(true);
      expect(tiny.stats.crashed).toBe(1);
      expect(tiny.stats.threadIds.size).toBe(1);
    } finally {
      await tiny.close();
    }
  });
});

describe("POST /api/v1/repos/{repo}/versions", () => {
  let store: TestStore;
  let url: string;
  let close: () => Promise<void>;
  let token: string;
  const logged: string[] = [];

  beforeAll(async () => {
    store = await openTestStore("pglite");
    token = (await store.store.tokens.create({ repos: [ML], readOnly: false })).token;
    const app = createApp({
      store: store.store,
      executor: { logTail: async () => null } as never,
      auth: new Authenticator({ store: store.store, open: false, oidc: null }),
      metrics: new Metrics(),
      publicUrl: null,
      log: (_level, message, extra) => logged.push(`${message} ${JSON.stringify(extra)}`),
    });
    const server = serve({ fetch: app.fetch, hostname: "127.0.0.1", port: 0 });
    await new Promise<void>((resolve) => server.once("listening", () => resolve()));
    url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    close = () => new Promise<void>((resolve) => server.close(() => resolve()));
  }, 60_000);

  afterAll(async () => {
    await close?.();
    await store?.dispose();
  });

  const post = async (body: unknown) => {
    const res = await fetch(`${url}/api/v1/repos/${encodeURIComponent(ML)}/versions`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    return { status: res.status, body: (await res.json()) as { errors?: unknown[] } };
  };

  it("builds the version on a spec worker thread, not on the event loop's", async () => {
    const before = specWorkers().stats.answered;
    const res = await post(gitRegistration(pipeline()));
    expect(res.status, JSON.stringify(res.body) + logged.join("\n")).toBe(201);
    expect(specWorkers().stats.answered).toBe(before + 1);
    expect([...specWorkers().stats.threadIds]).not.toContain(0);
  });

  it("takes a spec at the 1 MiB limit and registers it", async () => {
    const spec = specOf(MAX_SPEC_BYTES);
    expect(Buffer.byteLength(spec)).toBe(MAX_SPEC_BYTES);
    const res = await post(gitRegistration(spec));
    expect(res.status, JSON.stringify(res.body).slice(0, 500) + logged.join("\n")).toBe(201);
  });

  it("refuses a spec one byte over the limit as invalid, with its diagnostic, not 413", async () => {
    const res = await post(gitRegistration(specOf(MAX_SPEC_BYTES + 1)));
    expect(res.status).toBe(422);
    expect(res.body.errors?.[0]).toMatchObject({ code: "E_LIMIT" });
  });
});
