/**
 * Code at a SHA from a local git repository: the spec file and the tree listing, read with the
 * git CLI. The listing is what git already hashed (`ls-tree -r`), so no file is read or hashed.
 */
import { execFile } from "node:child_process";
import { copyFile, mkdtemp, rm, stat, utimes } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import type { TreeEntry } from "../../core/hash/sources.js";
import { parseTreeListing as parseListing } from "../../core/hash/tree-listing.js";
import { SPEC_FILE } from "../../core/spec/diagnostics.js";

const run = promisify(execFile);
/** A 10,000-file listing is about 1 MB; leave room for monorepos. */
const MAX_GIT_OUTPUT = 256 * 1024 * 1024;

export class GitError extends Error {
  override readonly name = "GitError";
}

async function git(cwd: string, args: string[], env?: NodeJS.ProcessEnv): Promise<Buffer> {
  try {
    const { stdout } = await run("git", args, {
      cwd,
      encoding: "buffer",
      maxBuffer: MAX_GIT_OUTPUT,
      env: env ? { ...process.env, ...env } : process.env,
    });
    return stdout;
  } catch (e) {
    const err = e as { stderr?: Buffer; code?: string | number };
    if (err.code === "ENOENT")
      throw new GitError("git is not installed or not on PATH", { cause: e });
    const stderr = err.stderr?.toString("utf8").trim() ?? "";
    throw new GitError(`git ${args[0]} failed in ${cwd}: ${stderr || String(e)}`, { cause: e });
  }
}

/** The top of the git repository containing `dir`. */
export async function repoRoot(dir: string): Promise<string> {
  try {
    return (await git(resolve(dir), ["rev-parse", "--show-toplevel"])).toString("utf8").trim();
  } catch (e) {
    throw new GitError(`${resolve(dir)} is not inside a git repository; pass --repo DIR`, {
      cause: e,
    });
  }
}

export async function resolveCommit(root: string, ref: string): Promise<string> {
  try {
    return (await git(root, ["rev-parse", "--verify", "--quiet", `${ref}^{commit}`]))
      .toString("utf8")
      .trim();
  } catch (e) {
    throw new GitError(`"${ref}" is not a commit of ${root}`, { cause: e });
  }
}

/** Parses `git ls-tree -r -z` / `git ls-files -s -z` style records into tree entries. */
export function parseTreeListing(out: Buffer, format: "ls-tree" | "ls-files"): TreeEntry[] {
  try {
    return parseListing(out.toString("utf8"), format);
  } catch (e) {
    throw new GitError((e as Error).message, { cause: e });
  }
}

export interface Snapshot {
  /** The commit, or null for the working tree. */
  sha: string | null;
  spec: Buffer | null;
  tree: TreeEntry[];
}

export async function snapshotAt(root: string, ref: string): Promise<Snapshot> {
  const sha = await resolveCommit(root, ref);
  const tree = parseTreeListing(
    await git(root, ["ls-tree", "-r", "-z", "--full-tree", sha]),
    "ls-tree",
  );
  const hasSpec = tree.some((e) => e.path === SPEC_FILE);
  const spec = hasSpec ? await git(root, ["cat-file", "blob", `${sha}:${SPEC_FILE}`]) : null;
  return { sha, spec, tree };
}

/**
 * The working tree as `git add -A && git commit` would record it (ignored files excluded),
 * computed in a copy of the index so the user's index and files are left untouched. (Like
 * `git stash create`, this writes blobs for changed files into the object database.)
 */
export async function snapshotWorktree(root: string): Promise<Snapshot> {
  const dir = await mkdtemp(join(tmpdir(), "reprise-index-"));
  try {
    const index = join(dir, "index");
    const realIndex = resolve(
      root,
      (await git(root, ["rev-parse", "--git-path", "index"])).toString("utf8").trim(),
    );
    // Starting from the real index lets git skip rehashing files whose stat is unchanged. The
    // copy keeps the index's mtime: git trusts a file's stat only when the file is older than the
    // index ("racy git"), and a fresh mtime on the copy would make a file edited in the same
    // second as the last `git add` look unchanged (same size, same second).
    try {
      await copyFile(realIndex, index);
      const { atime, mtime } = await stat(realIndex);
      await utimes(index, atime, mtime);
    } catch {
      // No index yet (a repository without commits), or its times cannot be kept: git builds
      // the index from the files, hashing every one.
      await rm(index, { force: true });
    }
    const env = { GIT_INDEX_FILE: index };
    await git(root, ["add", "-A", "--", "."], env);
    const tree = parseTreeListing(await git(root, ["ls-files", "-s", "-z"], env), "ls-files");
    const entry = tree.find((e) => e.path === SPEC_FILE);
    const spec = entry ? await git(root, ["cat-file", "blob", entry.sha]) : null;
    return { sha: null, spec, tree };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export interface CommitInfo {
  sha: string;
  parents: string[];
  subject: string;
  /** The branch name when `ref` names a branch (or HEAD on a branch), else null. */
  branch: string | null;
}

export async function commitInfo(root: string, ref: string): Promise<CommitInfo> {
  const sha = await resolveCommit(root, ref);
  const line = (await git(root, ["rev-list", "--parents", "-n", "1", sha])).toString("utf8").trim();
  const subject = (await git(root, ["log", "-1", "--format=%s", sha])).toString("utf8").trim();
  let branch: string | null = null;
  try {
    const name = (await git(root, ["rev-parse", "--abbrev-ref", ref])).toString("utf8").trim();
    branch = name === "HEAD" || name === "" ? null : name;
  } catch {
    branch = null;
  }
  return { sha, parents: line.split(" ").slice(1), subject, branch };
}

/** Who is running: git's user.name, for the trigger's actor. */
export async function gitUser(root: string): Promise<string | null> {
  try {
    const name = (await git(root, ["config", "user.name"])).toString("utf8").trim();
    return name || null;
  } catch {
    return null;
  }
}
