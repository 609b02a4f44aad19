/**
 * Storing a file or directory from disk as an artifact, and materialising one back onto disk:
 * the two halves of the task contract for artifacts (DESIGN: task I/O), shared by every
 * executor, the CLI's uploads and `reprise artifacts get`.
 *
 * Nothing is followed that could lead outside: the output itself must be what was declared (a
 * link, a FIFO or a device where a file was declared is refused without being opened), a
 * directory is walked without following links, and its links are kept only when they resolve
 * inside it (core/artifacts/manifest.ts).
 */
import { lstatSync, readdirSync, readlinkSync } from "node:fs";
import { lstat, mkdir, symlink } from "node:fs/promises";
import { dirname, join } from "node:path";
import {
  buildManifest,
  type ManifestEntry,
  manifestBytes,
  manifestDigest,
  manifestTotals,
  parseManifest,
} from "../../core/artifacts/manifest.js";
import { type ArtifactRef, type ArtifactType, artifactRef } from "../../core/artifacts/ref.js";
import type { BlobStore } from "./store.js";

/** How many files of a directory are stored or materialised at once. */
const PARALLEL_FILES = 32;
/** A manifest of a million entries is about 150 MB; nothing real comes near. */
export const MAX_MANIFEST_BYTES = 256 * 1024 * 1024;

/** What the task (or user) got wrong: the output is not what was declared. */
export class ArtifactShapeError extends Error {
  override readonly name = "ArtifactShapeError";
}

export interface StoreOptions {
  /** The files are given up (a finished task's outputs): the store may link them. */
  owned?: boolean;
}

/**
 * Where storeArtifact puts what it hashed: a BlobStore (blobSink), or a server's artifact API
 * (the CLI through REPRISE_SERVER).
 */
export interface ArtifactSink {
  /** Stores one file's bytes; returns their digest and size. */
  putFile(path: string): Promise<{ digest: string; size: number }>;
  /** Stores a directory's manifest, once every file it lists is stored. */
  putManifest(bytes: Buffer, digest: string): Promise<void>;
}

export function blobSink(store: BlobStore, options: StoreOptions = {}): ArtifactSink {
  return {
    putFile: (path) => store.putFile(path, options),
    async putManifest(bytes, digest) {
      // The manifest's digest is its bytes' digest: a directory is a blob like any other.
      if ((await store.putBytes(bytes)).digest !== digest)
        throw new Error("manifest digest drifted");
    },
  };
}

/**
 * Stores `path` as an artifact of `type` (null: whatever it is) and returns its value. Throws
 * ArtifactShapeError for what the caller must fix, the store's errors for the rest.
 */
export function storeArtifact(
  store: BlobStore,
  path: string,
  type: ArtifactType | null,
  label: string,
  options: StoreOptions = {},
): Promise<ArtifactRef> {
  return storeArtifactIn(blobSink(store, options), path, type, label);
}

export async function storeArtifactIn(
  sink: ArtifactSink,
  path: string,
  type: ArtifactType | null,
  label: string,
): Promise<ArtifactRef> {
  const found = await kindAt(path);
  if (found === null) throw new ArtifactShapeError(`${label}: nothing was written at ${path}`);
  const want = type ?? (found === "directory" ? "directory" : "file");
  if (found !== want)
    throw new ArtifactShapeError(
      `${label}: declared a ${want}, found ${found === "missing" ? "nothing" : `a ${found}`} at ${path}`,
    );
  if (want === "file") {
    const { digest, size } = await sink.putFile(path);
    return artifactRef("file", digest, size);
  }
  const entries = await walk(path, label);
  const files = entries.filter(
    (e): e is Extract<ManifestEntry, { kind: "file" | "executable" }> => e.kind !== "symlink",
  );
  await inParallel(files, PARALLEL_FILES, async (e) => {
    const stored = await sink.putFile(join(path, e.path));
    e.digest = stored.digest;
    e.size = stored.size;
  });
  const checked = buildManifest(entries);
  if (!checked.ok) throw new ArtifactShapeError(`${label}: ${checked.reason}`);
  const digest = manifestDigest(checked.manifest);
  await sink.putManifest(manifestBytes(checked.manifest), digest);
  const totals = manifestTotals(checked.manifest);
  return artifactRef("directory", digest, totals.size, totals.files);
}

