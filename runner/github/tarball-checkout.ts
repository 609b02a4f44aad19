/**
 * Code at a SHA for the local executor, for GitHub repositories (DESIGN.md section 7): the
 * repository tarball at the commit, extracted once per SHA into `<cacheRoot>/<sha>`.
 *
 * Extraction is safe by construction: GNU tar and bsdtar refuse `..` members and strip a leading
 * `/`, and GNU tar defers symlinks that are absolute or contain `..` to the end (nothing is
 * written through them). After extraction, before the directory is published by an atomic rename
 * (a concurrent or restarted runner never sees half a checkout), every symlink is resolved the
 * way the kernel would, through the other symlinks, and must stay inside the checkout; FIFOs,
 * sockets and devices are refused. The archive's owners and permission bits are not applied.
 */
import { spawn } from "node:child_process";
import {
  lstat,
  mkdir,
  mkdtemp,
  readdir,
  readlink,
  realpath,
  rename,
  rm,
  stat,
} from "node:fs/promises";
import { dirname, isAbsolute, join, relative, resolve, sep } from "node:path";
import type { Logger } from "pino";
import type { Config } from "../config.js";
import { type Checkout, fileRepoCheckout } from "../executors/local/checkout.js";
import { defaultLog } from "../log.js";
import { GitHubClient } from "./client.js";

/** The gzipped tarball of `repo` at `sha`, as GitHub serves it (one top-level directory). */
export type FetchTarball = (repo: string, sha: string) => Promise<Uint8Array>;

const SHA = /^(?:[0-9a-f]{40}|[0-9a-f]{64})$/;
/** Extraction is killed after this. */
const EXTRACT_TIMEOUT_MS = 10 * 60_000;

export function tarballCheckout(cacheRoot: string, fetchTarball: FetchTarball): Checkout {
  const root = resolve(cacheRoot);
  const inFlight = new Map<string, Promise<string>>();
  return (repo, sha) => {
    if (!SHA.test(sha))
      return Promise.reject(new Error(`"${sha}" is not a full lowercase commit SHA`));
    const target = join(root, sha);
    let pending = inFlight.get(target);
    if (!pending) {
      pending = materialise(target, () => fetchTarball(repo, sha), sha, repo).finally(() =>
        inFlight.delete(target),
      );
      inFlight.set(target, pending);
    }
    return pending;
  };
}

/** `file://` repositories through `fallback`, every other one through `other`. */
export function routeCheckout(local: Checkout, other: Checkout): Checkout {
  return (repo, sha) => (repo.startsWith("file://") ? local(repo, sha) : other(repo, sha));
}

async function materialise(
  target: string,
  fetch: () => Promise<Uint8Array>,
  sha: string,
  repo: string,
): Promise<string> {
  if (await isDirectory(target)) return target;
  await mkdir(dirname(target), { recursive: true });
  const staging = await mkdtemp(join(dirname(target), `.tarball-${process.pid}-`));
  try {
    const tarball = await fetch();
    await extract(tarball, staging, `${sha} of ${repo}`);
    await refuseUnsafeEntries(await realpath(staging), sha);
    try {
      await rename(staging, target);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== "ENOTEMPTY" && code !== "EEXIST") throw e;
    }
    return target;
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}

function extract(tarball: Uint8Array, dest: string, what: string): Promise<void> {
  // GitHub wraps the tree in one directory named OWNER-REPO-SHORTSHA.
  const tar = spawn(
    "tar",
    [
      "-xz",
      "-f",
      "-",
      "--strip-components=1",
      // As root, tar would otherwise apply the archive's owners and setuid bits.
      "--no-same-owner",
      "--no-same-permissions",
      "-C",
      dest,
    ],
    { stdio: ["pipe", "ignore", "pipe"] },
  );
  // A tarball that takes this long is not a repository's code: the runner must not wait for ever.
  const timer = setTimeout(() => tar.kill("SIGKILL"), EXTRACT_TIMEOUT_MS);
  let stderr = "";
  tar.stderr?.setEncoding("utf8").on("data", (c: string) => {
    if (stderr.length < 4096) stderr += c;
  });
  tar.stdin?.on("error", () => undefined);
  tar.stdin?.end(tarball);
  return new Promise((done, fail) => {
    tar.once("error", (e) => fail(new Error(`cannot extract ${what}: ${e.message}`)));
    tar.once("close", (code, signal) => {
      clearTimeout(timer);
      code === 0
        ? done()
        : fail(
            new Error(`cannot extract ${what}: tar ${signal ?? `exit ${code}`}: ${stderr.trim()}`),
          );
    });
  });
}

