/**
 * The S3 adapter of the artifact store (REPRISE_ARTIFACTS=s3://BUCKET/PREFIX): AWS itself, or
 * anything speaking its protocol (MinIO, R2, GCS interop) through AWS_ENDPOINT_URL.
 *
 *   PREFIX/blobs/sha256/<64 hex>   each blob's bytes, uncompressed
 *
 * An object appears under its key only once its upload completes (one PutObject, or the
 * CompleteMultipartUpload of its parts), and neither is sent before the body has ended. So every
 * write hashes the bytes as they stream out and, when they are wrong (a claim that does not
 * match, more than announced, a file that changed since it was hashed), fails the body instead
 * of ending it: the upload is abandoned and nothing is ever stored under the digest's key, with
 * no temporary key and no server-side copy. What an abandoned multipart upload leaves is parts
 * that no listing shows; a bucket lifecycle rule (AbortIncompleteMultipartUpload) reclaims them
 * should the abort itself fail. Uploads by presigned URL (a pod's PUT or parts) are the exception:
 * S3 hashes nothing of a multipart object against the digest, so what they leave is checked by
 * the runner's verifyBlob (store.ts), which removes it when its bytes are wrong.
 *
 * Reads hash the bytes as they arrive; a blob whose bytes no longer match is deleted (it would
 * only mislead) and reported missing. A download cut short is an error of the store, never taken
 * for corruption: a blob is deleted only when all its bytes arrived and hash to something else.
 */
import { createHash, type Hash, randomBytes } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { chmod, link, lstat, rename, rm, unlink } from "node:fs/promises";
import { Readable, Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  type ListObjectsV2CommandOutput,
  PutObjectCommand,
  S3Client,
  type S3ClientConfig,
  UploadPartCommand,
} from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";
import { getSignedUrl } from "@aws-sdk/s3-request-presigner";
import { hashFile } from "./local-store.js";
import {
  BlobCorruptError,
  type BlobInfo,
  BlobMismatchError,
  BlobMissingError,
  type BlobStore,
  BlobStoreError,
  type CompletedPart,
  hexOf,
  type MultipartOptions,
  type PresignedMultipart,
  type PresignedRequest,
  type PresignOptions,
  type PutOptions,
} from "./store.js";

/** S3's smallest part of a multipart upload (all but the last). */
const S3_MIN_PART_BYTES = 5 * 1024 * 1024;
/** S3's most parts in one multipart upload. */
const S3_MAX_PARTS = 10_000;
/** S3's largest part of a multipart upload. */
const S3_MAX_PART_BYTES = 5 * 1024 ** 3;
/** A presigned multipart upload's parts when the caller names no size: 160 for 10 GiB. */
const DEFAULT_PART_BYTES = 64 * 1024 * 1024;
const MIB = 1024 * 1024;
/** What S3 answers when it will not assemble the parts it was given. */
const REFUSED_PARTS = [
  "NoSuchUpload",
  "InvalidPart",
  "InvalidPartOrder",
  "EntityTooSmall",
  "MalformedXML",
];
/** Parts of one upload in flight at once, each held in memory (5 MiB at least): the SDK's default. */
const PARTS_IN_FLIGHT = 4;
/**
 * Multipart uploads at once per store: ingest stores 32 files at once, and 32 large files with 4
 * parts each in memory would hold 640 MiB; 2 hold 40 MiB and keep the link busy.
 */
const LARGE_UPLOADS = 2;
const READ_CHUNK = 1 << 20;
/** SigV4 refuses a presigned URL valid for longer than 7 days (X-Amz-Expires at most 604800). */
const S3_MAX_PRESIGN_SECONDS = 7 * 24 * 3600;
/** S3's largest single PutObject: a presigned PUT is one request, so one blob at most this big. */
const S3_MAX_PUT_BYTES = 5 * 1024 ** 3;
const DEFAULT_REGION = "us-east-1";
/**
 * The SDK warns once per process, on the first client it builds, that its releases from 2027 on
 * need Node 22; this is its own switch for that one warning, read only while a client is built.
 */
