/**
 * Presigned access to the S3 artifact store (issue 16, the store's side): what a pod holding no
 * credential can do with the URLs the runner hands it, against s3rver behind a gate that checks
 * SigV4 query signatures as S3 does (s3rver alone does not; test/fakes/s3-signature-gate.ts).
 * Every pod request here is a plain fetch: no AWS SDK, no credential, no Authorization header.
 */
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { S3BlobStore, s3Client } from "../../runner/artifacts/s3-store.js";
import { type PresignedRequest, presigner, verifyBlob } from "../../runner/artifacts/store.js";
import { type FakeS3, startS3 } from "../fakes/s3-server.js";
import { type SignatureGate, startSignatureGate } from "../fakes/s3-signature-gate.js";
import { sha256 } from "./artifact-store-contract.js";

let s3: FakeS3;
let gate: SignatureGate;
let store: S3BlobStore;
beforeAll(async () => {
  s3 = await startS3();
  gate = await startSignatureGate(s3.endpoint, s3.env.AWS_SECRET_ACCESS_KEY);
  const client = s3Client(
    { ...s3.env, AWS_ENDPOINT_URL: gate.endpoint },
    {
      credentials: {
        accessKeyId: s3.env.AWS_ACCESS_KEY_ID,
        secretAccessKey: s3.env.AWS_SECRET_ACCESS_KEY,
      },
    },
  );
  store = new S3BlobStore({ bucket: s3.bucket, prefix: "presign", client });
});
afterAll(async () => {
  await gate?.close();
  await s3?.close();
});

const HOUR = { expiresInSeconds: 3600 };

/** What a pod does with a presigned request: exactly its headers, `body` as the bytes. */
function send(
  signed: PresignedRequest,
  body?: Uint8Array,
  headers = signed.headers,
): Promise<Response> {
  const { "content-length": _setFromTheBody, ...rest } = headers;
  return fetch(signed.url, { method: signed.method, headers: rest, body });
}

describe("presigned access to the S3 artifact store", () => {
  it("is offered by the S3 store", () => {
    expect(presigner(store, "a pod")).toBe(store);
  });

  it("lets a plain GET with no credential download a blob", async () => {
    const bytes = randomBytes(300_000);
    const { digest } = await store.putBytes(bytes);
    const get = await store.presignGet(digest, HOUR);
    expect(get.url).not.toContain(s3.env.AWS_SECRET_ACCESS_KEY.toLowerCase());
    expect(get.headers).toEqual({});
    const res = await send(get);
    expect(res.status).toBe(200);
    expect(Buffer.from(await res.arrayBuffer()).equals(bytes)).toBe(true);
  });

  it("lets a plain PUT store exactly the announced bytes, then readable through the store", async () => {
    const bytes = randomBytes(200_000);
    const digest = sha256(bytes);
    const put = await store.presignPut(digest, bytes.length, HOUR);
    expect(put.headers).toEqual({
      "content-length": String(bytes.length),
      "x-amz-checksum-sha256": Buffer.from(digest.slice(7), "hex").toString("base64"),
    });
    const res = await send(put, bytes);
    expect(res.status, await res.text()).toBe(200);
    expect((await store.getBytes(digest, bytes.length)).equals(bytes)).toBe(true);
    expect(await verifyBlob(store, digest, bytes.length)).toEqual({
      ok: true,
      size: bytes.length,
    });
  });

  it("refuses a PUT of another size, and stores nothing", async () => {
    const bytes = randomBytes(1000);
    const digest = sha256(bytes);
    const put = await store.presignPut(digest, bytes.length, HOUR);
    const refusedBefore = gate.refused;
    for (const other of [bytes.subarray(0, 999), Buffer.concat([bytes, Buffer.from("x")])]) {
      const res = await send(put, other);
      expect(res.status).toBe(403);
      expect(await res.text()).toContain("SignatureDoesNotMatch");
    }
    expect(gate.refused).toBe(refusedBefore + 2);
    expect(await store.has(digest)).toBe(false);
  });

  it("refuses a PUT after the URL expired", async () => {
    const bytes = randomBytes(100);
    const digest = sha256(bytes);
    const put = await store.presignPut(digest, bytes.length, { expiresInSeconds: 1 });
    expect(put.expires.getTime()).toBeLessThanOrEqual(Date.now() + 1000);
    // SigV4 dates have whole seconds: past 2 s, a 1-second URL has expired whenever it was signed.
    await new Promise((resolve) => setTimeout(resolve, 2100));
    const res = await send(put, bytes);
    expect(res.status).toBe(403);
    expect(await res.text()).toContain("Request has expired");
    expect(await store.has(digest)).toBe(false);
  });

  it("refuses a URL for one digest writing another digest's key", async () => {
    const meant = randomBytes(500);
    const other = randomBytes(500);
    const put = await store.presignPut(sha256(meant), meant.length, HOUR);
    const moved = {
      ...put,
      url: put.url.replace(sha256(meant).slice(7), sha256(other).slice(7)),
    };
    expect(moved.url).not.toBe(put.url);
    const refusedBefore = gate.refused;
    const res = await send(moved, other, {
      ...put.headers,
      "x-amz-checksum-sha256": Buffer.from(sha256(other).slice(7), "hex").toString("base64"),
    });
    expect(res.status).toBe(403);
    expect(gate.refused).toBe(refusedBefore + 1);
    expect(await store.has(sha256(other))).toBe(false);
    expect(await store.has(sha256(meant))).toBe(false);
  });

  it("catches right-sized wrong bytes that the server took, and removes them", async () => {
    // S3 itself refuses them (BadDigest: the signed x-amz-checksum-sha256); s3rver does not check
    // checksums, as some S3-compatible stores may not: verification is what guarantees content.
    const meant = randomBytes(4096);
    const digest = sha256(meant);
    const put = await store.presignPut(digest, meant.length, HOUR);
    const wrong = randomBytes(4096);
    const res = await send(put, wrong);
    expect(res.status).toBe(200);
    expect(await verifyBlob(store, digest, meant.length)).toEqual({
      ok: false,
      problem: "corrupt",
      actual: sha256(wrong),
    });
    expect(await store.has(digest)).toBe(false);
  });

  it("reports an upload that never came as missing", async () => {
    const digest = sha256(randomBytes(10));
    await store.presignPut(digest, 10, HOUR);
    expect(await verifyBlob(store, digest, 10)).toEqual({ ok: false, problem: "missing" });
  });

  it("clamps the expiry to S3's 7 days, and refuses nonsense and blobs over one PUT's 5 GiB", async () => {
    const digest = sha256(Buffer.from("long"));
    const get = await store.presignGet(digest, { expiresInSeconds: 30 * 24 * 3600 });
    expect(new URL(get.url).searchParams.get("X-Amz-Expires")).toBe("604800");
    expect(get.expires.getTime()).toBeLessThanOrEqual(Date.now() + 604_800_000);
    await expect(store.presignGet(digest, { expiresInSeconds: 0 })).rejects.toThrow(
      /at least 1 second/,
    );
    await expect(store.presignPut(digest, -1, HOUR)).rejects.toThrow(/whole number of bytes/);
    await expect(store.presignPut(digest, 5 * 1024 ** 3 + 1, HOUR)).rejects.toThrow(
      /over the 5368709120 one S3 PUT takes/,
    );
    await expect(store.presignPut("sha256:nope", 1, HOUR)).rejects.toThrow(
      /not an artifact digest/,
    );
  });
});
