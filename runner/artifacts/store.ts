/**
 * The artifact store port: content-addressed blobs, one interface, one contract suite
 * (test/integration/artifact-store-contract.ts) run against every adapter (local filesystem, S3).
 *
 * A blob is stored under the sha256 of its bytes. Every write hashes what it writes and is atomic:
 * a reader sees a whole, verified blob under a digest's name or nothing, and a failed write
 * leaves no partial blob behind (temporary data may remain, never under a digest's name).
 * Presence checks are cheap (a stat, a HEAD); integrity is checked whenever bytes are read:
 * a blob whose bytes no longer match its digest is removed and reported missing, never handed
 * to a task.
 */
import type { Readable } from "node:stream";

export interface BlobInfo {
  digest: string;
  size: number;
  /** When the blob was stored (gc keeps recent ones: an upload or a run may be about to use them). */
  modified: Date;
}

export interface PutOptions {
  /**
   * The caller gives the file up: nothing will write to it again (a finished task's output). A
   * local store may then link it instead of copying it. Never set it for a user's own file.
   */
  owned?: boolean;
}

export interface BlobStore {
  /** Where blobs live, for messages: `file:///...` or `s3://bucket/prefix`. */
  readonly location: string;
  /** Whether a blob is stored, without reading it. */
  has(digest: string): Promise<boolean>;
  stat(digest: string): Promise<BlobInfo | null>;
  /** Stores a file's bytes, hashing them on the way; returns the digest they have. */
  putFile(path: string, options?: PutOptions): Promise<{ digest: string; size: number }>;
  putBytes(bytes: Uint8Array): Promise<{ digest: string; size: number }>;
  /**
   * Stores a stream that claims to be `expected` (an upload): refused with BlobMismatchError,
   * nothing stored, when the bytes hash to something else or exceed `maxBytes`.
   */
  putStream(
    stream: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
    expected: string,
    maxBytes?: number,
  ): Promise<{ digest: string; size: number }>;
  /**
   * Writes the blob to `dest` (which must not exist), verified; `mode` its permissions. A local
   * store may link or reflink instead of copying.
   */
  getFile(digest: string, dest: string, mode: number): Promise<void>;
  /** The blob's bytes as a stream that fails with BlobCorruptError if they do not match. */
  getStream(digest: string): Promise<Readable>;
  /** A small blob (a manifest) read whole and verified; refused above `maxBytes`. */
  getBytes(digest: string, maxBytes: number): Promise<Buffer>;
  delete(digest: string): Promise<void>;
  list(): AsyncIterable<BlobInfo>;
  /**
   * Presigning (optional: S3 has it, the local store does not): a URL that lets a pod, holding
   * no credential, download one blob, or upload exactly one blob's bytes under its digest's key.
   * See `presigner` for callers.
   */
  presignGet?(digest: string, options: PresignOptions): Promise<PresignedRequest>;
  /**
   * Bound to the digest's key, `size` (Content-Length is signed: another size is refused) and,
   * where the store enforces it, the bytes' sha256. A store that does not check content may take
   * other bytes of that size: the runner's `verifyBlob` is what guarantees them.
   */
  presignPut?(digest: string, size: number, options: PresignOptions): Promise<PresignedRequest>;
  /**
   * A multipart upload of one blob under its digest's key, begun by the runner with its own
   * credentials, and one presigned PUT per part (each signs its Content-Length). For blobs a
   * single PUT should not carry (S3 takes at most 5 GiB in one). No store checks a multipart
   * object against our sha256 (S3's SHA-256 of a multipart object is one of its parts' sums, and
   * a part's checksum header would have to be signed with a value only the pod knows): the
   * runner's `verifyBlob`, which re-reads the object and removes it when its bytes are wrong, is
   * what guarantees what was completed.
   */
  presignMultipart?(
    digest: string,
    size: number,
    options: MultipartOptions,
  ): Promise<PresignedMultipart>;
  /**
   * Assembles the parts (as the part PUTs answered: number and ETag) under the digest's key.
   * Refused with BlobMismatchError when the store will not assemble them (an unknown or aborted
   * upload, a missing or undersized part). When the blob is already there, the upload is
   * aborted instead: a completed upload would replace verified bytes with unverified ones.
   */
  completeMultipart?(
    digest: string,
    uploadId: string,
    parts: readonly CompletedPart[],
  ): Promise<void>;
  /** Discards the upload and its parts; an upload that is gone already is not an error. */
  abortMultipart?(digest: string, uploadId: string): Promise<void>;
}

export interface PresignOptions {
  /**
   * How long the URL works: the task's timeout plus a margin. A store clamps it to its own limit
   * (S3: 7 days) and says in `expires` when it really ends.
   */
  expiresInSeconds: number;
}