const SDK_NODE_WARNING_SWITCH = "AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED";
/** What S3, MinIO, R2 and GCS all accept as a bucket name. */
const BUCKET_NAME = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;
/** Failures to reach the endpoint at all, as Node reports them. */
const UNREACHABLE = [
  "ECONNREFUSED",
  "ENOTFOUND",
  "EAI_AGAIN",
  "ETIMEDOUT",
  "ECONNRESET",
  "EHOSTUNREACH",
  "ENETUNREACH",
];
const REFUSED_CREDENTIALS = [
  "AccessDenied",
  "Forbidden",
  "InvalidAccessKeyId",
  "SignatureDoesNotMatch",
  "ExpiredToken",
  "InvalidToken",
  "CredentialsProviderError",
];
/** Where hard links cannot be made (some FUSE and network filesystems). */
const NO_HARD_LINKS = ["EPERM", "ENOTSUP", "EOPNOTSUPP", "EMLINK", "EXDEV", "ENOSYS"];

export interface S3BlobStoreOptions {
  bucket: string;
  /** Key prefix under which `blobs/` lives; "" for the bucket's root. */
  prefix: string;
  client: S3Client;
}

export interface S3Env {
  AWS_REGION?: string;
  AWS_ENDPOINT_URL?: string;
}

type Source = AsyncIterable<Uint8Array> | Iterable<Uint8Array>;
/** Why bytes are refused: asked with the running size as they pass, then with their digest. */
type Verdict = (size: number, digest: string | null) => Error | null;

export class S3BlobStore implements BlobStore {
  readonly location: string;
  readonly bucket: string;
  readonly prefix: string;
  readonly #client: S3Client;
  /** `PREFIX/blobs/sha256/`, every blob's key but its hex. */
  readonly #blobs: string;
  /** Whether the bucket is known to exist: a HEAD's 404 cannot say whether the key or it is missing. */
  #bucketSeen = false;
  /** Multipart uploads running, and those waiting for one to end. */
  readonly #large = new Slots(LARGE_UPLOADS);

  constructor({ bucket, prefix, client }: S3BlobStoreOptions) {
    this.bucket = bucket;
    this.prefix = prefix.replace(/^\/+|\/+$/g, "");
    this.#client = client;
    this.location = `s3://${bucket}${this.prefix ? `/${this.prefix}` : ""}`;
    this.#blobs = `${this.prefix ? `${this.prefix}/` : ""}blobs/sha256/`;
  }

  key(digest: string): string {
    return this.#blobs + hexOf(digest);
  }

  async has(digest: string): Promise<boolean> {
    return (await this.stat(digest)) !== null;
  }

  async stat(digest: string): Promise<BlobInfo | null> {
    const Key = this.key(digest);
    try {
      const head = await this.#client.send(new HeadObjectCommand({ Bucket: this.bucket, Key }));
      this.#bucketSeen = true;
      return { digest, size: head.ContentLength ?? 0, modified: head.LastModified ?? new Date(0) };
    } catch (e) {
      if (!isNotFound(e)) throw this.#failed("look up", Key, e);
    }
    await this.#checkBucket(Key);
    return null;
  }

  /** `owned` changes nothing here: the bytes travel either way. */
  async putFile(path: string, _options?: PutOptions): Promise<{ digest: string; size: number }> {
    let hashed: { digest: string; size: number };
    try {
      hashed = await hashFile(path);
    } catch (e) {
      throw this.#readFailed(path, e);
    }
    // Stored already: the bytes were just hashed, so they need not travel.
    if (await this.has(hashed.digest)) return hashed;
    const changed: Verdict = (size, digest) =>
      size > hashed.size || (digest !== null && (digest !== hashed.digest || size !== hashed.size))
        ? new BlobStoreError(
            `${path} changed while it was being stored in ${this.location} (it hashed to ${hashed.digest} first): nothing was stored; store it again once nothing writes to it`,
          )
        : null;
    const sent = vetted(createReadStream(path, { highWaterMark: READ_CHUNK }), changed);
    await this.#upload(this.key(hashed.digest), sent, hashed.size, path);
    return hashed;
  }

