/**
 * The local filesystem adapter of the artifact store: the embedded default, under
 * `$REPRISE_DATA_DIR/artifacts` (or REPRISE_ARTIFACTS=file:///path, a shared NFS mount say).
 *
 *   blobs/sha256/<2 hex>/<64 hex>   each blob's bytes, uncompressed, read-only (0444)
 *   tmp/                            writes in progress; renamed into blobs/ once hashed
 *
 * A write hashes the bytes as it copies them (one read pass), or, for a file the caller gives
 * up (a finished task's output), links it aside and hashes it there: no copy at all. Either way
 * the blob appears under its name by one rename, so a crash leaves only files in tmp/.
 * Materialising links (same filesystem) or copies, after one read pass that checks the digest.
 */
import { createHash, randomBytes } from "node:crypto";
import {
  closeSync,
  constants,
  createReadStream,
  fstatSync,
  linkSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeSync,
} from "node:fs";
import {
  chmod,
  copyFile,
  link,
  mkdir,
  open,
  readdir,
  readFile,
  rename,
  rm,
  stat,
  unlink,
  utimes,
} from "node:fs/promises";
import { dirname, join } from "node:path";
import { type Readable, Transform } from "node:stream";
import { pathToFileURL } from "node:url";
import {
  BlobCorruptError,
  type BlobInfo,
  BlobMismatchError,
  BlobMissingError,
  type BlobStore,
  BlobStoreError,
  hexOf,
  type PutOptions,
} from "./store.js";

const CHUNK = 1 << 20;
/** Files up to this size are stored in one synchronous read and write (#putSmall). */
const SMALL_FILE = 256 * 1024;

/** Links a written blob into place; over a (corrupt, wrong-sized) one only by rename. */
function publishSmall(tmp: string, final: string): void {
  try {
    linkSync(tmp, final);
  } catch (e) {
    if (code(e) === "EEXIST") {
      renameSync(tmp, final);
      return;
    }
    if (code(e) !== "ENOENT") throw e;
    mkdirSync(dirname(final), { recursive: true });
    linkSync(tmp, final);
  }
}

/** Writes a small blob aside, read-only, all of it (a short write on a full disk is an error). */
function writeSmall(path: string, bytes: Buffer): void {
  const fd = openSync(path, "wx", 0o444);
  try {
    let written = 0;
    while (written < bytes.length) written += writeSync(fd, bytes, written);
  } catch (e) {
    closeSync(fd);
    rmSync(path, { force: true });
    throw e;
  }
  closeSync(fd);
}

export class LocalBlobStore implements BlobStore {
  readonly location: string;
  readonly #blobs: string;
  readonly #tmp: string;
  /** Whether reflinks work here; learnt on first try. */
  #reflink: boolean | null = null;

  constructor(readonly root: string) {
    this.location = pathToFileURL(root).href;
    this.#blobs = join(root, "blobs", "sha256");
    this.#tmp = join(root, "tmp");
  }

