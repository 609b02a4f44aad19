/**
 * The artifact store's contract on the S3 adapter, against a real S3-protocol server (s3rver on
 * loopback), and what only S3 has: its URL and key layout, a file that changes while it is being
 * uploaded, and the failures of a remote service (no bucket, refused credentials, no endpoint).
 */
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  DeleteObjectCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
} from "@aws-sdk/client-s3";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import {
  parseS3Url,
  S3BlobStore,
  s3BlobStoreFromUrl,
  s3Client,
} from "../../runner/artifacts/s3-store.js";
import { BlobMissingError, BlobStoreError } from "../../runner/artifacts/store.js";
import { type FakeS3, startS3 } from "../fakes/s3-server.js";
import { artifactStoreContract, damaged, listAll, sha256 } from "./artifact-store-contract.js";

let s3: FakeS3;
beforeAll(async () => {
  s3 = await startS3();
});
afterAll(async () => s3?.close());

function clientFor(
  env: { AWS_ENDPOINT_URL: string; AWS_REGION?: string },
  secret = "S3RVER",
): S3Client {
  return s3Client(env, { credentials: { accessKeyId: "S3RVER", secretAccessKey: secret } });
}

/** Every key in the fake's bucket under `prefix`. */
async function keysUnder(prefix: string): Promise<string[]> {
  const keys: string[] = [];
  let token: string | undefined;
  do {
    const page = await s3.client.send(
      new ListObjectsV2Command({ Bucket: s3.bucket, Prefix: prefix, ContinuationToken: token }),
    );
    for (const o of page.Contents ?? []) if (o.Key) keys.push(o.Key);
    token = page.NextContinuationToken;
  } while (token);
  return keys;
}

artifactStoreContract("s3", async () => {
  const client = clientFor(s3.env);
  const store = new S3BlobStore({
    bucket: s3.bucket,
    prefix: `contract/${randomBytes(4).toString("hex")}`,
    client,
  });
  const Bucket = s3.bucket;
  return {
    store,
    async corrupt(digest) {
      const Key = store.key(digest);
      const got = await s3.client.send(new GetObjectCommand({ Bucket, Key }));
      const bytes = await got.Body?.transformToByteArray();
      await s3.client.send(
        new PutObjectCommand({ Bucket, Key, Body: damaged(bytes ?? new Uint8Array(0)) }),
      );
    },
    async remove(digest) {
      await s3.client.send(new DeleteObjectCommand({ Bucket, Key: store.key(digest) }));
    },
    async close() {
      client.destroy();
    },
  };
});