  async putBytes(bytes: Uint8Array): Promise<{ digest: string; size: number }> {
    const digest = `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
    return this.putStream([bytes], digest);
  }

  async putStream(
    stream: Source,
    expected: string,
    maxBytes = Number.POSITIVE_INFINITY,
  ): Promise<{ digest: string; size: number }> {
    const Key = this.key(expected);
    const claim: Verdict = (size, digest) =>
      size > maxBytes
        ? new BlobMismatchError(`more than the ${maxBytes} bytes announced for ${expected}`)
        : digest !== null && digest !== expected
          ? new BlobMismatchError(`the bytes sent hash to ${digest}, not ${expected}`)
          : null;
    const sent = vetted(stream, claim);
    if (await this.has(expected)) {
      // Stored already: the claim is still checked, but the bytes need not travel.
      try {
        for await (const _ of sent.body);
      } catch (e) {
        throw sent.refused ?? this.#readFailed(expected, e);
      }
      return { digest: expected, size: sent.size };
    }
    await this.#upload(Key, sent, Number.isFinite(maxBytes) ? maxBytes : null, expected);
    return { digest: expected, size: sent.size };
  }

  async getFile(digest: string, dest: string, mode: number): Promise<void> {
    const Key = this.key(digest);
    const got = await this.#get(digest, Key);
    const partial = `${dest}.partial-${randomBytes(6).toString("hex")}`;
    const hash = createHash("sha256");
    let size = 0;
    let writeError: unknown = null;
    try {
      const out = createWriteStream(partial, { flags: "wx", mode: 0o600 });
      out.once("error", (e) => {
        writeError = e;
      });
      const hashing = new Transform({
        transform(chunk: Buffer, _enc, done) {
          hash.update(chunk);
          size += chunk.byteLength;
          done(null, chunk);
        },
      });
      try {
        await pipeline(got.body, hashing, out);
      } catch (e) {
        // The destination's own failure (disk full, permissions) is the caller's to see as it is.
        if (writeError !== null) throw writeError;
        throw this.#failed("read", Key, e);
      }
      await this.#verified(digest, Key, got.length, size, hash);
      await chmod(partial, mode);
      await placeAt(partial, dest);
    } catch (e) {
      await rm(partial, { force: true });
      throw e;
    }
  }

  async getStream(digest: string): Promise<Readable> {
    const Key = this.key(digest);
    const got = await this.#get(digest, Key);
    const hash = createHash("sha256");
    let size = 0;
    const verified = (): Promise<void> => this.#verified(digest, Key, got.length, size, hash);
    const verify = new Transform({
      transform(chunk: Buffer, _enc, done) {
        hash.update(chunk);
        size += chunk.byteLength;
        done(null, chunk);
      },
      flush(done) {
        // The corrupt blob is gone before the reader hears of it.
        verified().then(() => done(), done);
      },
    });
    got.body.on("error", (e) => verify.destroy(this.#failed("read", Key, e)));
    // A reader that stops early must not keep the connection.
    verify.once("close", () => got.body.destroy());
    return got.body.pipe(verify);
  }

  async getBytes(digest: string, maxBytes: number): Promise<Buffer> {
    const Key = this.key(digest);
    const got = await this.#get(digest, Key);
    const tooBig = (size: number) =>
      new BlobStoreError(`artifact ${digest} is ${size} bytes, over the ${maxBytes} expected`);
    if (got.length !== null && got.length > maxBytes) {
      got.body.destroy();
      throw tooBig(got.length);
    }
    const hash = createHash("sha256");
    const chunks: Buffer[] = [];
    let size = 0;
    try {
      for await (const chunk of got.body as AsyncIterable<Buffer>) {
        size += chunk.byteLength;
        if (size > maxBytes) throw tooBig(size);
        hash.update(chunk);
        chunks.push(chunk);
      }
    } catch (e) {
      if (e instanceof BlobStoreError) throw e;
      throw this.#failed("read", Key, e);
    } finally {
      got.body.destroy();
    }
    await this.#verified(digest, Key, got.length, size, hash);
    return Buffer.concat(chunks, size);
  }

  async delete(digest: string): Promise<void> {
    const Key = this.key(digest);
    try {
      await this.#client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key }));
    } catch (e) {
      throw this.#failed("delete", Key, e);
    }
  }

  async *list(): AsyncIterable<BlobInfo> {
    let token: string | undefined;
    do {
      let page: ListObjectsV2CommandOutput;
      try {
        page = await this.#client.send(
          new ListObjectsV2Command({
            Bucket: this.bucket,
            Prefix: this.#blobs,
            ContinuationToken: token,
          }),
        );
      } catch (e) {
        throw this.#failed("list", this.#blobs, e);
      }
      for (const o of page.Contents ?? []) {
        const hex = o.Key?.slice(this.#blobs.length) ?? "";
        if (!/^[0-9a-f]{64}$/.test(hex)) continue;
        yield {
          digest: `sha256:${hex}`,
          size: o.Size ?? 0,
          modified: o.LastModified ?? new Date(0),
        };
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  async presignGet(digest: string, options: PresignOptions): Promise<PresignedRequest> {
    const Key = this.key(digest);
    const seconds = presignSeconds(options);
    // Taken before signing, so `expires` is never later than the URL's own end.
    const expires = new Date(Date.now() + seconds * 1000);
    const url = await this.#presign(
      Key,
      new GetObjectCommand({ Bucket: this.bucket, Key }),
      seconds,
      new Set(),
    );
    return { method: "GET", url, headers: {}, expires };
  }

  /**
   * Signs the key, Content-Length and x-amz-checksum-sha256 (the digest's own bytes, base64): S3
   * refuses another key, another size, and bytes whose sha256 is not that one. Stores that do
   * not check the checksum (s3rver) take other bytes of the right size: verifyBlob catches them.
   */
  async presignPut(
    digest: string,
    size: number,
    options: PresignOptions,
  ): Promise<PresignedRequest> {
    const Key = this.key(digest);
    if (!Number.isSafeInteger(size) || size < 0)
      throw new TypeError(`a blob's size is a whole number of bytes, got ${size}`);
    if (size > S3_MAX_PUT_BYTES)
      // Not retryable: a presigned multipart upload (one URL per part) is what such a blob needs.
      throw new RangeError(
        `artifact ${digest} is ${size} bytes, over the ${S3_MAX_PUT_BYTES} one S3 PUT takes: a single presigned upload cannot store it`,
      );
    const checksum = Buffer.from(hexOf(digest), "hex").toString("base64");
    const seconds = presignSeconds(options);
    const expires = new Date(Date.now() + seconds * 1000);
    const put = new PutObjectCommand({
      Bucket: this.bucket,
      Key,
      ContentLength: size,
      ChecksumSHA256: checksum,
    });
    // Hoisted into the query, the checksum would be a parameter S3 does not check the body by.
    const url = await this.#presign(Key, put, seconds, new Set(["x-amz-checksum-sha256"]));
    return {
      method: "PUT",
      url,
      headers: { "content-length": String(size), "x-amz-checksum-sha256": checksum },
      expires,
    };
  }

