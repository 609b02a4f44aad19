/**
 * An artifact's bytes as HTTP serves them (the API's content route, the UI's downloads and the
 * execution page's previews): a file streamed as it is stored, a directory as a tar stream built
 * from its blobs, entry by entry, with no copy on disk. Nothing uploaded ever runs in this
 * origin: every answer is an attachment, or an image shown inline, and all of them carry a
 * sandboxing Content-Security-Policy and `nosniff`, so an uploaded HTML or SVG page can neither
 * run script nor be read as another type.
 */
import { createHash } from "node:crypto";
import type { Readable } from "node:stream";
import * as tar from "tar";
import type { Manifest } from "../../core/artifacts/manifest.js";
import { shortDigest } from "../../core/artifacts/ref.js";
import type { ArtifactRecord } from "../../db/types.js";
import { inParallel, readManifest } from "../artifacts/ingest.js";
import { BlobMissingError, type BlobStore } from "../artifacts/store.js";
import { ApiError } from "./errors.js";

/** Sent with every artifact's bytes: no script, no plugin, no subresource, a unique origin. */
export const ARTIFACT_CSP = "default-src 'none'; sandbox";
/** Enough of a file to tell a PNG, a JPEG or an SVG (whose `<svg` may follow a prolog). */
const SNIFF_BYTES = 4 * 1024;
/** How much of a file the execution page reads for a text preview, and how many lines it shows. */
export const PREVIEW_BYTES = 16 * 1024;
export const PREVIEW_LINES = 20;
/** How many blobs of a directory are checked for presence at once before its tar starts. */
const PARALLEL_CHECKS = 32;
const TAR_BLOCK = 512;
/** Every entry of a tar has the same times, owner and group: equal directories, equal bytes. */
const EPOCH = new Date(0);

export type ImageType = "image/png" | "image/jpeg" | "image/svg+xml";

/** The image a file's first bytes say it is (PNG and JPEG by magic bytes, SVG by `<svg`). */
export function imageType(head: Uint8Array): ImageType | null {
  const b = Buffer.from(head.buffer, head.byteOffset, head.byteLength);
  if (b.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])))
    return "image/png";
  if (b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return "image/jpeg";
  let s = b
    .subarray(0, SNIFF_BYTES)
    .toString("utf8")
    .replace(/^\uFEFF/, "");
  // Skip what may come before the root element: an XML declaration, comments, a doctype.
  for (let i = 0; i < 32; i++) {
    s = s.trimStart();
    const close = s.startsWith("<?")
      ? "?>"
      : s.startsWith("<!--")
        ? "-->"
        : /^<!doctype/i.test(s)
          ? ">"
          : null;
    if (close === null) break;
    const end = s.indexOf(close, 2);
    if (end < 0) return null;
    s = s.slice(end + close.length);
  }
  return /^<svg[\s>/]/.test(s) ? "image/svg+xml" : null;
}

/**
 * The first lines of `head` when it is UTF-8 text (no NUL byte; a character cut by the end of a
 * partial read is dropped), or null when it is not text.
 */
export function textLines(
  head: Uint8Array,
  complete: boolean,
  maxLines = PREVIEW_LINES,
): { lines: string[]; more: boolean } | null {
  if (head.includes(0)) return null;
  let bytes = head;
  if (!complete) {
    // Drop a trailing partial UTF-8 sequence (at most 3 bytes of a 4-byte character).
    let cut = bytes.length;
    for (let i = 1; i <= 3 && i <= bytes.length; i++) {
      const byte = bytes[bytes.length - i] as number;
      if ((byte & 0xc0) === 0x80) continue;
      if (byte >= 0xc0) {
        const need = byte >= 0xf0 ? 4 : byte >= 0xe0 ? 3 : 2;
        if (need > i) cut = bytes.length - i;
      }
      break;
    }
    bytes = bytes.subarray(0, cut);
  }
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    return null;
  }
  const all = text.split(/\r?\n/);
  // A final newline ends the last line; it does not start another.
  if (complete && all.at(-1) === "") all.pop();
  return { lines: all.slice(0, maxLines), more: all.length > maxLines || !complete };
}

/** The artifact's bytes are not in the store: say so, and how to get them back. */
export function goneError(digest: string, what = "its bytes"): ApiError {
  return new ApiError(
    404,
    "artifact_gone",
    `artifact ${digest} is known here but ${what} are gone from the artifact store (removed, or found corrupt): relaunching the execution that produced it recomputes them, or upload it again`,
  );
}

export interface ContentOptions {
  /** Show an image in the page (`?inline=1`): PNG, JPEG and SVG only; anything else downloads. */
  inline: boolean;
  /** The download's file name (a directory's gets `.tar`); default the digest's prefix. */
  name: string | null;
  /** A HEAD request: headers only, nothing read. */
  headOnly: boolean;
  /** A stream that fails after its headers were sent (a blob found corrupt while read). */
  onStreamError: (e: Error) => void;
}