  path(digest: string): string {
    const hex = hexOf(digest);
    return join(this.#blobs, hex.slice(0, 2), hex);
  }

  async has(digest: string): Promise<boolean> {
    return (await this.stat(digest)) !== null;
  }

  async stat(digest: string): Promise<BlobInfo | null> {
    const blob = this.path(digest);
    try {
      const s = await stat(blob);
      return { digest, size: s.size, modified: s.mtime };
    } catch (e) {
      if (code(e) === "ENOENT") return null;
      throw this.#failed("look up", digest, e);
    }
  }

  async putFile(path: string, options: PutOptions = {}): Promise<{ digest: string; size: number }> {
    const small = this.#putSmall(path);
    if (small) return small;
    const tmp = await this.#tmpPath();
    try {
      if (options.owned && (await linked(path, tmp))) {
        const { digest, size } = await hashFile(tmp);
        return await this.#publish(tmp, digest, size);
      }
      if (await this.#tryReflink(path, tmp)) {
        const { digest, size } = await hashFile(tmp);
        return await this.#publish(tmp, digest, size);
      }
      const { digest, size } = await copyHashing(path, tmp);
      return await this.#publish(tmp, digest, size);
    } catch (e) {
      await rm(tmp, { force: true });
      if (e instanceof BlobStoreError) throw e;
      if (code(e) === "ENOENT" || code(e) === "EISDIR") throw e;
      throw this.#failed("store", path, e);
    }
  }

  /**
   * A small file (most of a directory's, typically) in a handful of synchronous calls: read,
   * hash, and only when the blob is not there yet, write aside and rename. Each call takes
   * microseconds on a local disk; through the thread pool each would cost more than the work
   * (the same reasoning as the local executor's attempt files). Null for a large file.
   */
  #putSmall(path: string): { digest: string; size: number } | null {
    let bytes: Buffer;
    try {
      const fd = openSync(path, "r");
      try {
        if (fstatSync(fd).size > SMALL_FILE) return null;
        bytes = readFileSync(fd);
      } finally {
        closeSync(fd);
      }
    } catch (e) {
      if (code(e) === "ENOENT" || code(e) === "EISDIR") throw e;
      throw this.#failed("store", path, e);
    }
    const digest = `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
    const final = this.path(digest);
    try {
      if (statSync(final, { throwIfNoEntry: false })?.size === bytes.length)
        return { digest, size: bytes.length };
      const tmp = join(this.#tmp, `${process.pid}-${randomBytes(8).toString("hex")}`);
      try {
        writeSmall(tmp, bytes);
      } catch (e) {
        if (code(e) !== "ENOENT") throw e;
        mkdirSync(this.#tmp, { recursive: true });
        writeSmall(tmp, bytes);
      }
      // link + unlink publishes as atomically as rename, and on ext4 costs a tenth of a rename
      // into another directory (measured: 30 us against 250 us), the bulk of a small file's time.
      try {
        publishSmall(tmp, final);
      } finally {
        rmSync(tmp, { force: true });
      }
    } catch (e) {
      throw this.#failed("store", path, e);
    }
    return { digest, size: bytes.length };
  }

  async putBytes(bytes: Uint8Array): Promise<{ digest: string; size: number }> {
    const digest = `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
    return this.putStream([bytes], digest);
  }

  async putStream(
    stream: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
    expected: string,
    maxBytes = Number.POSITIVE_INFINITY,
  ): Promise<{ digest: string; size: number }> {
    hexOf(expected);
    const tmp = await this.#tmpPath();
    const hash = createHash("sha256");
    let size = 0;
    try {
      const out = await open(tmp, "wx", 0o600);
      try {
        for await (const chunk of stream) {
          size += chunk.byteLength;
          if (size > maxBytes)
            throw new BlobMismatchError(
              `more than the ${maxBytes} bytes announced for ${expected}`,
            );
          hash.update(chunk);
          // A write may be short (a disk filling up) without failing; the rest must follow.
          let written = 0;
          while (written < chunk.byteLength) {
            const r = await out.write(chunk, written, chunk.byteLength - written);
            written += r.bytesWritten;
          }
        }
      } finally {
        await out.close();
      }
      const digest = `sha256:${hash.digest("hex")}`;
      if (digest !== expected)
        throw new BlobMismatchError(`the bytes sent hash to ${digest}, not ${expected}`);
      return await this.#publish(tmp, digest, size);
    } catch (e) {
      await rm(tmp, { force: true });
      if (e instanceof BlobMismatchError || e instanceof BlobStoreError) throw e;
      throw this.#failed("store", expected, e);
    }
  }

