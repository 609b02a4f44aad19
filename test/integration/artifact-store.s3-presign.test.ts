/**
 * Presigned access to the S3 artifact store (issue 16, the store's side): what a pod holding no
 * credential can do with the URLs the runner hands it, against s3rver behind a gate that checks
 * SigV4 query signatures as S3 does (s3rver alone does not; test/fakes/s3-signature-gate.ts).
 * Every pod request here is a plain fetch: no AWS SDK, no credential, no Authorization header.
 */
import { createHash, randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { multipartPartBytes, S3BlobStore, s3Client } from "../../runner/artifacts/s3-store.js";
import {
  BlobMismatchError,
  type CompletedPart,
  type PresignedMultipart,
  type PresignedRequest,
  presigner,
  verifyBlob,
} from "../../runner/artifacts/store.js";
import { type PresigningS3, startPresigningS3 } from "../fakes/presigning-s3.js";
import type { FakeS3 } from "../fakes/s3-server.js";
import type { SignatureGate } from "../fakes/s3-signature-gate.js";
import { sha256 } from "./artifact-store-contract.js";

let peer: PresigningS3;
let s3: FakeS3;
let gate: SignatureGate;
let store: S3BlobStore;
beforeAll(async () => {
  peer = await startPresigningS3();
  ({ s3, gate } = peer);
  store = peer.store("presign");
});
afterAll(async () => {
  await peer?.close();
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

const MIB = 1024 * 1024;

/** What a pod does with a presigned multipart upload: each part PUT, its ETag kept. */
async function sendParts(upload: PresignedMultipart, bytes: Buffer): Promise<CompletedPart[]> {
  const parts: CompletedPart[] = [];
  for (const [i, part] of upload.parts.entries()) {
    const body = bytes.subarray(i * upload.partBytes, (i + 1) * upload.partBytes);
    const res = await send(part, body);
    expect(res.status, await res.text()).toBe(200);
    const etag = res.headers.get("etag");
    // s3rver's ETag, as S3's for an unencrypted part, is the part's MD5: it came from the answer.
    expect(etag).toBe(`"${createHash("md5").update(body).digest("hex")}"`);
    parts.push({ partNumber: i + 1, etag: etag as string });
  }
  return parts;
}

describe("presigned multipart uploads to the S3 artifact store", () => {
  it("lets plain PUTs of the parts store a blob the runner completes, then reads back verified", async () => {
    const bytes = randomBytes(11 * MIB + 123);
    const digest = sha256(bytes);
    const upload = await store.presignMultipart(digest, bytes.length, {
      ...HOUR,
      partBytes: 5 * MIB,
    });
    expect(upload.partBytes).toBe(5 * MIB);
    expect(upload.parts.map((p) => p.headers)).toEqual([
      { "content-length": String(5 * MIB) },
      { "content-length": String(5 * MIB) },
      { "content-length": String(MIB + 123) },
    ]);
    for (const part of upload.parts) {
      expect(part.method).toBe("PUT");
      expect(part.url).not.toContain(s3.env.AWS_SECRET_ACCESS_KEY.toLowerCase());
    }
    const parts = await sendParts(upload, bytes);
    expect(await store.has(digest)).toBe(false);
    await store.completeMultipart(digest, upload.uploadId, parts);
    expect(await verifyBlob(store, digest, bytes.length)).toEqual({
      ok: true,
      size: bytes.length,
    });
    const back = Buffer.concat(await (await store.getStream(digest)).toArray());
    expect(back.equals(bytes)).toBe(true);
  });

  it("refuses a part of another size than was signed", async () => {
    const bytes = randomBytes(6 * MIB);
    const digest = sha256(bytes);
    const upload = await store.presignMultipart(digest, bytes.length, HOUR);
    expect(upload.parts).toHaveLength(1);
    const [part] = upload.parts as [PresignedRequest];
    const refusedBefore = gate.refused;
    for (const other of [
      bytes.subarray(0, bytes.length - 1),
      Buffer.concat([bytes, bytes.subarray(0, 1)]),
    ]) {
      const res = await send(part, other, {
        ...part.headers,
        "content-length": String(other.length),
      });
      expect(res.status).toBe(403);
      expect(await res.text()).toContain("SignatureDoesNotMatch");
    }
    expect(gate.refused).toBe(refusedBefore + 2);
    await store.abortMultipart(digest, upload.uploadId);
    expect(await store.has(digest)).toBe(false);
  });

  it("signs no checksum of its own into a part, even where the client computes them (AWS's default)", async () => {
    const computing = new S3BlobStore({
      bucket: s3.bucket,
      prefix: "presign",
      client: s3Client(
        { ...s3.env, AWS_ENDPOINT_URL: gate.endpoint },
        {
          credentials: {
            accessKeyId: s3.env.AWS_ACCESS_KEY_ID,
            secretAccessKey: s3.env.AWS_SECRET_ACCESS_KEY,
          },
          requestChecksumCalculation: "WHEN_SUPPORTED",
        },
      ),
    });
    const bytes = randomBytes(1000);
    const digest = sha256(bytes);
    const upload = await computing.presignMultipart(digest, bytes.length, HOUR);
    const [part] = upload.parts as [PresignedRequest];
    expect([...new URL(part.url).searchParams.keys()].filter((k) => /checksum/i.test(k))).toEqual(
      [],
    );
    const parts = await sendParts(upload, bytes);
    await computing.completeMultipart(digest, upload.uploadId, parts);
    expect(await verifyBlob(store, digest, bytes.length)).toEqual({ ok: true, size: bytes.length });
  });

  it("leaves nothing after an abort: the parts are refused and the upload cannot be completed", async () => {
    const bytes = randomBytes(5 * MIB + 10);
    const digest = sha256(bytes);
    const upload = await store.presignMultipart(digest, bytes.length, {
      ...HOUR,
      partBytes: 5 * MIB,
    });
    const [first, second] = upload.parts as [PresignedRequest, PresignedRequest];
    const res = await send(first, bytes.subarray(0, 5 * MIB));
    expect(res.status).toBe(200);
    await store.abortMultipart(digest, upload.uploadId);
    await store.abortMultipart(digest, upload.uploadId); // gone already: not an error
    const late = await send(second, bytes.subarray(5 * MIB));
    expect(late.status).toBe(404);
    expect(await late.text()).toContain("NoSuchUpload");
    await expect(
      store.completeMultipart(digest, upload.uploadId, [
        { partNumber: 1, etag: res.headers.get("etag") as string },
      ]),
    ).rejects.toThrow(BlobMismatchError);
    expect(await store.has(digest)).toBe(false);
  });

  it("catches right-sized wrong parts that S3 assembled, and removes them", async () => {
    const meant = randomBytes(2000);
    const digest = sha256(meant);
    const upload = await store.presignMultipart(digest, meant.length, HOUR);
    const parts = await sendParts(upload, randomBytes(2000));
    await store.completeMultipart(digest, upload.uploadId, parts);
    expect(await verifyBlob(store, digest, meant.length)).toMatchObject({
      ok: false,
      problem: "corrupt",
    });
    expect(await store.has(digest)).toBe(false);
  });

  it("does not let a completed upload replace a blob already stored", async () => {
    const bytes = randomBytes(3000);
    const { digest } = await store.putBytes(bytes);
    const upload = await store.presignMultipart(digest, bytes.length, HOUR);
    const parts = await sendParts(upload, randomBytes(3000));
    await store.completeMultipart(digest, upload.uploadId, parts);
    expect((await store.getBytes(digest, bytes.length)).equals(bytes)).toBe(true);
  });

  it("refuses parts listed out of order or without ETags before asking S3", async () => {
    const digest = sha256(Buffer.from("parts"));
    for (const parts of [
      [],
      [
        { partNumber: 2, etag: '"a"' },
        { partNumber: 1, etag: '"b"' },
      ],
      [{ partNumber: 0, etag: '"a"' }],
      [{ partNumber: 1, etag: "" }],
    ])
      await expect(store.completeMultipart(digest, "upload", parts)).rejects.toThrow(
        BlobMismatchError,
      );
  });

  it("picks parts of 5 MiB to 5 GiB, at most 10,000 of them, from the caller's wish", () => {
    expect(multipartPartBytes(100 * MIB, 1)).toBe(5 * MIB);
    expect(multipartPartBytes(100 * MIB, 7 * MIB + 1)).toBe(8 * MIB);
    expect(multipartPartBytes(100 * MIB)).toBe(64 * MIB);
    const huge = 10_000 * 5 * 1024 ** 3;
    expect(multipartPartBytes(huge, 5 * MIB)).toBe(5 * 1024 ** 3);
    const big = 1024 ** 4; // 1 TiB: 5 MiB parts would be 209,716 of them
    const part = multipartPartBytes(big, 5 * MIB);
    expect(Math.ceil(big / part)).toBeLessThanOrEqual(10_000);
    expect(part % MIB).toBe(0);
    expect(multipartPartBytes(MIB, 10 * 1024 ** 3)).toBe(5 * 1024 ** 3);
    expect(() => multipartPartBytes(huge + 1)).toThrow(/10,000 parts of 5 GiB/);
    expect(() => multipartPartBytes(-1)).toThrow(/whole number of bytes/);
    expect(() => multipartPartBytes(MIB, 0.5)).toThrow(/part size/);
  });
});
