/**
 * A directory artifact's manifest: every entry under the directory (relative path, kind, and a
 * file's digest and size or a link's target), sorted by path. The directory's digest is the
 * sha256 of the manifest's canonical JSON (RFC 8785), so equal content gives an equal digest
 * whatever the timestamps, owners or order on disk. Directories themselves are not entries (as
 * in git): an empty subdirectory is not kept.
 *
 * Links are kept as links when they resolve inside the directory, resolved as the kernel would
 * (core/version/links.ts: each component in turn, links within links included), so `a -> .`
 * plus `b -> a/..` is seen to escape although `a/..` looks harmless lexically.
 */
import { createHash } from "node:crypto";
import { canonicalJson } from "../hash/digest.js";
import { linkEscapes } from "../version/links.js";
import { isArtifactDigest } from "./ref.js";

export type ManifestEntry =
  | { path: string; kind: "file" | "executable"; digest: string; size: number }
  | { path: string; kind: "symlink"; target: string };

export interface Manifest {
  entries: ManifestEntry[];
}

/** Far above real directories; a bound on what a hostile manifest can make a runner hold. */
export const MAX_MANIFEST_ENTRIES = 1_000_000;
const MAX_PATH_BYTES = 4_096;

/** Byte order of the UTF-8 paths: the same on every machine, whatever its locale. */
export function comparePaths(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, "utf8"), Buffer.from(b, "utf8"));
}

/** Why a relative path may not name an entry, or null when it may. */
export function entryPathProblem(path: string): string | null {
  if (path === "") return "an empty path";
  if (Buffer.byteLength(path) > MAX_PATH_BYTES) return `a path over ${MAX_PATH_BYTES} bytes`;
  if (path.includes("\0")) return "a path with a NUL byte";
  if (path.startsWith("/")) return `an absolute path (${JSON.stringify(path)})`;
  for (const part of path.split("/")) {
    if (part === "") return `an empty path segment in ${JSON.stringify(path)}`;
    if (part === "." || part === "..") return `a "${part}" segment in ${JSON.stringify(path)}`;
  }
  if (hasLoneSurrogate(path)) return `a path that is not valid Unicode (${JSON.stringify(path)})`;
  return null;
}

/** JSON can carry a lone UTF-16 surrogate; UTF-8 (a path, canonical JSON) cannot. */
function hasLoneSurrogate(s: string): boolean {
  return /[\ud800-\udfff]/.test(s.replace(/[\ud800-\udbff][\udc00-\udfff]/g, ""));
}

export type ManifestCheck = { ok: true; manifest: Manifest } | { ok: false; reason: string };

/**
 * Checks entries (from a walk of a directory, or a manifest someone sent) and returns them as a
 * manifest in canonical order: paths valid and unique, no entry under a file or a link, digests
 * well formed, links that stay inside.
 */
export function buildManifest(entries: readonly ManifestEntry[]): ManifestCheck {
  if (entries.length > MAX_MANIFEST_ENTRIES)
    return { ok: false, reason: `over ${MAX_MANIFEST_ENTRIES} entries` };
  const byPath = new Map<string, ManifestEntry>();
  for (const e of entries) {
    const problem = entryPathProblem(e.path);
    if (problem) return { ok: false, reason: `entry with ${problem}` };
    if (byPath.has(e.path))
      return { ok: false, reason: `two entries for ${JSON.stringify(e.path)}` };
    if (e.kind === "symlink") {
      if (
        typeof e.target !== "string" ||
        e.target === "" ||
        e.target.includes("\0") ||
        hasLoneSurrogate(e.target)
      )
        return { ok: false, reason: `link ${JSON.stringify(e.path)} has no valid target` };
    } else if (e.kind === "file" || e.kind === "executable") {
      if (!isArtifactDigest(e.digest))
        return { ok: false, reason: `file ${JSON.stringify(e.path)} has no sha256 digest` };
      if (!Number.isSafeInteger(e.size) || e.size < 0)
        return { ok: false, reason: `file ${JSON.stringify(e.path)} has no valid size` };
    } else {
      return {
        ok: false,
        reason: `entry ${JSON.stringify((e as ManifestEntry).path)} has an unknown kind`,
      };
    }
    byPath.set(e.path, e);
  }
  // Nothing may live under a file or a link: materialising it would write through the link.
  for (const path of byPath.keys()) {
    let slash = path.lastIndexOf("/");
    while (slash > 0) {
      const parent = path.slice(0, slash);
      const above = byPath.get(parent);
      if (above)
        return {
          ok: false,
          reason: `${JSON.stringify(path)} lies under the ${above.kind} ${JSON.stringify(parent)}`,
        };
      slash = parent.lastIndexOf("/");
    }
  }
  for (const e of byPath.values()) {
    if (e.kind !== "symlink") continue;
    const escaping = linkEscapes(e.path, byPath);
    if (escaping) return { ok: false, reason: escaping };
  }
  const sorted = [...byPath.values()].sort((a, b) => comparePaths(a.path, b.path));
  return {
    ok: true,
    manifest: {
      entries: sorted.map((e) =>
        e.kind === "symlink"
          ? { path: e.path, kind: e.kind, target: e.target }
          : { path: e.path, kind: e.kind, digest: e.digest, size: e.size },
      ),
    },
  };
}

export function manifestBytes(m: Manifest): Buffer {
  return Buffer.from(canonicalJson(m), "utf8");
}

export function manifestDigest(m: Manifest): string {
  return `sha256:${createHash("sha256").update(manifestBytes(m)).digest("hex")}`;
}

/** A directory's size (its files' bytes) and file count, as its artifact value reports them. */
export function manifestTotals(m: Manifest): { size: number; files: number } {
  let size = 0;
  let files = 0;
  for (const e of m.entries)
    if (e.kind !== "symlink") {
      size += e.size;
      files++;
    }
  return { size, files };
}

/** A manifest read back from its blob: parsed and checked like one built from a walk. */
export function parseManifest(bytes: Uint8Array): ManifestCheck {
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (e) {
    return { ok: false, reason: `not a manifest: ${(e as Error).message}` };
  }
  if (typeof value !== "object" || value === null || !Array.isArray((value as Manifest).entries))
    return { ok: false, reason: 'not a manifest: expected { "entries": [...] }' };
  const raw = (value as { entries: unknown[] }).entries;
  const entries: ManifestEntry[] = [];
  for (const e of raw) {
    if (typeof e !== "object" || e === null || typeof (e as { path?: unknown }).path !== "string")
      return { ok: false, reason: "not a manifest: an entry without a path" };
    entries.push(e as ManifestEntry);
  }
  return buildManifest(entries);
}