/** The answer to a download of `record`'s bytes; 404 (`artifact_gone`) when they are gone. */
export async function contentResponse(
  store: BlobStore,
  record: ArtifactRecord,
  opts: ContentOptions,
): Promise<Response> {
  const headers: Record<string, string> = {
    "content-security-policy": ARTIFACT_CSP,
    "x-content-type-options": "nosniff",
    // The digest names the content: what was served under it is what will be.
    "cache-control": "private, max-age=31536000, immutable",
    etag: `"${record.digest.slice("sha256:".length)}"`,
  };
  if (record.type === "directory") {
    const manifest = await manifestOf(store, record.digest);
    await assertPresent(store, manifest);
    headers["content-type"] = "application/x-tar";
    headers["content-disposition"] = disposition("attachment", fileName(record, opts.name));
    if (opts.headOnly) return new Response(null, { status: 200, headers });
    return new Response(webStream(tarStream(store, manifest), opts.onStreamError), {
      status: 200,
      headers,
    });
  }
  const info = await store.stat(record.digest);
  if (!info) throw goneError(record.digest);
  headers["content-length"] = String(info.size);
  headers["repr-digest"] =
    `sha-256=:${Buffer.from(record.digest.slice("sha256:".length), "hex").toString("base64")}:`;
  const name = fileName(record, opts.name);
  if (opts.headOnly) {
    headers["content-type"] = "application/octet-stream";
    headers["content-disposition"] = disposition("attachment", name);
    return new Response(null, { status: 200, headers });
  }
  const { head, rest } = await peek(store, record.digest, SNIFF_BYTES);
  const image = opts.inline ? imageType(Buffer.concat(head)) : null;
  headers["content-type"] = image ?? "application/octet-stream";
  headers["content-disposition"] = disposition(image ? "inline" : "attachment", name);
  return new Response(webStream(chain(head, rest), opts.onStreamError), { status: 200, headers });
}

export type Preview =
  | { kind: "text"; lines: string[]; more: boolean }
  | { kind: "image"; type: ImageType }
  | { kind: "binary" }
  | { kind: "gone" };

/** What the execution page shows of a file: its first lines, an image, or why neither. */
export async function previewOf(store: BlobStore, digest: string): Promise<Preview> {
  let stream: Readable;
  try {
    stream = await store.getStream(digest);
  } catch (e) {
    if (e instanceof BlobMissingError) return { kind: "gone" };
    throw e;
  }
  let head: Buffer[];
  let complete: boolean;
  try {
    ({ head, complete } = await readUpTo(stream, PREVIEW_BYTES));
  } catch (e) {
    if (e instanceof BlobMissingError) return { kind: "gone" };
    throw e;
  }
  const bytes = Buffer.concat(head).subarray(0, PREVIEW_BYTES);
  const image = imageType(bytes);
  if (image) return { kind: "image", type: image };
  const text = textLines(bytes, complete);
  return text ? { kind: "text", ...text } : { kind: "binary" };
}

async function open(store: BlobStore, digest: string): Promise<Readable> {
  try {
    return await store.getStream(digest);
  } catch (e) {
    if (e instanceof BlobMissingError) throw goneError(digest);
    throw e;
  }
}

async function manifestOf(store: BlobStore, digest: string): Promise<Manifest> {
  try {
    return await readManifest(store, digest);
  } catch (e) {
    if (e instanceof BlobMissingError) throw goneError(digest, "its manifest's bytes");
    throw e;
  }
}

/** Every file of the directory is in the store, or 404 naming the first that is not. */
async function assertPresent(store: BlobStore, manifest: Manifest): Promise<void> {
  const files = manifest.entries.filter((e) => e.kind !== "symlink");
  const missing = new Set<string>();
  await inParallel([...new Set(files.map((e) => e.digest))], PARALLEL_CHECKS, async (d) => {
    if (!(await store.has(d))) missing.add(d);
  });
  const first = files.find((e) => missing.has(e.digest));
  if (first) throw goneError(first.digest, `the bytes of its file ${JSON.stringify(first.path)}`);
}

