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
  constructor(digest: string, location: string, actual: string) {
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
