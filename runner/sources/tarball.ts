/**
 * Code at a SHA from a tar stream checked against the commit's tree (docs/design.md section 7): the
 * extraction half of the one materialise step (materialise.ts), used by the GitHub tarball
 * checkout (gzipped, under GitHub's wrapping directory) and by the `git archive` checkout of
 * local repositories (git-archive.ts: plain tar, no wrapping directory).
 *
 * The tree says exactly what to expect: every member of the archive (below the wrapping
 * directory, if any) must be one of its files, links or directories, of the kind and size it
 * says, and every file's content (hashed while it streams: `sha1("blob <size>\0" + content)`)
 * and link target must hash to its blob id; a missing, extra or different member fails the
 * checkout. So nothing is written but the tree's own paths, parsed by node-tar (pax, GNU long
 * names, base-256 sizes), each file opened O_EXCL|O_NOFOLLOW with the tree's mode and the runner
 * as owner (the archive's owners, times and modes are not kept); FIFOs, devices and hard links
 * are refused. Links are made last, after their targets are checked to stay inside
 * (core/version/links.ts, kernel-style): nothing is written through one.
 *
 * Bounded: a tree over `maxBytes` (REPRISE_CHECKOUT_MAX_BYTES) of files or over `maxEntries` is
 * refused before anything is read; the decompressed stream may not exceed what the tree accounts
 * for (a gzip bomb is cut off there), nor `maxBytes`.
 *
 * Failures: a checkout refused for what the commit is (its size, a tarball larger than its tree,
 * an escaping link) is a user failure (`CheckoutRefused`, reason `checkout`: retrying cannot
 * help); an archive that does not match its tree otherwise (a corrupted or cut download) is a
 * plain Error: a system failure, retried.
 */
import { closeSync, constants, createWriteStream, mkdirSync, openSync, writeSync } from "node:fs";
import { mkdir, symlink } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { PassThrough, Readable, Transform } from "node:stream";
import { createGunzip } from "node:zlib";
import { Parser, type ReadEntry } from "tar";
import { gitObjectHasher } from "../../core/version/git-objects.js";
import { linkEscapes } from "../../core/version/links.js";
import { type Checkout, CheckoutRefused, COMMIT_SHA, materialise } from "./materialise.js";

/** A file, link or submodule of a commit's tree, as GitHub's tree listing gives it. */
export interface TreeFile {
  path: string;
  /** Git file mode: "100644", "100755", "120000" (symlink), "160000" (submodule). */
  mode: string;
  /** The blob's id (40 hex for SHA-1 repositories, 64 for SHA-256). */
  sha: string;
  /** The blob's size in bytes, when the listing says. */
  size?: number;
}

export interface TarballLimits {
  /** REPRISE_CHECKOUT_MAX_BYTES: the most file bytes one checkout may hold. */
  maxBytes: number;
  /** Files, links and submodules one checkout may hold. */
  maxEntries?: number;
}

export interface TarballLimits {
  /** REPRISE_CHECKOUT_MAX_BYTES: the most file bytes one checkout may hold. */
  maxBytes: number;
  /** Files, links and submodules one checkout may hold. */
  maxEntries?: number;
}

export const DEFAULT_CHECKOUT_MAX_BYTES = 4 * 1024 ** 3;
/** GitHub lists at most 100,000 entries in one recursive tree read; far above that is not code. */
export const DEFAULT_MAX_ENTRIES = 1_000_000;
export const DEFAULT_LIMITS: TarballLimits = { maxBytes: DEFAULT_CHECKOUT_MAX_BYTES };

/** Files up to this size are written in one call (writeFile). */
const SMALL_FILE_BYTES = 256 * 1024;
/** Extraction is stopped after this. */
const EXTRACT_TIMEOUT_MS = 10 * 60_000;
/** Headers, pax records and padding a member may add to its bytes, besides its path. */
const MEMBER_OVERHEAD = 4 * 512;
/** The end-of-archive blocks and the blocking factor's padding, with room to spare. */
const ARCHIVE_OVERHEAD = 1024 * 1024;

/** Where a commit's code and its tree come from. */
export interface TarballSource {
  /** Every file, link and submodule of the commit's tree. */
  tree(repo: string, sha: string): Promise<readonly TreeFile[]>;
  /** The gzipped tarball of the commit, as GitHub serves it (one top-level directory). */
  tarball(repo: string, sha: string): Promise<AsyncIterable<Uint8Array> | Iterable<Uint8Array>>;
}

/** How the archive is packed: gzipped or not, its members under one wrapping directory or not. */
export interface ArchiveFormat {
  gzip: boolean;
  wrapped: boolean;
}

