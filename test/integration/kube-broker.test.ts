/**
 * The kubernetes executor's artifact broker (runner/executors/kubernetes/broker.ts), over real
 * HTTP, against s3rver behind the SigV4 gate (test/fakes/s3-signature-gate.ts): what an attempt's
 * helper containers, holding a token and no storage credential, can ask and do with the answers.
 * `lookup`/`onChange` are the executor's in-process interface: here a plain map of attempts.
 */
import { createHash, randomBytes } from "node:crypto";
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { ArtifactRef } from "../../core/artifacts/ref.js";
import { storeArtifact } from "../../runner/artifacts/ingest.js";
import type { S3BlobStore } from "../../runner/artifacts/s3-store.js";
import { type PresignedRequest, presigner, verifyBlob } from "../../runner/artifacts/store.js";
import {
  attemptToken,
  type Broker,
  type BrokerAttempt,
  type BrokerOptions,
  loadBrokerKey,
  startBroker,
} from "../../runner/executors/kubernetes/broker.js";
import { type PresigningS3, startPresigningS3 } from "../fakes/presigning-s3.js";

const MIB = 1024 * 1024;
const key = randomBytes(32);
let peer: PresigningS3;
let store: S3BlobStore;
let broker: Broker;
let scratch: string;
const attempts = new Map<string, BrokerAttempt>();
const listeners = new Map<string, Set<() => void>>();

/** What the executor's informers do when a Job or pod changes. */
function change(handle: string, next: Partial<BrokerAttempt>): void {
  attempts.set(handle, { ...(attempts.get(handle) as BrokerAttempt), ...next });
  for (const callback of listeners.get(handle) ?? []) callback();
}

function options(overrides: Partial<BrokerOptions> = {}): BrokerOptions {
  return {
    listen: "127.0.0.1:0",
    key,
    store: presigner(store, "the broker's tests"),
    multipartBytes: MIB,
    partBytes: 5 * MIB,
    lookup: (handle) => attempts.get(handle) ?? null,
    onChange(handle, callback) {
      const set = listeners.get(handle) ?? new Set();
      listeners.set(handle, set);
      set.add(callback);
      return () => set.delete(callback);
    },
    ...overrides,
  };
}

beforeAll(async () => {
  peer = await startPresigningS3();
  store = peer.store("broker");
  broker = await startBroker(options());
  scratch = await mkdtemp(join(tmpdir(), "reprise-broker-"));
});
afterAll(async () => {
  await broker?.close();
  await peer?.close();
  if (scratch) await rm(scratch, { recursive: true, force: true });
});
beforeEach(() => {
  attempts.clear();
});