/**
 * Writes the artifact at `dest` (which must not exist): a file read-only, a directory as its
 * tree with read-only files, executables executable and its links as links. Every byte is
 * checked against its digest first; a missing or corrupt blob throws BlobMissingError.
 */
export async function materialise(
  store: BlobStore,
  ref: ArtifactRef,
  dest: string,
  options: { writable?: boolean } = {},
): Promise<void> {
  // Read-only files may share the store's inode; a copy for a person to edit must not.
  const fileMode = options.writable ? 0o644 : 0o444;
  const execMode = options.writable ? 0o755 : 0o555;
  if (ref.type === "file") {
    await store.getFile(ref.artifact, dest, fileMode);
    return;
  }
  const manifest = await readManifest(store, ref.artifact);
  await mkdir(dest, { recursive: false });
  const dirs = new Set<string>();
  for (const e of manifest.entries) {
    const parent = dirname(e.path);
    if (parent !== ".") dirs.add(parent);
  }
  for (const d of [...dirs].sort()) await mkdir(join(dest, d), { recursive: true });
  await inParallel(manifest.entries, PARALLEL_FILES, async (e) => {
    const at = join(dest, e.path);
    if (e.kind === "symlink") await symlink(e.target, at);
    else await store.getFile(e.digest, at, e.kind === "executable" ? execMode : fileMode);
  });
}

export async function readManifest(store: BlobStore, digest: string) {
  const parsed = parseManifest(await store.getBytes(digest, MAX_MANIFEST_BYTES));
  if (!parsed.ok)
    throw new ArtifactShapeError(`artifact ${digest} is not a directory: ${parsed.reason}`);
  return parsed.manifest;
}

type Found = "file" | "directory" | "symlink" | "FIFO" | "socket" | "device" | "missing";

async function kindAt(path: string): Promise<Found | null> {
  try {
    return kindOf(await lstat(path));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw e;
  }
}

function kindOf(s: Awaited<ReturnType<typeof lstat>>): Found {
  if (s.isFile()) return "file";
  if (s.isDirectory()) return "directory";
  if (s.isSymbolicLink()) return "symlink";
  if (s.isFIFO()) return "FIFO";
  if (s.isSocket()) return "socket";
  return "device";
}

/**
 * Every entry under `root`, without following links; digests filled in later. Synchronous calls
 * (microseconds each on a local disk, where the thread pool would cost more than the call), with
 * a turn of the event loop between directories so a huge tree never holds it for long.
 */
async function walk(root: string, label: string): Promise<ManifestEntry[]> {
  const out: ManifestEntry[] = [];
  const pending: string[] = [""];
  while (pending.length > 0) {
    const rel = pending.pop() as string;
    await new Promise<void>((resolve) => setImmediate(resolve));
    const dirents = readdirSync(join(root, rel), { withFileTypes: true });
    for (const d of dirents) {
      const path = rel === "" ? d.name : `${rel}/${d.name}`;
      if (d.isDirectory()) pending.push(path);
      else if (d.isSymbolicLink())
        out.push({ path, kind: "symlink", target: readlinkSync(join(root, path)) });
      else if (d.isFile()) {
        const s = lstatSync(join(root, path));
        out.push({ path, kind: s.mode & 0o111 ? "executable" : "file", digest: "", size: 0 });
      } else {
        const what = d.isFIFO() ? "a FIFO" : d.isSocket() ? "a socket" : "a device";
        throw new ArtifactShapeError(
          `${label}: ${JSON.stringify(path)} is ${what}, which an artifact cannot hold`,
        );
      }
    }
  }
  return out;
}

/** Runs `fn` over `items`, at most `n` at once; the first failure rejects (the rest finish). */
export async function inParallel<T>(
  items: readonly T[],
  n: number,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  let failure: unknown = null;
  const worker = async () => {
    while (failure === null && next < items.length) {
      const item = items[next++] as T;
      try {
        await fn(item);
      } catch (e) {
        failure ??= e;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, worker));
  if (failure !== null) throw failure;
}