  /**
   * Begins a multipart upload of the digest's key with the runner's own credentials and signs
   * one UploadPart per part, each bound to the key, the upload, its number and its
   * Content-Length (a part of another size is refused). No checksum is signed: S3 keeps no
   * sha256 of a whole multipart object, and a part's would be a value only the pod knows. So
   * S3 checks nothing of the content; the runner's verifyBlob re-reads what was completed.
   */
  async presignMultipart(
    digest: string,
    size: number,
    options: MultipartOptions,
  ): Promise<PresignedMultipart> {
    const Key = this.key(digest);
    const partBytes = multipartPartBytes(size, options.partBytes);
    const seconds = presignSeconds(options);
    const expires = new Date(Date.now() + seconds * 1000);
    let uploadId: string;
    try {
      const created = await this.#client.send(
        new CreateMultipartUploadCommand({ Bucket: this.bucket, Key }),
      );
      if (!created.UploadId) throw new Error("S3 answered with no UploadId");
      uploadId = created.UploadId;
      this.#bucketSeen = true;
    } catch (e) {
      throw this.#failed("begin an upload of", Key, e);
    }
    try {
      const count = Math.max(1, Math.ceil(size / partBytes));
      const parts: PresignedRequest[] = [];
      for (let n = 1; n <= count; n++) {
        const length = Math.min(partBytes, size - (n - 1) * partBytes);
        const command = new UploadPartCommand({
          Bucket: this.bucket,
          Key,
          UploadId: uploadId,
          PartNumber: n,
          ContentLength: length,
        });
        // Where the client computes checksums (AWS's default), the SDK would sign a CRC32 of the
        // empty body it presigns into the URL, and S3 would refuse every real part against it.
        command.middlewareStack.add(
          (next) => async (args) => {
            const headers = (args.request as { headers?: Record<string, string> }).headers ?? {};
            for (const name of Object.keys(headers))
              if (/^x-amz-(checksum-|sdk-checksum-algorithm$)/i.test(name)) delete headers[name];
            return next(args);
          },
          { step: "build", priority: "low", name: "repriseUnsignedPartChecksum" },
        );
        const url = await this.#presign(Key, command, seconds, new Set());
        parts.push({ method: "PUT", url, headers: { "content-length": String(length) }, expires });
      }
      return { uploadId, partBytes, parts };
    } catch (e) {
      await this.abortMultipart(digest, uploadId).catch(() => undefined);
      throw e;
    }
  }

  /**
   * S3 assembles the parts without hashing them against the digest: what appears here is
   * verified by the runner's verifyBlob (which removes it when wrong), not by this call.
   */
  async completeMultipart(
    digest: string,
    uploadId: string,
    parts: readonly CompletedPart[],
  ): Promise<void> {
    const Key = this.key(digest);
    const problem = partsProblem(parts);
    if (problem !== null)
      throw new BlobMismatchError(
        `the upload ${uploadId} of artifact ${digest} cannot be completed: ${problem}`,
      );
    // Stored already (and verified when read): unverified parts must not replace it.
    if (await this.has(digest)) {
      await this.abortMultipart(digest, uploadId);
      return;
    }
    try {
      await this.#client.send(
        new CompleteMultipartUploadCommand({
          Bucket: this.bucket,
          Key,
          UploadId: uploadId,
          MultipartUpload: {
            Parts: parts.map((p) => ({ PartNumber: p.partNumber, ETag: p.etag })),
          },
        }),
      );
    } catch (e) {
      const name = errorName(e);
      if (REFUSED_PARTS.includes(name))
        throw new BlobMismatchError(
          `${this.location} refused to complete the upload ${uploadId} of artifact ${digest} (${name}): ${(e as Error).message}`,
          { cause: e },
        );
      throw this.#failed("complete the upload of", Key, e);
    }
  }

  async abortMultipart(digest: string, uploadId: string): Promise<void> {
    const Key = this.key(digest);
    try {
      await this.#client.send(
        new AbortMultipartUploadCommand({ Bucket: this.bucket, Key, UploadId: uploadId }),
      );
    } catch (e) {
      if (errorName(e) === "NoSuchUpload" || isNotFound(e)) return;
      throw this.#failed("abort the upload of", Key, e);
    }
  }

  async #presign(
    Key: string,
    command: GetObjectCommand | PutObjectCommand | UploadPartCommand,
    expiresIn: number,
    unhoistableHeaders: Set<string>,
  ): Promise<string> {
    const options = {
      expiresIn,
      // Signed by default today; named so that a change of default cannot unbind the size.
      signableHeaders: new Set(["content-length"]),
      unhoistableHeaders,
    };
    try {
      // One call per type: getSignedUrl infers its types from the command's.
      if (command instanceof GetObjectCommand)
        return await getSignedUrl(this.#client, command, options);
      if (command instanceof PutObjectCommand)
        return await getSignedUrl(this.#client, command, options);
      return await getSignedUrl(this.#client, command, options);
    } catch (e) {
      throw this.#failed("presign", Key, e);
    }
  }

  /** Uploads `sent` to `Key`; when its verdict refused the bytes, says why (nothing was stored). */
  async #upload(Key: string, sent: Vetted, sizeHint: number | null, what: string): Promise<void> {
    const large = sizeHint === null || sizeHint > S3_MIN_PART_BYTES;
    if (large) await this.#large.take();
    try {
      await this.#uploadNow(Key, sent, sizeHint, what);
    } finally {
      if (large) this.#large.give();
    }
  }

  async #uploadNow(
    Key: string,
    sent: Vetted,
    sizeHint: number | null,
    what: string,
  ): Promise<void> {
    const upload = new Upload({
      client: this.#client,
      params: { Bucket: this.bucket, Key, Body: sent.body },
      partSize: partSizeFor(sizeHint),
      queueSize: PARTS_IN_FLIGHT,
    });
    try {
      await upload.done();
      this.#bucketSeen = true;
    } catch (e) {
      // The SDK may report a failed abort of the parts rather than why the body failed.
      if (sent.refused) throw sent.refused;
      if (sent.broken !== null) throw this.#readFailed(what, sent.broken);
      throw this.#failed("store", Key, e);
    } finally {
      sent.body.destroy();
    }
  }

  async #get(digest: string, Key: string): Promise<{ body: Readable; length: number | null }> {
    try {
      const got = await this.#client.send(new GetObjectCommand({ Bucket: this.bucket, Key }));
      this.#bucketSeen = true;
      return { body: got.Body as Readable, length: got.ContentLength ?? null };
    } catch (e) {
      if (isNotFound(e)) throw new BlobMissingError(digest, this.location);
      throw this.#failed("read", Key, e);
    }
  }

  /** After a whole download: a short one is the network's fault, a wrong one the blob's. */
  async #verified(
    digest: string,
    Key: string,
    length: number | null,
    size: number,
    hash: Hash,
  ): Promise<void> {
    if (length !== null && size !== length)
      throw new BlobStoreError(
        `could not read s3://${this.bucket}/${Key}: the download ended after ${size} of its ${length} bytes; try again`,
      );
    const actual = `sha256:${hash.digest("hex")}`;
    if (actual === digest) return;
    await this.#client
      .send(new DeleteObjectCommand({ Bucket: this.bucket, Key }))
      .catch(() => undefined);
    throw new BlobCorruptError(digest, this.location, actual);
  }

  /** After a HEAD's 404, once: a missing bucket must not pass for an empty store. */
  async #checkBucket(Key: string): Promise<void> {
    if (this.#bucketSeen) return;
    try {
      await this.#client.send(new HeadBucketCommand({ Bucket: this.bucket }));
    } catch (e) {
      const http = status(e);
      if (http === 404 || errorName(e) === "NoSuchBucket")
        throw new BlobStoreError(
          `could not look up s3://${this.bucket}/${Key}: ${this.#noBucket()}`,
          {
            cause: e,
          },
        );
      // Credentials allowed the object but not the bucket: the object requests will say the rest.
      if (http !== 401 && http !== 403) throw this.#failed("look up", Key, e);
    }
    this.#bucketSeen = true;
  }

  #readFailed(what: string, e: unknown): Error {
    const c = code(e);
    // A file that is not there, or not a file, is the caller's mistake, as on the local store.
    if (c === "ENOENT" || c === "EISDIR") return e as Error;
    return new BlobStoreError(
      `could not read ${what} to store it in ${this.location}: ${(e as Error).message}`,
      { cause: e },
    );
  }

  #noBucket(): string {
    return `the bucket ${this.bucket} does not exist: create it, or fix the bucket in REPRISE_ARTIFACTS (and AWS_ENDPOINT_URL, if the bucket is not on AWS)`;
  }

  #failed(what: string, Key: string, e: unknown): BlobStoreError {
    const name = errorName(e);
    const http = status(e);
    const c = code(e);
    // A HEAD's error has no body, so the SDK cannot name it: the status says more.
    const named = name === "Unknown" || name === "Error" ? [] : [name];
    const answer = [...named, ...(http ? [`HTTP ${http}`] : [])].join(", ");
    const why =
      name === "NoSuchBucket"
        ? this.#noBucket()
        : REFUSED_CREDENTIALS.includes(name) || http === 401 || http === 403
          ? `access was refused (${answer}): check the credentials (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or the role) and that they may read and write ${this.location}`
          : (c !== undefined && UNREACHABLE.includes(c)) || name === "TimeoutError"
            ? `the S3 endpoint could not be reached (${c ?? name}): check AWS_ENDPOINT_URL (unset for AWS itself), AWS_REGION and the network`
            : `${(e as Error)?.message}${answer ? ` (${answer})` : ""}; check the credentials, AWS_ENDPOINT_URL and that the bucket ${this.bucket} exists`;
    return new BlobStoreError(`could not ${what} s3://${this.bucket}/${Key}: ${why}`, { cause: e });
  }
}