/** One HTTP request a pod may make, as signed: send these headers with exactly these values. */
export interface PresignedRequest {
  method: "GET" | "PUT";
  url: string;
  /** Signed headers the request must carry (for a PUT: content-length, the checksum). */
  headers: Record<string, string>;
  /** When the URL stops working (after clamping). */
  expires: Date;
}

export interface MultipartOptions extends PresignOptions {
  /**
   * The part size the caller would like; the store rounds it to what it allows (S3: 5 MiB to
   * 5 GiB, at most 10,000 parts) and says in `partBytes` what it chose.
   */
  partBytes?: number;
}

export interface PresignedMultipart {
  uploadId: string;
  /** Every part is this long but the last, which holds the rest. */
  partBytes: number;
  /** Part N (from 1) is `parts[N - 1]`: bytes `(N - 1) * partBytes` up to `N * partBytes`. */
  parts: PresignedRequest[];
}

/** A part as its PUT answered: its number (from 1) and the ETag header of the answer. */
export interface CompletedPart {
  partNumber: number;
  etag: string;
}

export type PresigningBlobStore = BlobStore &
  Required<
    Pick<
      BlobStore,
      "presignGet" | "presignPut" | "presignMultipart" | "completeMultipart" | "abortMultipart"
    >
  >;

/**
 * The store as one that can presign, or an error saying what to configure: a pod cannot reach a
 * store on the runner's filesystem, so tasks whose pods move artifacts need an S3 store.
 */
export function presigner(store: BlobStore, why: string): PresigningBlobStore {
  if (
    store.presignGet &&
    store.presignPut &&
    store.presignMultipart &&
    store.completeMultipart &&
    store.abortMultipart
  )
    return store as PresigningBlobStore;
  throw new BlobStoreError(
    `${why} needs an artifact store that pods can reach with presigned URLs, and ${store.location} is on the runner's own filesystem: set REPRISE_ARTIFACTS=s3://BUCKET/PREFIX (AWS_ENDPOINT_URL for MinIO, R2 or GCS)`,
  );
}

/** What the runner found when it checked a blob someone else uploaded. */
export type BlobCheck =
  | { ok: true; size: number }
  | { ok: false; problem: "missing" }
  /** Its bytes hashed to `actual`: it has been removed. */
  | { ok: false; problem: "corrupt"; actual: string }
  /** The bytes are right, but not the size that was announced for them. */
  | { ok: false; problem: "size"; size: number };

/**
 * Whether the blob under `digest` is there, `size` bytes long, and hashes to its digest: what the
 * runner checks before recording an output that a pod uploaded with a presigned PUT, since not
 * every S3-compatible store checks a signed checksum (s3rver does not). The bytes are read back
 * and hashed as they stream (never held whole): a 10 GiB output costs a 10 GiB download, at the
 * link's speed or sha256's (about 1-2 GB/s a core), whichever is slower. A failing read is the
 * store's failure (BlobStoreError, thrown), not a verdict.
 */
export async function verifyBlob(
  store: BlobStore,
  digest: string,
  size: number,
): Promise<BlobCheck> {
  const info = await store.stat(digest);
  if (info === null) return { ok: false, problem: "missing" };
  try {
    const stream = await store.getStream(digest);
    // Reading to the end is what makes the store hash it (and drop it if wrong).
    for await (const _ of stream);
  } catch (e) {
    if (e instanceof BlobCorruptError) return { ok: false, problem: "corrupt", actual: e.actual };
    if (e instanceof BlobMissingError) return { ok: false, problem: "missing" };
    throw e;
  }
  if (info.size !== size) return { ok: false, problem: "size", size: info.size };
  return { ok: true, size };
}

/** No blob under this digest (never stored, removed, or found corrupt and dropped). */
export class BlobMissingError extends Error {
  override readonly name: string = "BlobMissingError";
  constructor(
    readonly digest: string,
    readonly location: string,
    detail = "",
  ) {
    super(`artifact ${digest} is not in the store ${location}${detail ? ` (${detail})` : ""}`);
  }
}

/** Bytes that do not hash to their digest: the blob was removed from the store. */
export class BlobCorruptError extends BlobMissingError {
  override readonly name = "BlobCorruptError";
  constructor(
    digest: string,
    location: string,
    /** What the bytes hashed to. */
    readonly actual: string,
  ) {
    super(digest, location, `its bytes hash to ${actual}: it was corrupt and has been removed`);
  }
}

/** An upload whose bytes are not what it said they were. */
export class BlobMismatchError extends Error {
  override readonly name = "BlobMismatchError";
}

/** The store failed (disk full, permission, a refused upload): a system failure, retried. */
export class BlobStoreError extends Error {
  override readonly name = "BlobStoreError";
}

export function hexOf(digest: string): string {
  if (!/^sha256:[0-9a-f]{64}$/.test(digest))
    throw new TypeError(`not an artifact digest: ${JSON.stringify(digest)}`);
  return digest.slice("sha256:".length);
}