describe("the S3 artifact store", () => {
  let work: string;
  beforeEach(async () => {
    work = await mkdtemp(join(tmpdir(), "reprise-s3-work-"));
  });
  afterEach(async () => {
    vi.unstubAllEnvs();
    await rm(work, { recursive: true, force: true });
  });

  describe("from REPRISE_ARTIFACTS", () => {
    it("keeps blobs at PREFIX/blobs/sha256/<hex>, and at blobs/sha256/<hex> without a prefix", async () => {
      // The standard credential chain: here, the environment.
      vi.stubEnv("AWS_ACCESS_KEY_ID", s3.env.AWS_ACCESS_KEY_ID);
      vi.stubEnv("AWS_SECRET_ACCESS_KEY", s3.env.AWS_SECRET_ACCESS_KEY);
      vi.stubEnv("AWS_SESSION_TOKEN", undefined);
      const env = { AWS_ENDPOINT_URL: s3.endpoint };
      const prefixed = s3BlobStoreFromUrl(`s3://${s3.bucket}/from-url/deep/`, env);
      expect(prefixed.location).toBe(`s3://${s3.bucket}/from-url/deep`);
      const bytes = Buffer.from("layout");
      const { digest } = await prefixed.putBytes(bytes);
      const hex = digest.slice("sha256:".length);
      expect(await keysUnder("from-url/")).toEqual([`from-url/deep/blobs/sha256/${hex}`]);
      expect((await prefixed.getBytes(digest, 100)).equals(bytes)).toBe(true);

      const bare = s3BlobStoreFromUrl(`s3://${s3.bucket}`, env);
      expect(bare.location).toBe(`s3://${s3.bucket}`);
      await bare.putBytes(bytes);
      expect(await keysUnder("blobs/")).toEqual([`blobs/sha256/${hex}`]);
      await bare.delete(digest);
      expect(await keysUnder("blobs/")).toEqual([]);
    });

    it("reads the region and endpoint from the environment", async () => {
      const aws = s3Client({});
      expect(await aws.config.region()).toBe("us-east-1");
      expect(aws.config.forcePathStyle).toBe(false);
      const minio = s3Client({
        AWS_REGION: "eu-west-3",
        AWS_ENDPOINT_URL: "http://minio.local:9000",
      });
      expect(await minio.config.region()).toBe("eu-west-3");
      expect(minio.config.forcePathStyle).toBe(true);
      const endpoint = await minio.config.endpoint?.();
      expect(`${endpoint?.protocol}//${endpoint?.hostname}:${endpoint?.port}`).toBe(
        "http://minio.local:9000",
      );
      aws.destroy();
      minio.destroy();
    });

    it.each([
      "file:///var/artifacts",
      "s3://",
      "s3:///prefix",
      "s3://ab/prefix",
      "s3://Upper/prefix",
      "s3://bucket:9000/prefix",
      "s3://bucket/prefix?versioning=1",
      "bucket/prefix",
    ])("refuses %s", (url) => {
      expect(() => parseS3Url(url)).toThrow(TypeError);
      expect(() => parseS3Url(url)).toThrow(/S3/);
    });

    it("builds clients without the SDK's Node version warning, and keeps other warnings", () => {
      const env = { ...process.env };
      delete env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED;
      delete env.NODE_OPTIONS;
      const stderrOf = (script: string) => {
        const r = spawnSync(
          process.execPath,
          [
            "--import",
            "tsx",
            "--input-type=module",
            "-e",
            `${script}; process.emitWarning("another warning");`,
          ],
          { cwd: join(import.meta.dirname, "../.."), env, encoding: "utf8" },
        );
        expect(r.status, r.stderr).toBe(0);
        return r.stderr;
      };
      const ours = stderrOf(
        `import { s3Client } from "./runner/artifacts/s3-store.ts"; s3Client({}); s3Client({})`,
      );
      expect(ours).toContain("another warning");
      expect(ours).not.toContain("NodeVersionSupportWarning");
      // The warning is there to be seen when a client is built otherwise.
      const plain = stderrOf(`import { S3Client } from "@aws-sdk/client-s3"; new S3Client({})`);
      expect(plain).toContain("NodeVersionSupportWarning");
      expect(plain).toContain("another warning");
    }, 60_000);
  });

  describe("a file that changes while it is stored", () => {
    /** A store whose client lets `beforeUpload` run once the file was hashed and looked up. */
    function storeWithHook(beforeUpload: () => Promise<void>): {
      store: S3BlobStore;
      close(): void;
    } {
      const client = clientFor(s3.env);
      let fired = false;
      client.middlewareStack.add(
        (next, context) => async (args) => {
          if (context.commandName === "HeadObjectCommand" && !fired) {
            fired = true;
            await beforeUpload();
          }
          return next(args);
        },
        { step: "initialize", name: "changeTheFileMeanwhile" },
      );
      const store = new S3BlobStore({
        bucket: s3.bucket,
        prefix: `changing/${randomBytes(4).toString("hex")}`,
        client,
      });
      return { store, close: () => client.destroy() };
    }

    it.each([
      ["a small file rewritten", 1000, (b: Buffer) => damaged(b)],
      ["a multipart-sized file rewritten", 12 * 1024 * 1024 + 3, (b: Buffer) => damaged(b)],
      ["a file cut short", 6 * 1024 * 1024, (b: Buffer) => b.subarray(0, 1024)],
      ["a file grown", 1000, (b: Buffer) => Buffer.concat([b, b])],
    ])(
      "refuses %s and stores nothing under either digest",
      async (_what, size, change) => {
        const bytes = randomBytes(size);
        const path = join(work, "out.bin");
        await writeFile(path, bytes);
        const changed = change(bytes);
        const { store, close } = storeWithHook(() => writeFile(path, changed));
        try {
          const put = store.putFile(path);
          await expect(put).rejects.toThrow(BlobStoreError);
          await expect(put).rejects.toThrow(`${path} changed while it was being stored`);
          expect(await store.has(sha256(bytes))).toBe(false);
          expect(await store.has(sha256(changed))).toBe(false);
          expect(await listAll(store)).toEqual([]);
          expect(await keysUnder(store.prefix)).toEqual([]);
          // Once nothing writes to it, it stores.
          expect((await store.putFile(path)).digest).toBe(sha256(changed));
          expect((await readFile(path)).equals(changed)).toBe(true);
        } finally {
          close();
        }
      },
      60_000,
    );
  });

  describe("when S3 fails", () => {
    it("says the bucket does not exist, on every operation, never that a blob is missing", async () => {
      const client = clientFor(s3.env);
      const store = new S3BlobStore({ bucket: "reprise-no-such-bucket", prefix: "p", client });
      const digest = sha256(Buffer.from("x"));
      const missingBucket = /the bucket reprise-no-such-bucket does not exist: create it/;
      const path = join(work, "f");
      await writeFile(path, "x");
      const attempts: Array<[string, () => Promise<unknown>]> = [
        ["has", () => store.has(digest)],
        ["stat", () => store.stat(digest)],
        ["putBytes", () => store.putBytes(Buffer.from("x"))],
        ["putFile", () => store.putFile(path)],
        ["getFile", () => store.getFile(digest, join(work, "out"), 0o444)],
        ["getStream", () => store.getStream(digest)],
        ["getBytes", () => store.getBytes(digest, 10)],
        ["delete", () => store.delete(digest)],
        ["list", () => listAll(store)],
      ];
      for (const [what, attempt] of attempts) {
        const err = await attempt().then(
          () => new Error(`${what} succeeded`),
          (e: unknown) => e,
        );
        expect(err, what).toBeInstanceOf(BlobStoreError);
        expect(err, what).not.toBeInstanceOf(BlobMissingError);
        expect((err as Error).message, what).toMatch(missingBucket);
        expect((err as Error).message, what).toContain("s3://reprise-no-such-bucket/p/");
      }
      client.destroy();
    });

    it("says the credentials were refused and what to check", async () => {
      // s3rver does not check SigV4 signatures, only that it knows the access key.
      const client = s3Client(s3.env, {
        credentials: { accessKeyId: "NOT-S3RVER", secretAccessKey: "S3RVER" },
      });
      const store = new S3BlobStore({ bucket: s3.bucket, prefix: "denied", client });
      const digest = sha256(Buffer.from("x"));
      const attempts = [
        () => store.has(digest),
        () => store.putBytes(Buffer.from("x")),
        () => store.getBytes(digest, 9),
      ];
      for (const attempt of attempts) {
        const put = attempt();
        await expect(put).rejects.toThrow(BlobStoreError);
        await expect(put).rejects.toThrow(
          /access was refused \((InvalidAccessKeyId, )?HTTP 403\): check the credentials \(AWS_ACCESS_KEY_ID/,
        );
      }
      expect(await keysUnder("denied/")).toEqual([]);
      client.destroy();
    });

    it("says the endpoint cannot be reached and to check AWS_ENDPOINT_URL", async () => {
      const port = await closedPort();
      const client = s3Client(
        { AWS_ENDPOINT_URL: `http://127.0.0.1:${port}` },
        { credentials: { accessKeyId: "a", secretAccessKey: "b" }, maxAttempts: 1 },
      );
      const store = new S3BlobStore({ bucket: "reprise-anywhere", prefix: "", client });
      const digest = sha256(Buffer.from("x"));
      const attempts = [
        () => store.has(digest),
        () => store.putBytes(Buffer.from("x")),
        () => store.getFile(digest, join(work, "o"), 0o444),
      ];
      for (const attempt of attempts) {
        const tried = attempt();
        await expect(tried).rejects.toThrow(BlobStoreError);
        await expect(tried).rejects.toThrow(
          /could not .* s3:\/\/reprise-anywhere\/blobs\/sha256\/[0-9a-f]{64}: the S3 endpoint could not be reached \(ECONNREFUSED\): check AWS_ENDPOINT_URL/,
        );
      }
      client.destroy();
    });
  });

  it("lists more blobs than fit in one page", async () => {
    const client = clientFor(s3.env);
    const store = new S3BlobStore({
      bucket: s3.bucket,
      prefix: `paged/${randomBytes(4).toString("hex")}`,
      client,
    });
    // S3 returns at most 1000 keys a page.
    const blobs = Array.from({ length: 1003 }, (_, i) => Buffer.from(`blob ${i}`));
    for (let i = 0; i < blobs.length; i += 50)
      await Promise.all(
        blobs
          .slice(i, i + 50)
          .map((b) =>
            s3.client.send(
              new PutObjectCommand({ Bucket: s3.bucket, Key: store.key(sha256(b)), Body: b }),
            ),
          ),
      );
    const listed = await listAll(store);
    expect(listed).toHaveLength(1003);
    expect(new Set(listed.map((i) => i.digest))).toEqual(new Set(blobs.map(sha256)));
    client.destroy();
  }, 120_000);
});

/** A loopback port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  await new Promise((resolve) => server.close(resolve));
  if (address === null || typeof address === "string") throw new Error("no port");
  return address.port;
}
