/**
 * Hostile artifact requests (runner/server/artifacts-api.ts): arbitrary digests and query
 * parameters on every artifact route, arbitrary bytes under true and false digests, and
 * manifests built to break the checks (`..` and absolute paths, links out of the tree, deep
 * JSON, wrong kinds and sizes, a million entries). Every answer is a success or a 4xx with an
 * error document, never a 500, nothing is stored for a refusal, and the server goes on answering.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import type { Hono } from "hono";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { canonicalJson } from "../../core/hash/digest.js";
import { LocalBlobStore } from "../../runner/artifacts/local-store.js";
import { createApp } from "../../runner/server/app.js";
import { digestOf } from "../../runner/server/artifact-content.js";
import { Authenticator } from "../../runner/server/auth.js";
import { Metrics } from "../../runner/server/metrics.js";
import { openTestStore, type TestStore } from "../setup/stores.js";

const REPO = "github.com/acme/fuzz-artifacts";
const R = encodeURIComponent(REPO);
let store: TestStore;
let blobs: LocalBlobStore;
let work: string;
let app: Hono;
let token: string;
/** A file and a directory the repository holds. */
const held = { file: "", dir: "" };
const errors: string[] = [];

beforeAll(async () => {
  store = await openTestStore("pglite");
  work = mkdtempSync(join(tmpdir(), "reprise-fuzz-artifacts-"));
  blobs = new LocalBlobStore(join(work, "artifacts"));
  token = (await store.store.tokens.create({ repos: [REPO], readOnly: false })).token;
  app = createApp({
    store: store.store,
    executor: { logTail: async () => null },
    artifacts: blobs,
    auth: new Authenticator({ store: store.store, open: false, oidc: null }),
    metrics: new Metrics(),
    publicUrl: null,
    log: (level, message, extra) => {
      if (level === "error") errors.push(`${message} ${JSON.stringify(extra)}`);
    },
  });
  const bytes = Buffer.from("held\n");
  held.file = digestOf(bytes);
  expect((await send("PUT", `/api/v1/repos/${R}/artifacts/${held.file}`, bytes)).status).toBe(201);
  const manifest = Buffer.from(
    canonicalJson({ entries: [{ path: "f", kind: "file", digest: held.file, size: 5 }] }),
  );
  held.dir = digestOf(manifest);
  const dir = await send(
    "PUT",
    `/api/v1/repos/${R}/artifacts/${held.dir}?type=directory`,
    manifest,
  );
  expect(dir.status).toBe(201);
}, 60_000);

afterAll(async () => {
  await store?.dispose();
  if (work) rmSync(work, { recursive: true, force: true });
});

/** The answer's status; an error answer must be an error document (HEAD has no body). */
async function send(
  method: string,
  path: string,
  body?: Uint8Array | string,
  headers: Record<string, string> = {},
): Promise<{ status: number; text: string }> {
  const res = await app.request(path, {
    method,
    headers: { authorization: `Bearer ${token}`, ...headers },
    ...(body !== undefined ? { body } : {}),
  });
  const text = await res.text();
  if (res.status >= 400 && method !== "HEAD") {
    const parsed = JSON.parse(text) as { error?: { code?: string; message?: string } };
    expect(parsed.error?.code, text).toBeTruthy();
    expect(parsed.error?.message, text).toBeTruthy();
  }
  return { status: res.status, text };
}

const hex = fc.stringMatching(/^[0-9a-f]{64}$/);
/** Digests as people and attackers write them: valid, near misses, and anything at all. */
const digestLike = fc.oneof(
  hex.map((h) => `sha256:${h}`),
  fc.constantFrom(
    "sha256:",
    `sha256:${"A".repeat(64)}`,
    `sha256:${"0".repeat(63)}`,
    `sha256:${"0".repeat(65)}`,
    `sha512:${"0".repeat(64)}`,
    "..",
    "%2e%2e",
    "sha256%3A",
    "%00",
    "%ZZ",
    `sha256:${"0".repeat(64)}%2F..`,
  ),
  fc.string({ unit: "grapheme", maxLength: 80 }).map(encodeURIComponent),
  fc.string({ maxLength: 80 }),
);
const routeOf = (d: string) =>
  fc.constantFrom(
    ["HEAD", `/api/v1/repos/${R}/artifacts/${d}`],
    ["GET", `/api/v1/repos/${R}/artifacts/${d}`],
    ["GET", `/api/v1/repos/${R}/artifacts/${d}/content`],
    ["PUT", `/api/v1/repos/${R}/artifacts/${d}`],
    ["GET", `/api/v1/repos/${R}/executions/${d}/artifacts`],
  );