/**
 * Refuses a checkout with a symlink that leads outside `dir` (absolute, climbing out with `..`,
 * or through a chain of links each of which looks inside: `a -> .`, `b -> a/..` leads to the
 * parent) or with an entry that is not a file, directory or symlink (a FIFO would hang whoever
 * reads it, a device would expose the host). `dir` must be a real path.
 */
async function refuseUnsafeEntries(dir: string, sha: string): Promise<void> {
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    const path = join(entry.parentPath, entry.name);
    if (entry.isSymbolicLink()) {
      const to = await readlink(path);
      if ((await resolveInside(dir, entry.parentPath, to, { hops: 0 })) === null)
        throw new Error(
          `commit ${sha} has a symlink ${relative(dir, path)} -> ${to} that points outside the repository; the local executor refuses to check it out`,
        );
    } else if (!entry.isFile() && !entry.isDirectory())
      throw new Error(
        `commit ${sha} has ${relative(dir, path)}, which is not a file, directory or symlink; the local executor refuses to check it out`,
      );
  }
}

/** Symlinks followed in one resolution, at most (the kernel's ELOOP limit). */
const MAX_HOPS = 40;

/**
 * Where the symlink target `to`, found in the directory `from`, leads, as the kernel resolves it:
 * component by component, following symlinks; null as soon as it leaves `root` (or loops). A
 * component that does not exist ends the walk: the rest is resolved lexically, as whatever is
 * created there later would be.
 */
async function resolveInside(
  root: string,
  from: string,
  to: string,
  count: { hops: number },
): Promise<string | null> {
  if (isAbsolute(to)) return null;
  const parts = to.split("/");
  let at = from;
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i] as string;
    if (part === "" || part === ".") continue;
    if (part === "..") {
      if (at === root) return null;
      at = dirname(at);
      continue;
    }
    const next = join(at, part);
    let st: Awaited<ReturnType<typeof lstat>>;
    try {
      st = await lstat(next);
    } catch {
      const rest = resolve(at, ...parts.slice(i));
      return inside(root, rest) ? rest : null;
    }
    if (!st.isSymbolicLink()) {
      at = next;
      continue;
    }
    if (++count.hops > MAX_HOPS) return null;
    const target = await resolveInside(root, at, await readlink(next), count);
    if (target === null) return null;
    at = target;
  }
  return at;
}

function inside(root: string, path: string): boolean {
  return path === root || path.startsWith(root + sep);
}

async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch {
    return false;
  }
}

/**
 * What runner/cli/runtime.ts gives the local executor when the GitHub App is configured: local
 * repositories through `git archive` as before, GitHub ones through the App's tarball.
 */
export function appTarballCheckout(client: GitHubClient, cacheRoot: string): Checkout {
  return tarballCheckout(cacheRoot, async (repoKey, sha) => {
    const octokit = await client.forRepo(repoKey);
    const { data } = await octokit.rest.repos.downloadTarballArchive({
      ...client.name(repoKey),
      ref: sha,
    });
    return new Uint8Array(data as ArrayBuffer);
  });
}

/** The local executor's checkout when the GitHub App is configured; null otherwise. */
export function githubAppCheckout(config: Config, log?: Logger): Checkout | null {
  if (!config.githubApp) return null;
  const root = join(config.dataDir, "local", "checkouts");
  const client = new GitHubClient(config.githubApp, config.githubHost, log ?? defaultLog(config));
  return routeCheckout(fileRepoCheckout(root), appTarballCheckout(client, join(root, "github")));
}