/**
 * An S3 client as the store needs it: credentials from the standard chain (environment, profile,
 * SSO, web identity, instance or container role) unless `config` gives them, the region from
 * AWS_REGION, and for AWS_ENDPOINT_URL (MinIO, R2, GCS interop) path-style addressing, since
 * such endpoints rarely have a DNS name per bucket.
 */
export function s3Client(env: S3Env, config: S3ClientConfig = {}): S3Client {
  const endpoint = env.AWS_ENDPOINT_URL || undefined;
  const settings: S3ClientConfig = {
    region: env.AWS_REGION || DEFAULT_REGION,
    ...(endpoint
      ? {
          endpoint,
          forcePathStyle: true,
          // The SDK's default CRC32 checksums on every request are refused by some of them (GCS).
          requestChecksumCalculation: "WHEN_REQUIRED",
          responseChecksumValidation: "WHEN_REQUIRED",
        }
      : {}),
    ...config,
  };
  const before = process.env[SDK_NODE_WARNING_SWITCH];
  process.env[SDK_NODE_WARNING_SWITCH] = "true";
  try {
    return new S3Client(settings);
  } finally {
    if (before === undefined) Reflect.deleteProperty(process.env, SDK_NODE_WARNING_SWITCH);
    else process.env[SDK_NODE_WARNING_SWITCH] = before;
  }
}

