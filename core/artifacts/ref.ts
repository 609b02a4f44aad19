/**
 * Artifact values (file and directory inputs and outputs): how one is written in every document
 * and how it is told apart from other JSON. The value names content, never a place: a file's
 * digest is the sha256 of its bytes, a directory's the sha256 of its manifest (manifest.ts).
 */
import type { JsonValue, ValueType } from "../spec/types.js";

export const ARTIFACT_TYPES = ["file", "directory"] as const;
export type ArtifactType = (typeof ARTIFACT_TYPES)[number];

/** `sha256:<64 hex>`, the only digest form an artifact has. */
export const ARTIFACT_DIGEST = /^sha256:[0-9a-f]{64}$/;

export interface ArtifactRef {
  artifact: string;
  type: ArtifactType;
  /** Bytes: the file's, or the sum of a directory's files. */
  size: number;
  /** Directories only: how many files (symlinks not counted). */
  files?: number;
}

export function isArtifactType(type: ValueType | string): type is ArtifactType {
  return type === "file" || type === "directory";
}

export function isArtifactDigest(s: unknown): s is string {
  return typeof s === "string" && ARTIFACT_DIGEST.test(s);
}

/** Why `v` is not an artifact value of `type`, or null when it is one. */
export function artifactProblem(type: ArtifactType, v: unknown): string | null {
  if (typeof v !== "object" || v === null || Array.isArray(v))
    return `expected a ${type} artifact ({ "artifact": "sha256:...", "type": "${type}", ... }), got ${typeof v === "string" ? JSON.stringify(v) : Array.isArray(v) ? "a list" : String(v)}`;
  const r = v as Record<string, unknown>;
  if (!isArtifactDigest(r.artifact)) return `"artifact" must be sha256:<64 lowercase hex>`;
  if (r.type !== type) return `expected a ${type} artifact, got a ${String(r.type)}`;
  if (typeof r.size !== "number" || !Number.isSafeInteger(r.size) || r.size < 0)
    return `"size" must be a whole number of bytes`;
  if (type === "directory") {
    if (typeof r.files !== "number" || !Number.isSafeInteger(r.files) || r.files < 0)
      return `"files" must be a whole number`;
  } else if ("files" in r) return `a file artifact has no "files"`;
  for (const k of Object.keys(r))
    if (!["artifact", "type", "size", "files"].includes(k)) return `unknown key "${k}"`;
  return null;
}

export function artifactRef(
  type: ArtifactType,
  digest: string,
  size: number,
  files?: number,
): ArtifactRef {
  return type === "directory"
    ? { artifact: digest, type, size, files: files ?? 0 }
    : { artifact: digest, type, size };
}

/** The artifact values among `values`, by name, as `types` (the declared types) say. */
export function artifactsOf(
  types: Readonly<Record<string, { type: ValueType }>>,
  values: Readonly<Record<string, JsonValue>> | null,
): Array<{ name: string; ref: ArtifactRef }> {
  const out: Array<{ name: string; ref: ArtifactRef }> = [];
  if (!values) return out;
  for (const [name, decl] of Object.entries(types)) {
    const v = values[name];
    if (isArtifactType(decl.type) && v !== undefined && artifactProblem(decl.type, v) === null)
      out.push({ name, ref: v as unknown as ArtifactRef });
  }
  return out;
}

/**
 * What the cache key sees of each input: an artifact by its digest alone, so the same bytes from
 * any execution, version or path give the same key; any other value as it is.
 */
export function keyInputs(
  types: Readonly<Record<string, { type: ValueType }>>,
  inputs: Readonly<Record<string, JsonValue>>,
): Record<string, JsonValue> {
  const out: Record<string, JsonValue> = { ...inputs };
  for (const { name, ref } of artifactsOf(types, inputs)) out[name] = { artifact: ref.artifact };
  return out;
}

/** 1.5 KiB, 3.2 MiB: sizes as people read them. */
export function formatBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${n} B` : `${v.toFixed(v < 10 ? 1 : 0)} ${units[u]}`;
}

/** `sha256:0123abcd4567` -> `0123abcd4567`: the prefix people compare. */
export function shortDigest(digest: string): string {
  return digest.replace(/^sha256:/, "").slice(0, 12);
}