describe("artifact routes", () => {
  it("any digest, query and header on every route: 2xx or 4xx, never 500", async () => {
    const query = fc.oneof(
      fc.constant(""),
      fc
        .record(
          {
            type: fc.oneof(fc.constantFrom("file", "directory", "", "FILE"), fc.string()),
            inline: fc.oneof(fc.constantFrom("0", "1", "true", ""), fc.string()),
            name: fc.string({ unit: "grapheme", maxLength: 300 }),
          },
          { requiredKeys: [] },
        )
        .map((q) => `?${new URLSearchParams(q as Record<string, string>).toString()}`),
    );
    const length = fc.oneof(
      fc.constant(undefined),
      fc.constantFrom("-1", "1e9", "99999999999999999999", " 5", "abc", "0x10"),
      fc.nat().map(String),
    );
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(digestLike, fc.constantFrom(held.file, held.dir)).chain((d) => routeOf(d)),
        query,
        fc.option(fc.uint8Array({ maxLength: 64 }), { nil: undefined }),
        length,
        async ([method, path], q, body, contentLength) => {
          const headers: Record<string, string> = contentLength
            ? { "content-length": contentLength }
            : {};
          const sendBody = method === "PUT" ? (body ?? new Uint8Array()) : undefined;
          let res: { status: number };
          try {
            res = await send(method as string, `${path}${q}`, sendBody, headers);
          } catch (e) {
            // The fetch layer itself refuses some Content-Length values: not a server answer.
            if (contentLength !== undefined && e instanceof TypeError) return;
            throw e;
          }
          expect(res.status).toBeLessThan(500);
        },
      ),
      { numRuns: 300 },
    );
    expect(errors).toEqual([]);
  }, 120_000);

  it("arbitrary bytes under their own digest or another: stored only when they match", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.uint8Array({ maxLength: 4096 }),
        fc.boolean(),
        hex,
        async (bytes, honest, other) => {
          const digest = honest ? digestOf(bytes) : `sha256:${other}`;
          fc.pre(honest || digest !== digestOf(bytes));
          const { status } = await send("PUT", `/api/v1/repos/${R}/artifacts/${digest}`, bytes);
          if (honest) {
            expect([200, 201]).toContain(status);
            const back = await app.request(`/api/v1/repos/${R}/artifacts/${digest}/content`, {
              headers: { authorization: `Bearer ${token}` },
            });
            expect(Buffer.from(await back.arrayBuffer()).equals(Buffer.from(bytes))).toBe(true);
          } else {
            expect(status).toBe(400);
            expect(await blobs.has(digest)).toBe(false);
            expect(await store.store.artifacts.get(REPO, digest)).toBeNull();
          }
        },
      ),
      { numRuns: 150 },
    );
    expect(errors).toEqual([]);
  }, 120_000);
});

