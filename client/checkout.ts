/**
 * A commit of a git checkout, read with git: what the Action and the CLI (through
 * REPRISE_SERVER) register when the server has no version of it (the GitHub App is optional).
 * The listing is parsed by core, as the runner's own git reader does. Node-only (git runs as a
 * child process); client.ts is plain fetch.
 */
import { execFile, spawn } from "node:child_process";
import { promisify } from "node:util";
import type { TreeEntry } from "../core/hash/sources.js";
import { parseTreeListing } from "../core/hash/tree-listing.js";
import { SPEC_FILE } from "../core/spec/diagnostics.js";
import { githubRepoKey } from "../core/version/repo-key.js";

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

/**
 * The raw objects a server recomputes the commit's id from (core/version/git-objects.ts): the
 * commit object and every tree it reaches, base64, read with `git cat-file --batch`.
 */
export async function readObjects(
  dir: string,
  sha: string,
): Promise<{ commit: string; trees: string[] }> {
  const listing = await git(dir, "ls-tree", "-r", "-t", "-z", "--full-tree", sha);
  const treeIds = new Set([(await git(dir, "rev-parse", `${sha}^{tree}`)).trim()]);
  for (const record of listing.split("\0")) {
    const [, type, id] = record.slice(0, record.indexOf("\t")).split(" ");
    if (type === "tree" && id) treeIds.add(id);
  }
  const ids = [sha, ...treeIds];
  const out = await catFileBatch(dir, ids);
  return {
    commit: (out[0] as Buffer).toString("base64"),
    trees: out.slice(1).map((b) => b.toString("base64")),
  };
}

/** The bytes of each object, in order (`git cat-file --batch`: "<id> <type> <size>\n<bytes>\n"). */
function catFileBatch(dir: string, ids: string[]): Promise<Buffer[]> {
  return new Promise((resolve, reject) => {
    const child = spawn("git", ["cat-file", "--batch"], {
      cwd: dir,
      stdio: ["pipe", "pipe", "pipe"],
    });
    const chunks: Buffer[] = [];
    let stderr = "";
    child.stdout.on("data", (b: Buffer) => chunks.push(b));
    child.stderr.on("data", (b: Buffer) => {
      stderr += b.toString();
    });
    child.on("error", reject);
    child.on("close", (code) => {
      if (code !== 0) return reject(new Error(`git cat-file --batch in ${dir}: ${stderr.trim()}`));
      const all = Buffer.concat(chunks);
      const objects: Buffer[] = [];
      let i = 0;
      for (const id of ids) {
        const nl = all.indexOf(0x0a, i);
        const header = all.toString("utf8", i, nl);
        const m = /^([0-9a-f]+) (\w+) (\d+)$/.exec(header);
        if (!m) return reject(new Error(`git cat-file --batch in ${dir}: ${id}: ${header}`));
        const size = Number(m[3]);
        objects.push(all.subarray(nl + 1, nl + 1 + size));
        i = nl + 1 + size + 1;
      }
      resolve(objects);
    });
    child.stdin.end(`${ids.join("\n")}\n`);
  });
}

/** The branch `ref` names (or HEAD is on), else null: what a registered version records as its ref. */
export async function branchOf(dir: string, ref: string): Promise<string | null> {
  try {
    const name = (await git(dir, "rev-parse", "--abbrev-ref", ref)).trim();
    if (name === "HEAD" || name === "") return null;
    // A branch, not a tag or a SHA.
    await git(dir, "show-ref", "--verify", "--quiet", `refs/heads/${name}`);
    return name;
  } catch {
    return null;
  }
}

/**
 * The GitHub repository the checkout's `origin` remote names, as a repository key
 * (HOST/OWNER/NAME, core/version/repo-key.ts), when it is on `githubHost`; null otherwise (no
 * origin, or another host).
 */
export async function originRepoKey(dir: string, githubHost: string): Promise<string | null> {
  let url: string;
  try {
    url = (await git(dir, "remote", "get-url", "origin")).trim();
  } catch {
    return null;
  }
  return githubKeyOfRemote(url, githubHost);
}

/** `https://HOST/OWNER/NAME(.git)`, `ssh://git@HOST[:PORT]/OWNER/NAME(.git)`, `git@HOST:OWNER/NAME(.git)`. */
export function githubKeyOfRemote(url: string, githubHost: string): string | null {
  const m =
    /^(?:https?|ssh|git):\/\/(?:[^@/]+@)?([^/]+)\/([^/]+)\/([^/]+?)(?:\.git)?\/?$/.exec(url) ??
    /^(?:[^@/]+@)?([^:/]+):([^/]+)\/([^/]+?)(?:\.git)?\/?$/.exec(url);
  if (!m) return null;
  const [, host, owner, name] = m as unknown as [string, string, string, string];
  const want = githubHost.toLowerCase();
  const got = host.toLowerCase();
  // ssh remotes carry no web port: GHE_HOST's port is compared only when the remote has one.
  if (got !== want && got !== want.replace(/:\d+$/, "")) return null;
  try {
    return githubRepoKey(`${owner}/${name}`, githubHost);
  } catch {
    return null;
  }
}

/** The spec at `sha`, or null when the commit has none. */
export async function specAt(dir: string, sha: string): Promise<string | null> {
  try {
    return await git(dir, "cat-file", "blob", `${sha}:${SPEC_FILE}`);
  } catch {
    return null;
  }
}
