/**
 * Code at a SHA for the local executor, for GitHub repositories (DESIGN.md section 7): the
 * repository tarball at the commit, extracted once per SHA into `<cacheRoot>/<sha>`.
 *
 * Extraction is safe by construction: GNU tar and bsdtar refuse `..` members and strip a leading
 * `/`; symlinks that point outside the checkout are refused after extraction, before the
 * directory is published by an atomic rename (a concurrent or restarted runner never sees half
 * a checkout).
 */
import { spawn } from "node:child_process";
import { mkdir, mkdtemp, readdir, readlink, rename, rm, stat } from "node:fs/promises";
import { dirname, isAbsolute, join, relative, resolve, sep } from "node:path";
import type { Logger } from "pino";
import type { Config } from "../config.js";
import { type Checkout, fileRepoCheckout } from "../executors/local/checkout.js";
import { defaultLog } from "../log.js";
import { GitHubClient } from "./client.js";

/** The gzipped tarball of `repo` at `sha`, as GitHub serves it (one top-level directory). */
export type FetchTarball = (repo: string, sha: string) => Promise<Uint8Array>;

const SHA = /^(?:[0-9a-f]{40}|[0-9a-f]{64})$/;

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
    await refuseEscapingSymlinks(staging, sha);
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
  const tar = spawn("tar", ["-xz", "-f", "-", "--strip-components=1", "-C", dest], {
    stdio: ["pipe", "ignore", "pipe"],
  });
  let stderr = "";
  tar.stderr?.setEncoding("utf8").on("data", (c: string) => {
    if (stderr.length < 4096) stderr += c;
  });
  tar.stdin?.on("error", () => undefined);
  tar.stdin?.end(tarball);
  return new Promise((done, fail) => {
    tar.once("error", (e) => fail(new Error(`cannot extract ${what}: ${e.message}`)));
    tar.once("close", (code, signal) =>
      code === 0
        ? done()
        : fail(
            new Error(`cannot extract ${what}: tar ${signal ?? `exit ${code}`}: ${stderr.trim()}`),
          ),
    );
  });
}

async function refuseEscapingSymlinks(dir: string, sha: string): Promise<void> {
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isSymbolicLink()) continue;
    const link = join(entry.parentPath, entry.name);
    const to = await readlink(link);
    const resolved = resolve(dirname(link), to);
    if (isAbsolute(to) || (resolved !== dir && !resolved.startsWith(dir + sep)))
      throw new Error(
        `commit ${sha} has a symlink ${relative(dir, link)} -> ${to} that points outside the repository; the local executor refuses to check it out`,
      );
  }
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
