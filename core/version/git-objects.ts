/**
 * Git's own object ids, recomputed (docs/design.md section 4): what lets the server check a posted
 * registration against the commit it names instead of trusting it. An object's id is the SHA-1
 * of `<type> <length>\0<bytes>`; a commit names its root tree, a tree names its entries
 * (`<mode> <name>\0<20-byte id>`). Pure: bytes in, facts or a refusal out.
 */
import { createHash, type Hash } from "node:crypto";
import type { TreeEntry } from "../hash/sources.js";
import { SPEC_FILE } from "../spec/diagnostics.js";

export type GitObjectType = "blob" | "tree" | "commit";

/** The id git gives `bytes` as an object of `type`. */
export function gitObjectId(type: GitObjectType, bytes: Uint8Array): string {
  return gitObjectHasher(type, bytes.length).update(bytes).digest("hex");
}

/**
 * A hash of a git object of `size` bytes, its header already in, for content that arrives in
 * pieces (a blob streamed out of a tarball). `idLength` 64 is a SHA-256 repository's id.
 */
export function gitObjectHasher(type: GitObjectType, size: number, idLength = 40): Hash {
  return createHash(idLength === 64 ? "sha256" : "sha1").update(`${type} ${size}\0`, "latin1");
}

export interface VerifiedCommit {
  sha: string;
  parents: string[];
  /** The subject: the message's first paragraph on one line, as `git log --format=%s`. */
  subject: string;
  /** Files and submodules, as `git ls-tree -r --full-tree` lists them. */
  tree: TreeEntry[];
}

export interface PostedObjects {
  sha: string;
  commit: Uint8Array;
  trees: readonly Uint8Array[];
  spec: Uint8Array;
}

export interface ObjectLimits {
  maxEntries: number;
  maxDepth: number;
}

/** A posted object that does not hash to what the commit names, or is missing or malformed. */
export class GitObjectError extends Error {
  override readonly name = "GitObjectError";
}

/**
 * The commit `sha`, its tree listing and its spec, checked against their ids: the commit's bytes
 * must hash to `sha`, every tree it reaches must be among `trees`, and `spec` must hash to the
 * root tree's reprise.yaml entry. Throws a GitObjectError naming what did not match.
 */
export function verifyCommit(
  posted: PostedObjects,
  limits: ObjectLimits = { maxEntries: 100_000, maxDepth: 64 },
): VerifiedCommit {
  const got = gitObjectId("commit", posted.commit);
  if (got !== posted.sha)
    throw new GitObjectError(
      `the commit object hashes to ${got}, not ${posted.sha}: send the raw bytes of \`git cat-file commit ${posted.sha}\``,
    );
  const commit = parseCommit(posted.commit);
  const trees = new Map<string, Uint8Array>();
  for (const t of posted.trees) trees.set(gitObjectId("tree", t), t);
  const out: TreeEntry[] = [];
  let specId: string | null = null;
  const walk = (id: string, prefix: string, depth: number): void => {
    const bytes = trees.get(id);
    if (!bytes)
      throw new GitObjectError(
        `tree ${id} (${prefix === "" ? "the root tree" : `${prefix.slice(0, -1)}/`}) was not sent, or its bytes do not hash to it`,
      );
    if (depth > limits.maxDepth)
      throw new GitObjectError(`${prefix} is nested deeper than ${limits.maxDepth} directories`);
    for (const e of parseTree(bytes, id)) {
      if (e.mode === "40000") {
        walk(e.id, `${prefix}${e.name}/`, depth + 1);
        continue;
      }
      if (prefix === "" && e.name === SPEC_FILE && e.mode !== "160000") specId = e.id;
      out.push({ path: prefix + e.name, mode: e.mode, sha: e.id });
      if (out.length > limits.maxEntries)
        throw new GitObjectError(`the tree has more than ${limits.maxEntries} entries`);
    }
  };
  walk(commit.tree, "", 0);
  if (specId === null) throw new GitObjectError(`${posted.sha} has no ${SPEC_FILE} at its root`);
  const specGot = gitObjectId("blob", posted.spec);
  if (specGot !== specId)
    throw new GitObjectError(
      `the posted ${SPEC_FILE} hashes to ${specGot}, but the commit's ${SPEC_FILE} is ${specId}: send \`git cat-file blob ${posted.sha}:${SPEC_FILE}\``,
    );
  return { sha: posted.sha, parents: commit.parents, subject: commit.subject, tree: out };
}

/** A commit's root tree, parents and subject. */
export function parseCommit(bytes: Uint8Array): {
  tree: string;
  parents: string[];
  subject: string;
} {
  const text = Buffer.from(bytes).toString("utf8");
  const end = text.indexOf("\n\n");
  const headers = (end < 0 ? text : text.slice(0, end)).split("\n");
  const message = end < 0 ? "" : text.slice(end + 2);
  let tree: string | null = null;
  const parents: string[] = [];
  for (const h of headers) {
    const m = /^(tree|parent) ([0-9a-f]{40})$/.exec(h);
    if (m?.[1] === "tree" && tree === null) tree = m[2] as string;
    else if (m?.[1] === "parent") parents.push(m[2] as string);
  }
  if (tree === null) throw new GitObjectError("the commit object has no tree line");
  const firstParagraph = message.split(/\n[ \t]*\n/)[0] ?? "";
  const subject = firstParagraph
    .split("\n")
    .map((l) => l.trim())
    .filter(Boolean)
    .join(" ");
  return { tree, parents, subject };
}

/** A tree object's entries: mode ("100644", "40000"...), name and object id. */
export function parseTree(
  bytes: Uint8Array,
  id: string,
): Array<{ mode: string; name: string; id: string }> {
  const out: Array<{ mode: string; name: string; id: string }> = [];
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let i = 0;
  while (i < buf.length) {
    const space = buf.indexOf(0x20, i);
    const nul = space < 0 ? -1 : buf.indexOf(0, space);
    if (space < 0 || nul < 0 || nul + 21 > buf.length)
      throw new GitObjectError(`tree ${id} is malformed at byte ${i}`);
    const mode = buf.toString("latin1", i, space);
    const name = buf.toString("utf8", space + 1, nul);
    if (!/^[0-7]{5,6}$/.test(mode) || name === "" || name.includes("/"))
      throw new GitObjectError(`tree ${id} has a malformed entry at byte ${i}`);
    out.push({ mode, name, id: buf.toString("hex", nul + 1, nul + 21) });
    i = nul + 21;
  }
  return out;
}