/** A commit's code from `source` into `<cacheRoot>/<sha>`, once per SHA. */
export function tarballCheckout(
  cacheRoot: string,
  source: TarballSource,
  limits: TarballLimits = DEFAULT_LIMITS,
): Checkout {
  const root = resolve(cacheRoot);
  return (repo, sha) => {
    if (!COMMIT_SHA.test(sha))
      return Promise.reject(new Error(`"${sha}" is not a full lowercase commit SHA`));
    return materialise(join(root, sha), async () => {
      const what = `${sha} of ${repo}`;
      // Refused by the tree's sizes before the download starts.
      const expected = expectTree(await source.tree(repo, sha), what, limits);
      return async (staging) =>
        extractTar(await source.tarball(repo, sha), staging, expected, what, limits, {
          gzip: true,
          wrapped: true,
        });
    });
  };
}

/** `file://` repositories through `local`, every other one through `other`. */
export function routeCheckout(local: Checkout, other: Checkout): Checkout {
  return (repo, sha) => (repo.startsWith("file://") ? local(repo, sha) : other(repo, sha));
}

export interface Expected {
  /** Files and links by path; submodules are directories (the tarball has no content for them). */
  entries: Map<string, TreeFile>;
  directories: Set<string>;
  /** What the decompressed tarball may add up to. */
  maxStreamBytes: number;
  /** The most file bytes, when the tree does not give every size. */
  maxFileBytes: number;
}

/** What the tree says the archive holds, refused up front when it is over the limits. */
export function expectTree(
  tree: readonly TreeFile[],
  what: string,
  limits: TarballLimits,
): Expected {
  const maxEntries = limits.maxEntries ?? DEFAULT_MAX_ENTRIES;
  if (tree.length > maxEntries)
    throw new CheckoutRefused(
      `cannot check out ${what}: its tree has ${tree.length} entries, over the local executor's limit of ${maxEntries}`,
    );
  const entries = new Map<string, TreeFile>();
  const directories = new Set<string>([""]);
  let fileBytes = 0;
  let pathBytes = 0;
  let sized = true;
  for (const e of tree) {
    if (
      e.path === "" ||
      e.path.startsWith("/") ||
      e.path.split("/").some((p) => p === ".." || p === "." || p === "")
    )
      throw new Error(
        `cannot check out ${what}: its tree lists the path ${JSON.stringify(e.path)}`,
      );
    for (let i = e.path.indexOf("/"); i > 0; i = e.path.indexOf("/", i + 1))
      directories.add(e.path.slice(0, i));
    pathBytes += Buffer.byteLength(e.path);
    if (e.mode === "160000") {
      directories.add(e.path);
      continue;
    }
    entries.set(e.path, e);
    if (typeof e.size === "number") fileBytes += e.size;
    else sized = false;
  }
  for (const path of entries.keys())
    if (directories.has(path))
      throw new Error(
        `cannot check out ${what}: its tree lists ${JSON.stringify(path)} as a file and as a directory`,
      );
  if (fileBytes > limits.maxBytes)
    throw new CheckoutRefused(
      `cannot check out ${what}: its files add up to ${fileBytes} bytes, over REPRISE_CHECKOUT_MAX_BYTES (${limits.maxBytes}); raise it, or make the repository smaller`,
    );
  const maxFileBytes = sized ? fileBytes : limits.maxBytes;
  return {
    entries,
    directories,
    maxFileBytes,
    maxStreamBytes:
      maxFileBytes +
      2 * pathBytes +
      (entries.size + directories.size) * MEMBER_OVERHEAD +
      ARCHIVE_OVERHEAD,
  };
}

/**
 * Extracts `archive` into the empty directory `dest`, checked against `expected` (above);
 * resolves with the bytes of files written.
 */