function sha256(bytes: Uint8Array): string {
  return `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
}

function attempt(overrides: Partial<BrokerAttempt> = {}): BrokerAttempt {
  return {
    inputs: {},
    outputs: { model: "file" },
    deadlineMs: Date.now() + 3600_000,
    finished: false,
    task: { state: "running" },
    ...overrides,
  };
}

/** A helper container's request: the attempt's token, JSON in and out. */
async function ask(
  handle: string,
  path: string,
  body?: unknown,
  token: string | null = broker.token(handle),
  base = broker.url,
): Promise<{ status: number; json: unknown }> {
  const res = await fetch(`${base}/v1/attempts/${handle}/${path}`, {
    method: body === undefined ? "GET" : "POST",
    headers: token === null ? {} : { authorization: `Bearer ${token}` },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, json: text === "" ? null : JSON.parse(text) };
}

/** What a pod does with a presigned request: exactly its headers, the body's own length. */
function send(signed: PresignedRequest, body?: Uint8Array): Promise<Response> {
  const { "content-length": _fromTheBody, ...headers } = signed.headers;
  return fetch(signed.url, { method: signed.method, headers, body });
}

describe("the broker's tokens", () => {
  it("is an HMAC of the handle under the key, base64url, and the broker hands out the same", () => {
    const token = attemptToken(key, "exec-1-node-a-1");
    expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(broker.token("exec-1-node-a-1")).toBe(token);
    expect(attemptToken(key, "exec-1-node-a-2")).not.toBe(token);
    expect(attemptToken(randomBytes(32), "exec-1-node-a-1")).not.toBe(token);
  });

  it("refuses a missing, wrong or other attempt's token with 401", async () => {
    attempts.set("a-1", attempt());
    attempts.set("a-2", attempt());
    for (const token of [null, "", "nonsense", broker.token("a-2"), `${broker.token("a-1")}x`]) {
      const { status, json } = await ask("a-1", "uploads", { blobs: [] }, token);
      expect(status).toBe(401);
      expect((json as { error: string }).error).toContain("token");
    }
    expect((await ask("a-1", "uploads", { blobs: [] })).status).toBe(200);
  });

  it("answers 404 for a handle it does not know, 410 for a finished attempt or one without artifacts", async () => {
    expect((await ask("gone-1", "inputs", {})).status).toBe(404);
    attempts.set("done-1", attempt({ finished: true }));
    const done = await ask("done-1", "uploads", { blobs: [] });
    expect(done.status).toBe(410);
    expect((done.json as { error: string }).error).toContain("finished");
    attempts.set("plain-1", attempt({ outputs: {} }));
    expect((await ask("plain-1", "inputs", {})).status).toBe(410);
    expect((await ask("plain-1", "task")).status).toBe(410);
  });

  it("answers 404 for other paths and 405 for the wrong method", async () => {
    attempts.set("a-1", attempt());
    expect((await ask("a-1", "outputs", {})).status).toBe(404);
    expect((await ask("a-1", "inputs")).status).toBe(405);
    expect((await ask("A_1", "inputs", {})).status).toBe(404);
  });
});

describe("the broker's inputs", () => {
  it("presigns a file input's blob and a directory's manifest and every file, to be fetched with no credential", async () => {
    const bytes = randomBytes(70_000);
    const file = await store.putBytes(bytes);
    const dir = join(scratch, "tree");
    await mkdir(join(dir, "sub"), { recursive: true });
    await writeFile(join(dir, "a.txt"), "alpha\n");
    await writeFile(join(dir, "sub", "b.bin"), randomBytes(5000));
    await writeFile(join(dir, "sub", "same.txt"), "alpha\n");
    const tree = await storeArtifact(store, dir, "directory", "tree");
    const data: ArtifactRef = { artifact: file.digest, type: "file", size: bytes.length };
    const deadlineMs = Date.now() + 3600_000;
    attempts.set("in-1", attempt({ inputs: { data, tree }, deadlineMs }));

    const { status, json } = await ask("in-1", "inputs", {});
    expect(status).toBe(200);
    const plan = json as {
      inputs: Array<{ name: string; ref: ArtifactRef; blobs: Record<string, PresignedRequest> }>;
    };
    expect(plan.inputs.map((i) => [i.name, i.ref])).toEqual([
      ["data", data],
      ["tree", tree],
    ]);
    const [first, second] = plan.inputs as [(typeof plan.inputs)[0], (typeof plan.inputs)[0]];
    expect(Object.keys(first.blobs)).toEqual([file.digest]);
    // The manifest, a.txt and same.txt (one blob), sub/b.bin.
    expect(Object.keys(second.blobs)).toHaveLength(3);
    expect(Object.keys(second.blobs)).toContain(tree.artifact);
    for (const input of plan.inputs)
      for (const [digest, get] of Object.entries(input.blobs)) {
        expect(get.method).toBe("GET");
        // The Job's deadline plus 10 minutes.
        const seconds = Number(new URL(get.url).searchParams.get("X-Amz-Expires"));
        expect(seconds).toBeGreaterThanOrEqual(4195);
        expect(seconds).toBeLessThanOrEqual(4201);
        const res = await send(get);
        expect(res.status).toBe(200);
        expect(sha256(new Uint8Array(await res.arrayBuffer()))).toBe(digest);
      }
  });

  it("makes URLs last 10 minutes past a deadline already near, and a day without one", async () => {
    const data = await store.putBytes(randomBytes(10));
    const ref: ArtifactRef = { artifact: data.digest, type: "file", size: 10 };
    const expiry = async (deadlineMs: number | null) => {
      attempts.set("exp-1", attempt({ inputs: { data: ref }, deadlineMs }));
      const { json } = await ask("exp-1", "inputs", {});
      const get = (json as { inputs: Array<{ blobs: Record<string, PresignedRequest> }> }).inputs[0]
        ?.blobs[data.digest] as PresignedRequest;
      return Number(new URL(get.url).searchParams.get("X-Amz-Expires"));
    };
    expect(await expiry(Date.now() - 60_000)).toBe(600);
    expect(await expiry(null)).toBe(86_400);
  });

  it("answers 409 when a directory input's manifest is not in the store", async () => {
    const missing = sha256(randomBytes(8));
    const tree: ArtifactRef = { artifact: missing, type: "directory", size: 1, files: 1 };
    attempts.set("in-2", attempt({ inputs: { tree } }));
    const { status, json } = await ask("in-2", "inputs", {});
    expect(status).toBe(409);
    expect((json as { error: string }).error).toContain(`input tree: artifact ${missing}`);
  });
});

describe("the broker's uploads", () => {
  it("answers present for stored blobs, a PUT up to multipartBytes and a multipart upload above", async () => {
    attempts.set("up-1", attempt());
    const stored = await store.putBytes(randomBytes(100));
    const small = randomBytes(200_000);
    const large = randomBytes(6 * MIB + 17);
    const { status, json } = await ask("up-1", "uploads", {
      blobs: [
        { digest: stored.digest, size: 100 },
        { digest: sha256(small), size: small.length },
        { digest: sha256(large), size: large.length },
        { digest: stored.digest, size: 100 },
      ],
    });
    expect(status).toBe(200);
    const [present, put, multi, again] = (json as { blobs: unknown[] }).blobs as [
      { digest: string; present: true },
      { digest: string; put: PresignedRequest },
      {
        digest: string;
        multipart: { uploadId: string; partBytes: number; parts: PresignedRequest[] };
      },
      unknown,
    ];
    expect(present).toEqual({ digest: stored.digest, present: true });
    expect(again).toEqual(present);

    expect(put.digest).toBe(sha256(small));
    expect(put.put.headers["content-length"]).toBe(String(small.length));
    expect((await send(put.put, small)).status).toBe(200);
    expect(await verifyBlob(store, sha256(small), small.length)).toEqual({
      ok: true,
      size: small.length,
    });

    expect(multi.digest).toBe(sha256(large));
    expect(multi.multipart.partBytes).toBe(5 * MIB);
    expect(multi.multipart.parts.map((p) => p.headers["content-length"])).toEqual([
      String(5 * MIB),
      String(MIB + 17),
    ]);
    const parts = [];
    for (const [i, part] of multi.multipart.parts.entries()) {
      const res = await send(part, large.subarray(i * 5 * MIB, (i + 1) * 5 * MIB));
      expect(res.status).toBe(200);
      parts.push({ partNumber: i + 1, etag: res.headers.get("etag") as string });
    }
    const done = await ask("up-1", "uploads/complete", {
      digest: sha256(large),
      uploadId: multi.multipart.uploadId,
      parts,
    });
    expect(done).toEqual({ status: 204, json: null });
    expect(await verifyBlob(store, sha256(large), large.length)).toEqual({
      ok: true,
      size: large.length,
    });
    const again2 = await ask("up-1", "uploads", {
      blobs: [{ digest: sha256(large), size: large.length }],
    });
    expect(again2.json).toEqual({ blobs: [{ digest: sha256(large), present: true }] });
  });

  it("refuses malformed requests with 400 and says what is wrong", async () => {
    attempts.set("up-2", attempt());
    const digest = sha256(Buffer.from("x"));
    const cases: Array<[unknown, RegExp]> = [
      [{}, /"blobs"/],
      [{ blobs: [{ digest: "md5:abc", size: 1 }] }, /blobs\[0\]\.digest must be sha256/],
      [{ blobs: [{ digest, size: -1 }] }, /blobs\[0\]\.size must be a whole number/],
      [{ blobs: [{ digest, size: 2 ** 53 }] }, /blobs\[0\]\.size/],
      [{ blobs: [{ digest, size: 1.5 }] }, /blobs\[0\]\.size/],
      [
        {
          blobs: [
            { digest, size: 1 },
            { digest, size: 2 },
          ],
        },
        /two sizes/,
      ],
      [{ blobs: Array.from({ length: 1001 }, () => ({ digest, size: 1 })) }, /at most 1000/],
    ];
    for (const [body, message] of cases) {
      const { status, json } = await ask("up-2", "uploads", body);
      expect(status, JSON.stringify(body).slice(0, 80)).toBe(400);
      expect((json as { error: string }).error).toMatch(message);
    }
    const res = await fetch(`${broker.url}/v1/attempts/up-2/uploads`, {
      method: "POST",
      headers: { authorization: `Bearer ${broker.token("up-2")}` },
      body: "{not json",
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: string }).error).toContain("not JSON");
    const huge = await ask("up-2", "uploads", { blobs: [], pad: "x".repeat(MIB) });
    expect(huge.status).toBe(413);
  });

  it("answers 409 when the store will not complete an upload, and 400 for a malformed completion", async () => {
    attempts.set("up-3", attempt());
    const digest = sha256(randomBytes(16));
    const refused = await ask("up-3", "uploads/complete", {
      digest,
      uploadId: "0123456789abcdef0123456789abcdef",
      parts: [{ partNumber: 1, etag: '"x"' }],
    });
    expect(refused.status).toBe(409);
    expect((refused.json as { error: string }).error).toContain("NoSuchUpload");
    for (const body of [
      { digest: "nope", uploadId: "u", parts: [{ partNumber: 1, etag: "e" }] },
      { digest, uploadId: "", parts: [{ partNumber: 1, etag: "e" }] },
      { digest, uploadId: "u", parts: [] },
      { digest, uploadId: "u", parts: [{ partNumber: "1", etag: "e" }] },
    ])
      expect((await ask("up-3", "uploads/complete", body)).status).toBe(400);
    expect(await store.has(digest)).toBe(false);
  });
});

describe("the broker's task state", () => {
  /** Resolves once a long poll of `handle` is waiting on a change. */
  async function polling(handle: string): Promise<void> {
    while ((listeners.get(handle)?.size ?? 0) === 0)
      await new Promise((resolve) => setTimeout(resolve, 10));
  }

  it("answers at once without waitSeconds, and at once when the task has ended", async () => {
    attempts.set("t-1", attempt({ task: { state: "waiting" } }));
    expect(await ask("t-1", "task")).toEqual({ status: 200, json: { state: "waiting" } });
    change("t-1", { task: { state: "terminated", exitCode: 0 } });
    expect(await ask("t-1", "task?waitSeconds=30")).toEqual({
      status: 200,
      json: { state: "terminated", exitCode: 0 },
    });
  });

  it("holds a long poll until the task's state changes", async () => {
    attempts.set("t-2", attempt({ task: { state: "running" } }));
    const answer = ask("t-2", "task?waitSeconds=30");
    await polling("t-2");
    // A change that leaves the task as it was does not answer the poll.
    change("t-2", { deadlineMs: Date.now() + 7200_000 });
    change("t-2", { task: { state: "terminated", exitCode: 3 } });
    expect(await answer).toEqual({ status: 200, json: { state: "terminated", exitCode: 3 } });
    expect(listeners.get("t-2")?.size).toBe(0);
  });

  it("answers a waiting poll with 410 when the Job finishes", async () => {
    attempts.set("t-3", attempt({ task: { state: "running" } }));
    const answer = ask("t-3", "task?waitSeconds=30");
    await polling("t-3");
    change("t-3", { finished: true });
    expect((await answer).status).toBe(410);
  });

  it("answers after waitSeconds with the state unchanged, and refuses waits over 30 s", async () => {
    attempts.set("t-4", attempt({ task: { state: "waiting" } }));
    expect(await ask("t-4", "task?waitSeconds=1")).toEqual({
      status: 200,
      json: { state: "waiting" },
    });
    for (const wait of ["31", "-1", "1.5", "soon"])
      expect((await ask("t-4", `task?waitSeconds=${wait}`)).status).toBe(400);
  });

  it("answers waiting polls at once when the broker closes, and then stops listening", async () => {
    const own = await startBroker(options());
    attempts.set("t-5", attempt({ task: { state: "running" } }));
    const answer = ask("t-5", "task?waitSeconds=30", undefined, own.token("t-5"), own.url);
    await polling("t-5");
    await own.close();
    expect(await answer).toEqual({ status: 200, json: { state: "running" } });
    await expect(fetch(`${own.url}/v1/attempts/t-5/task`)).rejects.toThrow();
  });
});

describe("the broker's settings", () => {
  it("takes REPRISE_KUBE_BROKER_KEY of at least 32 characters, and refuses a shorter one", async () => {
    const value = "k".repeat(32);
    expect((await loadBrokerKey(value, "")).equals(Buffer.from(value))).toBe(true);
    await expect(loadBrokerKey("short", scratch)).rejects.toThrow(
      /REPRISE_KUBE_BROKER_KEY is 5 characters long: it must be at least 32/,
    );
  });

  it("otherwise creates <dataDir>/kubernetes/broker.key, 32 random bytes, 0600, and keeps it", async () => {
    const dataDir = join(scratch, "data");
    const first = await loadBrokerKey(undefined, dataDir);
    const path = join(dataDir, "kubernetes", "broker.key");
    expect(first).toHaveLength(32);
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect((await readFile(path)).equals(first)).toBe(true);
    expect((await loadBrokerKey("", dataDir)).equals(first)).toBe(true);
    await writeFile(path, "too short");
    await expect(loadBrokerKey(undefined, dataDir)).rejects.toThrow(/holds 9 bytes/);
  });

  it("refuses a listen address that is not HOST:PORT, and a multipart threshold over one PUT", async () => {
    await expect(startBroker(options({ listen: "8091" }))).rejects.toThrow(
      /REPRISE_KUBE_BROKER_LISTEN must be HOST:PORT/,
    );
    await expect(startBroker(options({ multipartBytes: 6 * 1024 ** 3 }))).rejects.toThrow(
      /REPRISE_KUBE_MULTIPART_BYTES/,
    );
    const named = await startBroker(options({ publicUrl: "http://reprise.reprise.svc:8091/" }));
    expect(named.url).toBe("http://reprise.reprise.svc:8091");
    await named.close();
  });
});
