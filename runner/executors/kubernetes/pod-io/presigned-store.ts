/**
 * A read-only BlobStore over the presigned GETs the broker handed the attempt, one per digest,
 * so that `materialise()` (../../../artifacts/ingest.ts) lays inputs out in the pod exactly as the
 * local executor does. Every byte is hashed as it streams; bytes that do not hash to their digest
 * fail the read (the file is never put in place). The pod cannot delete a corrupt blob (it holds
 * no credential): the failure says so, and the runner's verification removes it.
 */
import { createHash, randomBytes } from "node:crypto";
import { createWriteStream } from "node:fs";
import { chmod, link, lstat, rename, rm, unlink } from "node:fs/promises";
import type { IncomingMessage } from "node:http";
import { type Readable, Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import {
  type BlobInfo,
  BlobMissingError,
  type BlobStore,
  BlobStoreError,
} from "../../../artifacts/store.js";
import type { SignedRequest } from "./client.js";
import { type RetryPolicy, TransientError, withRetries } from "./retry.js";
import { inTransit, NotFoundError, send } from "./transfer.js";

/** The downloaded bytes hash to something else than their digest: the store's copy is corrupt. */
export class DownloadCorruptError extends BlobMissingError {
  override readonly name = "DownloadCorruptError";
  constructor(
    digest: string,
    location: string,
    readonly actual: string,
  ) {
    super(
      digest,
      location,
      `its bytes, as downloaded, hash to ${actual}: the store's copy is corrupt`,
    );
  }
}

export interface PresignedStoreOptions {
  retry: RetryPolicy;
  signal?: AbortSignal;
  log?: (line: string) => void;
}

export class PresignedBlobStore implements BlobStore {
  readonly location: string;
  readonly #urls: ReadonlyMap<string, SignedRequest>;
  readonly #options: PresignedStoreOptions;

  constructor(urls: Readonly<Record<string, SignedRequest>>, options: PresignedStoreOptions) {
    this.#urls = new Map(Object.entries(urls));
    this.#options = options;
    const first = this.#urls.values().next().value;
    this.location = first
      ? `the artifact store at ${new URL(first.url).origin} (presigned URLs)`
      : "the artifact store (no presigned URLs)";
  }

  async getFile(digest: string, dest: string, mode: number): Promise<void> {
    const partial = `${dest}.partial-${randomBytes(6).toString("hex")}`;
    await this.#retrying(digest, async () => {
      try {
        const res = await this.#open(digest);
        const hashing = new HashingTransform();
        const out = createWriteStream(partial, { flags: "w", mode: 0o600 });
        try {
          await pipeline(res, hashing, out);
        } catch (e) {
          throw inTransit(`downloading ${digest}`, e);
        }
        this.#check(digest, res, hashing);
        await chmod(partial, mode);
        await placeAt(partial, dest);
      } catch (e) {
        await rm(partial, { force: true });
        throw e;
      }
    });
  }

  async getStream(digest: string): Promise<Readable> {
    const res = await this.#retrying(digest, () => this.#open(digest));
    const hashing = new HashingTransform(() => this.#check(digest, res, hashing));
    res.once("error", (e) => hashing.destroy(inTransit(`downloading ${digest}`, e)));
    hashing.once("close", () => res.destroy());
    return res.pipe(hashing);
  }

  async getBytes(digest: string, maxBytes: number): Promise<Buffer> {
    return this.#retrying(digest, async () => {
      const res = await this.#open(digest);
      const announced = Number(res.headers["content-length"]);
      const tooBig = (size: number) =>
        new BlobStoreError(`artifact ${digest} is ${size} bytes, over the ${maxBytes} expected`);
      if (Number.isFinite(announced) && announced > maxBytes) {
        res.destroy();
        throw tooBig(announced);
      }
      const hashing = new HashingTransform();
      const chunks: Buffer[] = [];
      try {
        for await (const chunk of res.pipe(hashing) as AsyncIterable<Buffer>) {
          chunks.push(chunk);
          if (hashing.size > maxBytes) throw tooBig(hashing.size);
        }
      } catch (e) {
        res.destroy();
        if (e instanceof BlobStoreError) throw e;
        throw inTransit(`downloading ${digest}`, e);
      }
      this.#check(digest, res, hashing);
      return Buffer.concat(chunks, hashing.size);
    });
  }

  has(digest: string): Promise<boolean> {
    return Promise.resolve(this.#urls.has(digest));
  }

  stat(_digest: string): Promise<BlobInfo | null> {
    return Promise.reject(this.#readOnly("stat"));
  }
  putFile(): Promise<{ digest: string; size: number }> {
    return Promise.reject(this.#readOnly("putFile"));
  }
  putBytes(): Promise<{ digest: string; size: number }> {
    return Promise.reject(this.#readOnly("putBytes"));
  }
  putStream(): Promise<{ digest: string; size: number }> {
    return Promise.reject(this.#readOnly("putStream"));
  }
  delete(): Promise<void> {
    return Promise.reject(this.#readOnly("delete"));
  }
  list(): AsyncIterable<BlobInfo> {
    throw this.#readOnly("list");
  }

  async #open(digest: string): Promise<IncomingMessage> {
    const signed = this.#urls.get(digest);
    if (!signed)
      throw new BlobStoreError(
        `the broker gave no URL for ${digest}, which an input needs (a runner of another version than the helper image?)`,
      );
    try {
      return await send(signed, null, this.#options.signal);
    } catch (e) {
      if (e instanceof NotFoundError) throw new BlobMissingError(digest, this.location, e.message);
      throw e;
    }
  }

  /** Throws when the bytes that arrived are not the blob: short (transient) or other (corrupt). */
  #check(digest: string, res: IncomingMessage, hashing: HashingTransform): void {
    const announced = Number(res.headers["content-length"]);
    if (Number.isFinite(announced) && hashing.size !== announced)
      throw new TransientError(
        `downloading ${digest} stopped after ${hashing.size} of ${announced} bytes`,
      );
    const actual = hashing.digest();
    if (actual !== digest) throw new DownloadCorruptError(digest, this.location, actual);
  }

  #retrying<T>(digest: string, fn: () => Promise<T>): Promise<T> {
    const { retry, signal, log } = this.#options;
    return withRetries(retry, signal, fn, (e, waitMs) =>
      log?.(`${e.message}; downloading ${digest} again in ${waitMs} ms`),
    ).catch((e: unknown) => {
      if (e instanceof BlobMissingError || e instanceof BlobStoreError) throw e;
      throw new BlobStoreError(`could not download ${digest}: ${(e as Error).message}`, {
        cause: e,
      });
    });
  }

  #readOnly(method: string): BlobStoreError {
    return new BlobStoreError(`${method}: the pod's store of presigned downloads is read-only`);
  }
}

/** Where hard links cannot be made (some FUSE and network filesystems). */
const NO_HARD_LINKS = ["EPERM", "ENOTSUP", "EOPNOTSUPP", "EMLINK", "EXDEV", "ENOSYS"];

/** Puts the verified file at `dest`, refusing (EEXIST) to replace anything, as every store does. */
async function placeAt(partial: string, dest: string): Promise<void> {
  try {
    await link(partial, dest);
  } catch (e) {
    if (!NO_HARD_LINKS.includes((e as NodeJS.ErrnoException).code ?? "")) throw e;
    if (
      await lstat(dest).then(
        () => true,
        () => false,
      )
    )
      throw Object.assign(new Error(`EEXIST: file already exists, ${dest}`), { code: "EEXIST" });
    await rename(partial, dest);
    return;
  }
  await unlink(partial);
}

/** Passes bytes through, hashing and counting them; `atEnd` may refuse them before the end. */
class HashingTransform extends Transform {
  readonly #hash = createHash("sha256");
  size = 0;
  #digest: string | null = null;
  constructor(readonly atEnd?: () => void) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, done: (e?: Error | null) => void) {
    this.#hash.update(chunk);
    this.size += chunk.byteLength;
    this.push(chunk);
    done();
  }
  override _flush(done: (e?: Error | null) => void) {
    try {
      this.atEnd?.();
      done();
    } catch (e) {
      done(e as Error);
    }
  }
  digest(): string {
    this.#digest ??= `sha256:${this.#hash.digest("hex")}`;
    return this.#digest;
  }
}