describe("manifests", () => {
  const path = fc.oneof(
    fc.constantFrom(
      "..",
      "../x",
      "a/../../x",
      "/etc/passwd",
      "",
      "a//b",
      "./a",
      "a/.",
      "a\u0000b",
      "\ud800",
      "x".repeat(5000),
      "f",
      "f/under-a-file",
      "d/e",
    ),
    fc.string({ unit: "grapheme", maxLength: 20 }),
  );
  const field = fc.oneof(
    fc.string({ maxLength: 10 }),
    fc.integer(),
    fc.double(),
    fc.constant(null),
    fc.constant(-1),
    fc.constant(2 ** 60),
    fc.jsonValue({ maxDepth: 2 }),
  );
  const entry = fc.record(
    {
      path: fc.oneof(path, field),
      kind: fc.oneof(fc.constantFrom("file", "executable", "symlink", "directory", "fifo"), field),
      digest: fc.oneof(
        fc.constantFrom(held.file, held.dir),
        hex.map((h) => `sha256:${h}`),
        field,
      ),
      size: fc.oneof(fc.constantFrom(5, 0), field),
      target: fc.oneof(
        fc.constantFrom("f", "..", "../..", "/etc/passwd", "d/../..", "l", "", "a\u0000"),
        field,
      ),
      extra: field,
    },
    { requiredKeys: [] },
  );
  const manifest = fc.oneof(
    fc.record({ entries: fc.array(entry, { maxLength: 8 }) }),
    fc.record({ entries: fc.anything({ maxDepth: 3 }) }),
    fc.jsonValue({ maxDepth: 6 }),
  );

  /** `bytes` put as a directory under their own digest, so the manifest checks are what answer. */
  const putDirectory = (bytes: Uint8Array) =>
    send("PUT", `/api/v1/repos/${R}/artifacts/${digestOf(bytes)}?type=directory`, bytes);

  it("hostile manifests, canonical or not: a directory (2xx) or 4xx, never 500", async () => {
    await fc.assert(
      fc.asyncProperty(manifest, fc.boolean(), async (m, canonical) => {
        let text = JSON.stringify(m);
        try {
          if (canonical) text = canonicalJson(m);
        } catch {
          // Not canonicalisable (a lone surrogate): sent as JSON.stringify writes it.
        }
        const bytes = Buffer.from(text ?? "null");
        const { status, text: answer } = await putDirectory(bytes);
        expect(status, answer).toBeLessThan(500);
        if (status >= 300)
          expect(await store.store.artifacts.get(REPO, digestOf(bytes))).toBeNull();
        else {
          // Accepted: every file it names is one the repository holds, and it downloads.
          const tarball = await app.request(
            `/api/v1/repos/${R}/artifacts/${digestOf(bytes)}/content`,
            { headers: { authorization: `Bearer ${token}` } },
          );
          expect(tarball.status).toBe(200);
          expect((await tarball.arrayBuffer()).byteLength % 512).toBe(0);
        }
      }),
      { numRuns: 300 },
    );
    expect(errors).toEqual([]);
  }, 120_000);

  it("a link target that is not valid Unicode (a lone surrogate, escaped in the JSON): 422", async () => {
    const bytes = Buffer.from('{"entries":[{"kind":"symlink","path":"l","target":"\\ud800"}]}');
    expect((await putDirectory(bytes)).status).toBe(422);
  });

  it("bytes that are not JSON, and JSON nested 100,000 deep: 422", async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 300 }), async (bytes) => {
        let json = true;
        try {
          JSON.parse(Buffer.from(bytes).toString("utf8"));
        } catch {
          json = false;
        }
        fc.pre(!json);
        // 409: these bytes were uploaded as a file by an earlier property (the empty file, say).
        expect([409, 422]).toContain((await putDirectory(bytes)).status);
      }),
      { numRuns: 100 },
    );
    const deep = Buffer.from(`{"entries":${"[".repeat(100_000)}${"]".repeat(100_000)}}`);
    expect((await putDirectory(deep)).status).toBe(422);
    const deepObject = Buffer.from(`${'{"a":'.repeat(100_000)}1${"}".repeat(100_000)}`);
    expect((await putDirectory(deepObject)).status).toBe(422);
  }, 60_000);

  it("a million entries and more: refused with 422 (or 413 over the byte cap), never held", async () => {
    // Links are the shortest entries: a million and one of them fit under the byte cap.
    const links = Array.from({ length: 1_000_001 }, (_, i) => ({
      kind: "symlink",
      path: `l${i}`,
      target: "f",
    }));
    const many = Buffer.from(canonicalJson({ entries: links }));
    const r = await putDirectory(many);
    expect(r.status).toBe(422);
    expect(JSON.parse(r.text).error.message).toContain("1000000 entries");
    // 200,000 files none of which the repository holds: looked up in batches, the first named.
    const files = Array.from({ length: 200_000 }, (_, i) => ({
      digest: `sha256:${i.toString(16).padStart(64, "0")}`,
      kind: "file",
      path: `f${String(i).padStart(6, "0")}`,
      size: 1,
    }));
    const unheld = Buffer.from(canonicalJson({ entries: files }));
    const missing = await putDirectory(unheld);
    expect(missing.status).toBe(422);
    expect(JSON.parse(missing.text).error.message).toContain('"f000000"');
    expect(errors).toEqual([]);
  }, 120_000);
});