export async function extractTar(
  archive: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  dest: string,
  expected: Expected,
  what: string,
  limits: TarballLimits,
  format: ArchiveFormat,
): Promise<number> {
  const where = `cannot extract ${what}`;
  const seen = new Set<string>();
  const links = new Map<string, string>();
  const writes: Promise<void>[] = [];
  const open = new Set<{ destroy(): void }>();
  const made = new Set<string>([dest]);
  let top: string | null = null;
  let fileBytes = 0;
  let failure: Error | null = null;

  const input = Readable.from(archive, { objectMode: false });
  const gunzip = format.gzip ? createGunzip() : new PassThrough();
  let streamed = 0;
  const counter = new Transform({
    transform(chunk: Buffer, _enc, done) {
      streamed += chunk.length;
      if (streamed > expected.maxStreamBytes)
        done(
          new CheckoutRefused(
            `${where}: the archive unpacks to more than ${expected.maxStreamBytes} bytes, more than its tree accounts for (${expected.maxFileBytes} bytes of files): refused (a gzip bomb, or not this commit's code)`,
          ),
        );
      else done(null, chunk);
    },
  });
  const parser = new Parser({ strict: true });

  return new Promise<number>((done, fail) => {
    let settled = false;
    const timer = setTimeout(
      () => stop(new Error(`${where}: extraction took over ${EXTRACT_TIMEOUT_MS / 1000}s`)),
      EXTRACT_TIMEOUT_MS,
    );
    const stop = (e: Error): void => {
      failure ??= e;
      for (const s of [input, gunzip, counter, ...open]) s.destroy();
      parser.abort(failure);
      finish();
    };
    const finish = (): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      // Every file stream closes (or fails) before the staging directory may be removed.
      void Promise.allSettled(writes).then(async (results) => {
        if (failure) return fail(failure);
        const bad = results.find((r) => r.status === "rejected");
        if (bad) return fail((bad as PromiseRejectedResult).reason);
        try {
          await complete(dest, expected, seen, links, what);
          done(fileBytes);
        } catch (e) {
          fail(e);
        }
      });
    };
    const onEntry = (entry: ReadEntry): void => {
      try {
        const path = entry.path.replace(/\/+$/, "");
        let rel = path;
        if (format.wrapped) {
          const slash = path.indexOf("/");
          const first = slash < 0 ? path : path.slice(0, slash);
          top ??= first;
          if (first !== top || first === "" || first === "." || first === "..")
            throw new Error(
              `${where}: ${JSON.stringify(entry.path)} is not under the tarball's top directory ${JSON.stringify(top)}`,
            );
          rel = slash < 0 ? "" : path.slice(slash + 1);
        }
        if (entry.type === "Directory") {
          if (!expected.directories.has(rel))
            throw new Error(
              `${where}: it has a directory ${JSON.stringify(rel)} that the commit's tree does not`,
            );
          entry.resume();
          return;
        }
        if (
          entry.type !== "File" &&
          entry.type !== "OldFile" &&
          entry.type !== "ContiguousFile" &&
          entry.type !== "SymbolicLink"
        )
          throw new Error(
            `${where}: it has ${JSON.stringify(rel)} (a ${entry.type}), which is not a file, directory or symlink; the local executor refuses to check it out`,
          );
        const want = expected.entries.get(rel);
        if (!want)
          throw new Error(
            `${where}: it has ${JSON.stringify(rel)}, which the commit's tree does not`,
          );
        if (seen.has(rel)) throw new Error(`${where}: it has ${JSON.stringify(rel)} twice`);
        seen.add(rel);
        const isLink = entry.type === "SymbolicLink";
        if (isLink !== (want.mode === "120000"))
          throw new Error(
            `${where}: ${JSON.stringify(rel)} is a ${isLink ? "symlink" : "file"} in the tarball, mode ${want.mode} in the commit's tree`,
          );
        if (isLink) {
          const target = entry.linkpath ?? "";
          const id = gitObjectHasher("blob", Buffer.byteLength(target), want.sha.length)
            .update(target)
            .digest("hex");
          if (id !== want.sha)
            throw new Error(
              `${where}: the symlink ${JSON.stringify(rel)} -> ${JSON.stringify(target)} does not hash to its blob ${want.sha}`,
            );
          links.set(rel, target);
          entry.resume();
          return;
        }
        const size = entry.size ?? 0;
        if (want.size !== undefined && size !== want.size)
          throw new Error(
            `${where}: ${JSON.stringify(rel)} is ${size} bytes in the tarball, ${want.size} in the commit's tree`,
          );
        fileBytes += size;
        if (fileBytes > limits.maxBytes)
          throw new CheckoutRefused(
            `${where}: its files add up to more than REPRISE_CHECKOUT_MAX_BYTES (${limits.maxBytes}); raise it, or make the repository smaller`,
          );
        const write = writeFile(entry, join(dest, rel), rel, want, size, where, open, made);
        // A file that fails (its bytes do not hash to its blob, the disk is full) stops the
        // extraction at once; handled here, its rejection is never an unhandled one.
        write.catch((e: Error) => stop(e));
        writes.push(write);
      } catch (e) {
        stop(e as Error);
      }
    };
    parser.on("entry", onEntry);
    parser.on("error", (e: Error) =>
      stop(e instanceof CheckoutRefused ? e : new Error(`${where}: ${e.message}`)),
    );
    parser.on("end", finish);
    for (const s of [input, gunzip, counter])
      s.on("error", (e: Error) =>
        stop(e instanceof CheckoutRefused ? e : new Error(`${where}: ${e.message}`)),
      );
    input
      .pipe(gunzip)
      .pipe(counter)
      .pipe(parser as unknown as NodeJS.WritableStream);
  });
}

