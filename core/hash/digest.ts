/** `sha256:<hex>` of RFC 8785 canonical JSON (docs/design.md section 4). */
import { createHash } from "node:crypto";
import canonicalize from "canonicalize";

export type Digest = `sha256:${string}`;

export function canonicalJson(value: unknown): string {
  const text = canonicalize(value);
  if (text === undefined) throw new TypeError("cannot canonicalize a value that is not JSON");
  return text;
}

export function digest(value: unknown): Digest {
  return `sha256:${createHash("sha256").update(canonicalJson(value), "utf8").digest("hex")}`;
}

export function isDigest(s: string): s is Digest {
  return /^sha256:[0-9a-f]{64}$/.test(s);
}