/** The first chunks of a blob, at least `n` bytes of them (or all there is), and the rest. */
async function peek(
  store: BlobStore,
  digest: string,
  n: number,
): Promise<{ head: Buffer[]; rest: AsyncIterator<Buffer> }> {
  const rest = (await open(store, digest))[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  const head: Buffer[] = [];
  let size = 0;
  try {
    while (size < n) {
      const next = await rest.next();
      if (next.done) break;
      head.push(next.value);
      size += next.value.length;
    }
  } catch (e) {
    // A small blob is read whole here, so a corrupt one is found (and removed) here.
    if (e instanceof BlobMissingError) throw goneError(digest);
    throw e;
  }
  return { head, rest };
}

/** At most about `n` bytes of `stream`, which is then closed. */
async function readUpTo(
  stream: Readable,
  n: number,
): Promise<{ head: Buffer[]; complete: boolean }> {
  const it = stream[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  const head: Buffer[] = [];
  let size = 0;
  try {
    for (;;) {
      const next = await it.next();
      if (next.done) return { head, complete: true };
      head.push(next.value);
      size += next.value.length;
      if (size > n) return { head, complete: false };
    }
  } finally {
    await it.return?.();
    stream.destroy();
  }
}

async function* chain(head: Buffer[], rest: AsyncIterator<Buffer>): AsyncGenerator<Buffer> {
  try {
    yield* head;
    for (;;) {
      const next = await rest.next();
      if (next.done) return;
      yield next.value;
    }
  } finally {
    await rest.return?.();
  }
}

/**
 * A directory as a POSIX tar (ustar, with pax records for long or non-ASCII paths and big
 * sizes): each parent directory once before what it holds, files with their modes, links as
 * links. Blobs are read one after another as the client reads, so memory stays at a chunk.
 */
export async function* tarStream(store: BlobStore, manifest: Manifest): AsyncGenerator<Buffer> {
  const dirs = new Set<string>();
  for (const e of manifest.entries) {
    const parts = e.path.split("/");
    for (let i = 1; i < parts.length; i++) {
      const dir = parts.slice(0, i).join("/");
      if (dirs.has(dir)) continue;
      dirs.add(dir);
      yield tarHeader({ path: `${dir}/`, type: "Directory", mode: 0o755, size: 0 });
    }
    if (e.kind === "symlink") {
      yield tarHeader({ path: e.path, type: "SymbolicLink", linkpath: e.target, mode: 0o777 });
      continue;
    }
    yield tarHeader({
      path: e.path,
      type: "File",
      mode: e.kind === "executable" ? 0o755 : 0o644,
      size: e.size,
    });
    let sent = 0;
    const blob = await open(store, e.digest);
    try {
      for await (const chunk of blob as AsyncIterable<Buffer>) {
        sent += chunk.length;
        if (sent > e.size) break;
        yield chunk;
      }
    } finally {
      blob.destroy();
    }
    // The header announced the size: any other length would shift every entry after it.
    if (sent !== e.size)
      throw new Error(`${e.path} (${e.digest}) has ${sent} bytes, its manifest says ${e.size}`);
    const pad = (TAR_BLOCK - (e.size % TAR_BLOCK)) % TAR_BLOCK;
    if (pad > 0) yield Buffer.alloc(pad);
  }
  // The end of an archive: two empty blocks.
  yield Buffer.alloc(2 * TAR_BLOCK);
}

function tarHeader(h: {
  path: string;
  type: "File" | "Directory" | "SymbolicLink";
  mode: number;
  size?: number;
  linkpath?: string;
}): Buffer {
  const data = { ...h, size: h.size ?? 0, mtime: EPOCH, uid: 0, gid: 0, uname: "", gname: "" };
  const block = Buffer.alloc(TAR_BLOCK);
  if (!new tar.Header(data).encode(block)) return block;
  const pax = new tar.Pax({
    path: h.path,
    ...(h.linkpath !== undefined ? { linkpath: h.linkpath } : {}),
    size: data.size,
    mtime: EPOCH,
  });
  return Buffer.concat([pax.encode(), block]);
}

/** A web stream over `it` that reads only as the client does; a cancel closes the blobs. */
function webStream(
  it: AsyncIterator<Uint8Array>,
  onError: (e: Error) => void,
): ReadableStream<Uint8Array> {
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const next = await it.next();
        if (next.done) controller.close();
        else controller.enqueue(next.value);
      } catch (e) {
        onError(e as Error);
        controller.error(e);
      }
    },
    async cancel() {
      await it.return?.();
    },
  });
}

function fileName(record: ArtifactRecord, name: string | null): string {
  const base =
    name
      ?.replace(/[^A-Za-z0-9._-]+/g, "_")
      .replace(/^[.]+/, "")
      .slice(0, 100) || `sha256-${shortDigest(record.digest)}`;
  return record.type === "directory" && !base.endsWith(".tar") ? `${base}.tar` : base;
}

function disposition(kind: "inline" | "attachment", name: string): string {
  // `name` is [A-Za-z0-9._-] only: nothing to quote or encode.
  return `${kind}; filename="${name}"`;
}

/** The sha256 of `bytes`, as an artifact digest. */
export function digestOf(bytes: Uint8Array): string {
  return `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
}