/**
 * Streams one member to a new file (never through a link, never over anything), hashing it.
 * A small file is gathered and written with one synchronous call: for a checkout of many small
 * files, a write stream each (its setup, its hops through the thread pool) costs several times
 * what the bytes do.
 */
function writeFile(
  entry: ReadEntry,
  path: string,
  rel: string,
  want: TreeFile,
  size: number,
  where: string,
  open: Set<{ destroy(): void }>,
  made: Set<string>,
): Promise<void> {
  const parent = dirname(path);
  if (!made.has(parent)) {
    mkdirSync(parent, { recursive: true });
    made.add(parent);
  }
  const fd = openSync(
    path,
    constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
    want.mode === "100755" ? 0o755 : 0o644,
  );
  const hash = gitObjectHasher("blob", size, want.sha.length);
  const check = (): Error | null => {
    const id = hash.digest("hex");
    return id === want.sha
      ? null
      : new Error(
          `${where}: the content of ${JSON.stringify(rel)} hashes to ${id}, not its blob ${want.sha} in the commit's tree (a corrupted download?)`,
        );
  };
  if (size <= SMALL_FILE_BYTES) {
    return new Promise<void>((done, fail) => {
      const chunks: Buffer[] = [];
      let closed = false;
      const close = (): void => {
        if (closed) return;
        closed = true;
        open.delete(handle);
        closeSync(fd);
      };
      const handle = {
        destroy() {
          close();
          fail(new Error(`${where}: stopped while writing ${JSON.stringify(rel)}`));
        },
      };
      open.add(handle);
      entry.on("data", (chunk: Buffer) => {
        hash.update(chunk);
        chunks.push(chunk);
      });
      entry.once("end", () => {
        // Stopped meanwhile: the descriptor is closed, and its number may be another file's now.
        if (closed) return;
        try {
          const bytes = Buffer.concat(chunks);
          for (let at = 0; at < bytes.length; ) at += writeSync(fd, bytes, at);
        } catch (e) {
          close();
          return fail(e);
        }
        close();
        const bad = check();
        if (bad) fail(bad);
        else done();
      });
    });
  }
  const out = createWriteStream(path, { fd });
  open.add(out);
  entry.on("data", (chunk: Buffer) => hash.update(chunk));
  return new Promise<void>((done, fail) => {
    out.once("error", fail);
    out.once("close", () => {
      open.delete(out);
      const bad = check();
      if (bad) fail(bad);
      else done();
    });
    entry.pipe(out);
  });
}

/** After the last member: nothing missing, and the links made, each checked to stay inside. */
async function complete(
  dest: string,
  expected: Expected,
  seen: ReadonlySet<string>,
  links: ReadonlyMap<string, string>,
  what: string,
): Promise<void> {
  const missing = [...expected.entries.keys()].filter((p) => !seen.has(p));
  if (missing.length > 0)
    throw new Error(
      `cannot extract ${what}: the tarball lacks ${missing.length} of the commit's files (${missing
        .slice(0, 3)
        .map((p) => JSON.stringify(p))
        .join(", ")}${missing.length > 3 ? ", ..." : ""})`,
    );
  await refuseEscapingLinks(expected.entries, links, what);
  for (const [rel, target] of links) {
    await mkdir(dirname(join(dest, rel)), { recursive: true });
    await symlink(target, join(dest, rel));
  }
}

/** Links resolved as the kernel would, through the other links of the tree (core/version/links.ts). */
async function refuseEscapingLinks(
  entries: ReadonlyMap<string, TreeFile>,
  links: ReadonlyMap<string, string>,
  what: string,
): Promise<void> {
  const byPath = new Map<string, { kind: string; target?: string }>();
  for (const path of entries.keys()) byPath.set(path, { kind: "file" });
  for (const [path, target] of links) byPath.set(path, { kind: "symlink", target });
  for (const [path, target] of links) {
    const leaves = linkEscapes(path, byPath);
    if (leaves)
      throw new CheckoutRefused(
        `commit ${what} has a symlink ${path} -> ${target} that points outside the repository (${leaves}); the local executor refuses to check it out: make the link relative and inside the repository`,
      );
  }
}