  async getFile(digest: string, dest: string, mode: number): Promise<void> {
    const blob = this.path(digest);
    await this.#verify(digest, blob);
    // A read-only file can share the blob's inode (0444); anything else gets its own copy.
    if (mode === 0o444) {
      try {
        await link(blob, dest);
        return;
      } catch (e) {
        if (!["EXDEV", "EPERM", "EMLINK", "ENOTSUP"].includes(code(e) ?? "")) throw e;
      }
    }
    if (!(await this.#tryReflink(blob, dest))) await copyFile(blob, dest, constants.COPYFILE_EXCL);
    await chmod(dest, mode);
  }

  async getStream(digest: string): Promise<Readable> {
    const blob = this.path(digest);
    try {
      await stat(blob);
    } catch (e) {
      if (code(e) === "ENOENT") throw new BlobMissingError(digest, this.location);
      throw e;
    }
    const hash = createHash("sha256");
    const drop = () => unlink(blob).catch(() => undefined);
    const location = this.location;
    const verify = new Transform({
      transform(chunk: Buffer, _enc, done) {
        hash.update(chunk);
        done(null, chunk);
      },
      flush(done) {
        const actual = `sha256:${hash.digest("hex")}`;
        if (actual === digest) return done();
        // Gone before the reader hears of it: whoever asks next must find it missing.
        void drop().then(() => done(new BlobCorruptError(digest, location, actual)));
      },
    });
    const source = createReadStream(blob, { highWaterMark: CHUNK });
    source.on("error", (e) => verify.destroy(e));
    // A reader that stops early (a download cut off, a preview's first lines) destroys the
    // verifying stream: close the file with it, or each one leaks a descriptor.
    verify.on("close", () => source.destroy());
    return source.pipe(verify);
  }

  async getBytes(digest: string, maxBytes: number): Promise<Buffer> {
    const blob = this.path(digest);
    let bytes: Buffer;
    try {
      const s = await stat(blob);
      if (s.size > maxBytes)
        throw new BlobStoreError(
          `artifact ${digest} is ${s.size} bytes, over the ${maxBytes} expected`,
        );
      bytes = await readFile(blob);
    } catch (e) {
      if (code(e) === "ENOENT") throw new BlobMissingError(digest, this.location);
      throw e;
    }
    const actual = `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
    if (actual !== digest) {
      await unlink(blob).catch(() => undefined);
      throw new BlobCorruptError(digest, this.location, actual);
    }
    return bytes;
  }

  async delete(digest: string): Promise<void> {
    await rm(this.path(digest), { force: true });
  }

  async *list(): AsyncIterable<BlobInfo> {
    let shards: string[];
    try {
      shards = await readdir(this.#blobs);
    } catch (e) {
      if (code(e) === "ENOENT") return;
      throw e;
    }
    for (const shard of shards.sort()) {
      let names: string[];
      try {
        names = await readdir(join(this.#blobs, shard));
      } catch (e) {
        if (code(e) === "ENOENT") continue;
        throw e;
      }
      for (const hex of names.sort()) {
        if (!/^[0-9a-f]{64}$/.test(hex)) continue;
        const s = await stat(join(this.#blobs, shard, hex)).catch(() => null);
        if (s) yield { digest: `sha256:${hex}`, size: s.size, modified: s.mtime };
      }
    }
  }

  /** Reads the blob once; a mismatch removes it (it would only mislead) and says so. */
  async #verify(digest: string, blob: string): Promise<void> {
    let actual: string;
    try {
      actual = (await hashFile(blob)).digest;
    } catch (e) {
      if (code(e) === "ENOENT") throw new BlobMissingError(digest, this.location);
      throw e;
    }
    if (actual !== digest) {
      await unlink(blob).catch(() => undefined);
      throw new BlobCorruptError(digest, this.location, actual);
    }
  }

  /**
   * Renames a hashed file into place, over the blob if it is there already: the bytes just
   * hashed are known good, the old ones only presumed so (a blob corrupted on disk is healed by
   * storing it again), and the rename makes the blob recent for gc's grace period.
   */
  async #publish(
    tmp: string,
    digest: string,
    size: number,
  ): Promise<{ digest: string; size: number }> {
    const final = this.path(digest);
    await chmod(tmp, 0o444);
    // A linked output keeps the task's write time; the blob's time is when it was stored, which
    // gc's grace period counts from (a task that wrote it hours before exiting must not lose it).
    const now = new Date();
    await utimes(tmp, now, now);
    try {
      await rename(tmp, final);
    } catch (e) {
      if (code(e) !== "ENOENT") throw e;
      await mkdir(join(final, ".."), { recursive: true });
      await rename(tmp, final);
    }
    // Renaming a link onto the blob it already is does nothing (POSIX): tmp would stay behind.
    await rm(tmp, { force: true });
    return { digest, size };
  }

  async #tmpPath(): Promise<string> {
    const name = join(this.#tmp, `${process.pid}-${randomBytes(8).toString("hex")}`);
    try {
      await mkdir(this.#tmp, { recursive: true });
    } catch (e) {
      throw this.#failed("prepare", this.root, await mkdirError(this.#tmp, e));
    }
    return name;
  }

  async #tryReflink(from: string, to: string): Promise<boolean> {
    if (this.#reflink === false) return false;
    try {
      await copyFile(from, to, constants.COPYFILE_FICLONE_FORCE | constants.COPYFILE_EXCL);
      this.#reflink = true;
      return true;
    } catch (e) {
      if (["ENOTSUP", "EOPNOTSUPP", "EXDEV", "EINVAL", "ENOSYS", "EBADF"].includes(code(e) ?? "")) {
        this.#reflink = false;
        await rm(to, { force: true });
        return false;
      }
      throw e;
    }
  }

  #failed(what: string, subject: string, e: unknown): BlobStoreError {
    const c = code(e);
    const why =
      c === "ENOSPC"
        ? "the disk is full: free space or point REPRISE_ARTIFACTS at a larger volume"
        : c === "EACCES" || c === "EPERM" || c === "EROFS"
          ? `${this.root} is not writable (${c}): fix its permissions or point REPRISE_ARTIFACTS elsewhere`
          : (e as Error).message;
    return new BlobStoreError(
      `could not ${what} ${subject} in the artifact store ${this.location}: ${why}`,
      {
        cause: e,
      },
    );
  }
}

function code(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException | null)?.code;
}

/**
 * Node's recursive mkdir reports ENOENT where the filesystem is read-only (it stats the path after
 * an error it does not expect); a plain mkdir below the deepest parent there is gives the reason.
 */
async function mkdirError(path: string, e: unknown): Promise<unknown> {
  if (code(e) !== "ENOENT") return e;
  for (let p = path, parent = dirname(p); parent !== p; p = parent, parent = dirname(p)) {
    const exists = await stat(parent).then(
      () => true,
      () => false,
    );
    if (exists)
      return mkdir(p).then(
        () => e,
        (real: unknown) => real,
      );
  }
  return e;
}

async function linked(from: string, to: string): Promise<boolean> {
  try {
    await link(from, to);
    return true;
  } catch (e) {
    if (["EXDEV", "EPERM", "EMLINK", "ENOTSUP", "EACCES"].includes(code(e) ?? "")) return false;
    throw e;
  }
}

/** One read pass: the sha256 and size of a file. */
export async function hashFile(path: string): Promise<{ digest: string; size: number }> {
  const fh = await open(path, "r");
  try {
    const hash = createHash("sha256");
    const buf = Buffer.allocUnsafe(CHUNK);
    let size = 0;
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, CHUNK, null);
      if (bytesRead === 0) break;
      hash.update(buf.subarray(0, bytesRead));
      size += bytesRead;
    }
    return { digest: `sha256:${hash.digest("hex")}`, size };
  } finally {
    await fh.close();
  }
}

/** Copies `from` to `to`, hashing the bytes on the way: one read pass, one write pass. */
async function copyHashing(from: string, to: string): Promise<{ digest: string; size: number }> {
  const src = await open(from, "r");
  try {
    const out = await open(to, "wx", 0o600);
    try {
      const hash = createHash("sha256");
      const buf = Buffer.allocUnsafe(CHUNK);
      let size = 0;
      for (;;) {
        const { bytesRead } = await src.read(buf, 0, CHUNK, null);
        if (bytesRead === 0) break;
        const chunk = buf.subarray(0, bytesRead);
        hash.update(chunk);
        let written = 0;
        while (written < bytesRead) {
          const r = await out.write(chunk, written, bytesRead - written);
          written += r.bytesWritten;
        }
        size += bytesRead;
      }
      return { digest: `sha256:${hash.digest("hex")}`, size };
    } finally {
      await out.close();
    }
  } finally {
    await src.close();
  }
}
