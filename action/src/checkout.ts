/**
 * The commit the job checked out, read with git: what the Action registers when the server has
 * no version of it (the GitHub App is optional). The listing is parsed by core, as the runner's
 * own git reader does.
 */
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import type { TreeEntry } from "../../core/hash/sources.js";
import { parseTreeListing } from "../../core/hash/tree-listing.js";
import { SPEC_FILE } from "../../core/spec/diagnostics.js";

const run = promisify(execFile);

async function git(cwd: string, ...args: string[]): Promise<string> {
  try {
    const { stdout } = await run("git", args, { cwd, maxBuffer: 256 * 1024 * 1024 });
    return stdout;
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new Error(`git ${args[0]} in ${cwd}: ${(err.stderr ?? err.message).trim()}`);
  }
}

export interface Commit {
  sha: string;
  parents: string[];
  subject: string;
  /** The spec at the commit, or null when it has none. */
  spec: string | null;
  tree: TreeEntry[];
}

/** The full SHA `ref` names in the checkout at `dir`. */
export async function resolveSha(dir: string, ref: string): Promise<string> {
  return (await git(dir, "rev-parse", "--verify", `${ref}^{commit}`)).trim();
}

export async function readCommit(dir: string, sha: string): Promise<Commit> {
  const [parents, subject, listing] = await Promise.all([
    git(dir, "rev-list", "--parents", "-n", "1", sha),
    git(dir, "log", "-1", "--format=%s", sha),
    git(dir, "ls-tree", "-r", "-z", "--full-tree", sha),
  ]);
  const tree = parseTreeListing(listing, "ls-tree");
  const spec = tree.some((e) => e.path === SPEC_FILE)
    ? await git(dir, "cat-file", "blob", `${sha}:${SPEC_FILE}`)
    : null;
  return { sha, parents: parents.trim().split(" ").slice(1), subject: subject.trim(), spec, tree };
}