/** The store at `s3://BUCKET/PREFIX` (REPRISE_ARTIFACTS). */
export function s3BlobStoreFromUrl(url: string, env: S3Env): S3BlobStore {
  const { bucket, prefix } = parseS3Url(url);
  return new S3BlobStore({ bucket, prefix, client: s3Client(env) });
}

export function parseS3Url(url: string): { bucket: string; prefix: string } {
  const wanted = `expected s3://BUCKET/PREFIX, got ${JSON.stringify(url)}`;
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new TypeError(`not an S3 location: ${wanted}`);
  }
  if (u.protocol !== "s3:" || u.username || u.password || u.port || u.search || u.hash)
    throw new TypeError(`not an S3 location: ${wanted}`);
  if (!BUCKET_NAME.test(u.hostname))
    throw new TypeError(
      `not an S3 bucket name: ${JSON.stringify(u.hostname)} (3 to 63 lowercase letters, digits, dots and hyphens): ${wanted}`,
    );
  return { bucket: u.hostname, prefix: decodeURIComponent(u.pathname).replace(/^\/+|\/+$/g, "") };
}

interface Vetted {
  /** The bytes, for an upload's body: it fails, rather than ends, when they are refused. */
  readonly body: Readable;
  readonly size: number;
  /** Why the bytes were refused, once they were. */
  readonly refused: Error | null;
  /** What reading the source failed with, if it did. */
  readonly broken: unknown;
}

