/**
 * The repository at a commit, as a directory the local executor runs tasks in (DESIGN.md
 * section 7): `git archive <sha> | tar -x` into `<cacheRoot>/<sha>`, once per SHA.
 *
 * A checkout is extracted into a staging directory next to its final place and renamed there
 * when complete, so neither a concurrent runner nor one that restarts after a crash can see half
 * of one; a loser of the race (EEXIST/ENOTEMPTY on rename) uses the winner's. Callers in one
 * process share one extraction per SHA. A SHA names its content, so two repositories that have the
 * same commit may share a cache directory.
 *
 * Not included, as with `git archive`: submodules, Git LFS content (the pointer files are), and
 * paths marked `export-ignore` in .gitattributes.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdir, mkdtemp, readdir, readlink, rename, rm, stat } from "node:fs/promises";
import { dirname, join, relative, resolve, sep } from "node:path";
import { type LinkTreeEntry, linkEscapes } from "../../../core/version/links.js";
import { AttemptError } from "../types.js";
import { errno } from "./errno.js";

/** Returns an absolute directory holding `repo` at `sha`; the caller must not write to it. */
export type Checkout = (repo: string, sha: string) => Promise<string>;

/**
 * A checkout refused for what the commit is (a symlink out of it, more than the local executor
 * checks out): a user failure, reason `checkout`, not retried. Any other checkout error is a
 * system failure (a download cut short, git failing), retried.
 */
export class CheckoutRefused extends AttemptError {
  constructor(message: string) {
    super({ kind: "user", reason: "checkout", message });
  }
}

const SHA = /^(?:[0-9a-f]{40}|[0-9a-f]{64})$/;
const STAGING = ".staging-";
const FILE_REPO = "file://";

/** Keyed by target directory, for every checkout function of this process. */
const inFlight = new Map<string, Promise<string>>();

export function gitArchiveCheckout(repoDir: string, cacheRoot: string): Checkout {
  const source = resolve(repoDir);
  const root = resolve(cacheRoot);
  return (repo, sha) => {
    if (!SHA.test(sha)) {
      return Promise.reject(
        new Error(`"${sha}" is not a full lowercase commit SHA; resolve it first`),
      );
    }
    const target = join(root, sha);
    let pending = inFlight.get(target);
    if (!pending) {
      pending = materialise(source, target, sha, repo).finally(() => inFlight.delete(target));
      inFlight.set(target, pending);
    }
    return pending;
  };
}

/** For repositories keyed `file://ABSOLUTE_PATH` (core/version/repo-key.ts): the embedded default. */
export function fileRepoCheckout(cacheRoot: string): Checkout {
  return (repo, sha) => {
    if (!repo.startsWith(FILE_REPO)) {
      return Promise.reject(
        new Error(
          `the default local checkout reads local repositories (file://...) only, not ${repo}: give LocalExecutor a checkout function that fetches it`,
        ),
      );
    }
    return gitArchiveCheckout(repo.slice(FILE_REPO.length), cacheRoot)(repo, sha);
  };
}

async function materialise(
  source: string,
  target: string,
  sha: string,
  repo: string,
): Promise<string> {
  if (await isDirectory(target)) return target;
  const root = dirname(target);
  await mkdir(root, { recursive: true });
  await removeAbandonedStaging(root);
  const staging = await mkdtemp(join(root, `${STAGING}${process.pid}-`));
  try {
    await archiveInto(source, sha, staging, repo);
    await refuseEscapingSymlinks(staging, sha);
    try {
      await rename(staging, target);
    } catch (e) {
      if (errno(e) !== "ENOTEMPTY" && errno(e) !== "EEXIST") throw e;
      // Another process finished the same checkout first; it has the same content.
    }
    return target;
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}

function archiveInto(source: string, sha: string, dest: string, repo: string): Promise<void> {
  const git = spawn("git", ["archive", "--format=tar", sha], {
    cwd: source,
    stdio: ["ignore", "pipe", "pipe"],
  });
  // GNU tar and bsdtar both refuse `..` members and strip a leading `/` unless told otherwise.
  const tar = spawn("tar", ["-x", "-f", "-", "-C", dest], { stdio: ["pipe", "ignore", "pipe"] });
  git.stdout?.pipe(tar.stdin as NodeJS.WritableStream);
  // If tar dies early, git's writes fail with EPIPE; tar's own status reports why.
  tar.stdin?.on("error", () => undefined);
  return Promise.all([finished(git), finished(tar)]).then(([gitRun, tarRun]) => {
    const where = `cannot check out ${sha} of ${repo} from ${source}`;
    if (gitRun.problem) throw new Error(`${where}: git archive ${gitRun.problem}`);
    if (tarRun.problem) throw new Error(`${where}: tar ${tarRun.problem}`);
  });
}

/** Resolves with what went wrong (null for exit 0), never rejects: both sides are always awaited. */
function finished(child: ChildProcess): Promise<{ problem: string | null }> {
  let stderr = "";
  child.stderr?.setEncoding("utf8").on("data", (chunk: string) => {
    if (stderr.length < 4096) stderr += chunk;
  });
  return new Promise((done) => {
    child.once("error", (e) => done({ problem: `could not run: ${e.message}` }));
    child.once("close", (code, signal) => {
      if (code === 0) done({ problem: null });
      else done({ problem: `failed (${signal ?? `exit ${code}`}): ${stderr.trim()}` });
    });
  });
}

/**
 * A symlink out of the checkout would let a task's workdir, or a file it reads, be anywhere.
 * Links are resolved as the kernel would, through the other links (core/version/links.ts), so a
 * chain of links each lexically inside (`a -> .`, `b -> a/..`) is seen to lead out.
 */
async function refuseEscapingSymlinks(dir: string, sha: string): Promise<void> {
  const byPath = new Map<string, LinkTreeEntry>();
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (entry.isDirectory()) continue;
    const path = relative(dir, join(entry.parentPath, entry.name)).split(sep).join("/");
    byPath.set(
      path,
      entry.isSymbolicLink()
        ? { kind: "symlink", target: await readlink(join(dir, path)) }
        : { kind: "file" },
    );
  }
  for (const [path, entry] of byPath) {
    if (entry.kind !== "symlink") continue;
    const leaves = linkEscapes(path, byPath);
    if (leaves)
      throw new CheckoutRefused(
        `commit ${sha} has a symlink ${path} -> ${entry.target} that points outside the repository (${leaves}); the local executor refuses to check it out: make the link relative and inside the repository`,
      );
  }
}

/** Staging directories of processes that died mid-extraction; nothing else will ever read them. */
async function removeAbandonedStaging(root: string): Promise<void> {
  for (const name of await readdir(root)) {
    if (!name.startsWith(STAGING)) continue;
    const pid = Number(name.slice(STAGING.length).split("-")[0]);
    if (Number.isSafeInteger(pid) && pid > 0 && !processExists(pid)) {
      await rm(join(root, name), { recursive: true, force: true });
    }
  }
}

function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return errno(e) === "EPERM";
  }
}

async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch (e) {
    if (errno(e) === "ENOENT") return false;
    throw e;
  }
}