/** `source`, hashed and judged as it passes; see the module's comment for why this is safe. */
function vetted(source: Source, verdict: Verdict): Vetted {
  const state = { size: 0, refused: null as Error | null, broken: null as unknown };
  async function* pass(): AsyncGenerator<Uint8Array> {
    const hash = createHash("sha256");
    try {
      for await (const chunk of source) {
        state.size += chunk.byteLength;
        state.refused = verdict(state.size, null);
        if (state.refused) throw state.refused;
        hash.update(chunk);
        yield chunk;
      }
    } catch (e) {
      if (e !== state.refused) state.broken = e;
      throw e;
    }
    state.refused = verdict(state.size, `sha256:${hash.digest("hex")}`);
    if (state.refused) throw state.refused;
  }
  const body = Readable.from(pass(), { highWaterMark: 1 });
  return {
    body,
    get size() {
      return state.size;
    },
    get refused() {
      return state.refused;
    },
    get broken() {
      return state.broken;
    },
  };
}

/** A counting semaphore: `take` waits while `n` are taken. */
class Slots {
  #free: number;
  readonly #waiting: Array<() => void> = [];
  constructor(n: number) {
    this.#free = n;
  }
  async take(): Promise<void> {
    if (this.#free > 0) {
      this.#free--;
      return;
    }
    await new Promise<void>((resolve) => this.#waiting.push(resolve));
  }
  give(): void {
    const next = this.#waiting.shift();
    if (next) next();
    else this.#free++;
  }
}

/** The seconds a presigned URL is asked to last, within what SigV4 allows. */
function presignSeconds({ expiresInSeconds }: PresignOptions): number {
  if (!Number.isFinite(expiresInSeconds) || expiresInSeconds < 1)
    throw new TypeError(
      `a presigned URL must last at least 1 second (the task's timeout plus a margin), got ${expiresInSeconds}`,
    );
  return Math.min(Math.ceil(expiresInSeconds), S3_MAX_PRESIGN_SECONDS);
}

/**
 * The part size of a presigned multipart upload of `size` bytes: the caller's wish (a whole
 * number of MiB), raised so that there are at most 10,000 parts of at least 5 MiB, and at most
 * S3's 5 GiB a part.
 */
export function multipartPartBytes(size: number, wish: number = DEFAULT_PART_BYTES): number {
  if (!Number.isSafeInteger(size) || size < 0)
    throw new TypeError(`a blob's size is a whole number of bytes, got ${size}`);
  if (size > S3_MAX_PARTS * S3_MAX_PART_BYTES)
    throw new RangeError(
      `a blob of ${size} bytes is over the ${S3_MAX_PARTS * S3_MAX_PART_BYTES} S3 takes in one multipart upload (10,000 parts of 5 GiB)`,
    );
  if (!Number.isSafeInteger(wish) || wish < 1)
    throw new TypeError(`a part size is a whole number of bytes, got ${wish}`);
  const least = Math.max(S3_MIN_PART_BYTES, Math.ceil(size / S3_MAX_PARTS));
  return Math.min(S3_MAX_PART_BYTES, Math.ceil(Math.max(wish, least) / MIB) * MIB);
}

/** Why S3 would refuse to assemble these parts before looking at them, or null. */
function partsProblem(parts: readonly CompletedPart[]): string | null {
  if (!Array.isArray(parts) || parts.length === 0) return "no parts were named";
  if (parts.length > S3_MAX_PARTS) return `${parts.length} parts, over S3's ${S3_MAX_PARTS}`;
  let last = 0;
  for (const p of parts) {
    if (!Number.isSafeInteger(p?.partNumber) || p.partNumber < 1 || p.partNumber > S3_MAX_PARTS)
      return `part number ${p?.partNumber} is not a whole number from 1 to ${S3_MAX_PARTS}`;
    if (p.partNumber <= last)
      return `part ${p.partNumber} comes after part ${last}: parts are listed once each, in ascending order`;
    if (typeof p.etag !== "string" || p.etag === "" || p.etag.length > 1024)
      return `part ${p.partNumber} has no ETag (the ETag header of its PUT's answer)`;
    last = p.partNumber;
  }
  return null;
}

/** Parts large enough that `size` bytes fit in S3's part limit; S3's minimum when not known. */
function partSizeFor(size: number | null): number {
  if (size === null) return S3_MIN_PART_BYTES;
  return Math.max(S3_MIN_PART_BYTES, Math.ceil(size / S3_MAX_PARTS));
}

/** Puts the verified file at `dest` whole, refusing (EEXIST) to replace anything there. */
async function placeAt(partial: string, dest: string): Promise<void> {
  try {
    await link(partial, dest);
  } catch (e) {
    if (!NO_HARD_LINKS.includes(code(e) ?? "")) throw e;
    // A rename would replace what is there; it can only be checked for first.
    const there = await lstat(dest).then(
      () => true,
      (err: unknown) => {
        if (code(err) === "ENOENT") return false;
        throw err;
      },
    );
    if (there)
      throw Object.assign(new Error(`EEXIST: file already exists, ${dest}`), { code: "EEXIST" });
    await rename(partial, dest);
    return;
  }
  await unlink(partial);
}

function isNotFound(e: unknown): boolean {
  const name = errorName(e);
  return (
    name === "NotFound" || name === "NoSuchKey" || (status(e) === 404 && name !== "NoSuchBucket")
  );
}

function errorName(e: unknown): string {
  return (e as Error | null)?.name ?? "Error";
}

function status(e: unknown): number | undefined {
  return (e as { $metadata?: { httpStatusCode?: number } } | null)?.$metadata?.httpStatusCode;
}

function code(e: unknown): string | undefined {
  const c = (e as NodeJS.ErrnoException | null)?.code;
  return typeof c === "string" ? c : undefined;
}
