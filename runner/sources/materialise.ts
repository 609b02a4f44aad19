/**
 * The one step that puts code at a SHA on disk (docs/design.md section 7), shared by the `git archive`
 * checkout of local repositories (git-archive.ts) and the GitHub tarball checkout (tarball.ts):
 * a checkout is filled in a staging directory next to its final place, then renamed there when
 * complete and checked, so neither a concurrent runner nor one that restarts after a crash can
 * see half of one. A loser of the race (EEXIST/ENOTEMPTY on rename) uses the winner's: a SHA names
 * its content. Callers in one process share one extraction per target directory.
 *
 * What the fill writes is the other half of the step (tarball.ts `extractTar`): only the tree's
 * own paths, files created O_EXCL|O_NOFOLLOW with the runner as owner and the tree's mode, links
 * made last after a kernel-style check that they stay inside (core/version/links.ts), no FIFOs
 * or devices, and bounded by the tree's sizes before anything is written.
 *
 * Checkouts in use are counted here too (`useCheckout`), so that eviction (the local executor's
 * eviction.ts, through `evictCheckout`) never removes one an attempt runs in or is about to.
 */
import { randomBytes } from "node:crypto";
import { readFileSync, utimesSync } from "node:fs";
import { mkdir, mkdtemp, readdir, rename, rm, stat, writeFile } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { errno } from "../executors/local/errno.js";
import { AttemptError } from "../executors/types.js";

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

export const COMMIT_SHA = /^(?:[0-9a-f]{40}|[0-9a-f]{64})$/;
/** Staging directories (and checkouts being evicted) are `.staging-<pid>-...` beside checkouts. */
export const STAGING = ".staging-";

/** Keyed by target directory, for every checkout function of this process. */
const inFlight = new Map<string, Promise<string>>();
/** Checkout directories attempts of this process use (starting or running), with how many. */
const uses = new Map<string, number>();
/** Checkout directories being evicted now; a checkout of one waits, then extracts it again. */
const evicting = new Map<string, Promise<void>>();

/** Fills an empty staging directory with the checkout; resolves with the bytes of its files. */
export type Fill = (staging: string) => Promise<number>;

/**
 * `target` once it holds the complete checkout: already there, or filled and renamed into place.
 * `prepare` runs first and alone (it reads the tree and refuses what is over the bounds), before
 * anything is written to disk; the fill it returns then writes into a staging directory.
 * Concurrent calls for one target share one preparation and one fill.
 */
export function materialise(target: string, prepare: () => Promise<Fill>): Promise<string> {
  let pending = inFlight.get(target);
  if (!pending) {
    pending = publish(target, prepare).finally(() => inFlight.delete(target));
    inFlight.set(target, pending);
  }
  return pending;
}

async function publish(target: string, prepare: () => Promise<Fill>): Promise<string> {
  await evicting.get(target);
  if (await isDirectory(target)) return target;
  const fill = await prepare();
  const root = dirname(target);
  await mkdir(root, { recursive: true });
  await removeAbandonedStaging(root);
  const staging = await mkdtemp(join(root, `${STAGING}${process.pid}-`));
  try {
    const bytes = await fill(staging);
    try {
      await rename(staging, target);
    } catch (e) {
      if (errno(e) !== "ENOTEMPTY" && errno(e) !== "EEXIST") throw e;
      // Another process finished the same checkout first; it has the same content.
    }
    // What eviction counts, so that no process walks the checkout's files to size it.
    await writeFile(sizeFile(target), String(bytes)).catch(() => undefined);
    return target;
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}

/**
 * Counts `dir` as used until `release` is called, and marks it used now (its mtime: what
 * eviction's least-recently-used order and age read). Null when `dir` is being evicted right now:
 * wait for `evicted(dir)`, then check it out again. Synchronous, so that against `evictCheckout`
 * exactly one of the two wins.
 */
export function useCheckout(dir: string): { release(): void } | null {
  if (evicting.has(dir)) return null;
  uses.set(dir, (uses.get(dir) ?? 0) + 1);
  touch(dir);
  let released = false;
  return {
    release() {
      if (released) return;
      released = true;
      const n = (uses.get(dir) ?? 1) - 1;
      if (n > 0) uses.set(dir, n);
      else uses.delete(dir);
      touch(dir);
    },
  };
}

/** The bytes of the checkout's files, as recorded when it was made; null when unknown. */
export function checkoutBytes(dir: string): number | null {
  try {
    const text = readFileSync(sizeFile(dir), "utf8");
    return /^\d+$/.test(text) ? Number(text) : null;
  } catch {
    return null;
  }
}

/** Beside the checkout, hidden (a dot name), so listings of checkouts pass it by. */
function sizeFile(dir: string): string {
  return join(dirname(dir), `.size-${basename(dir)}`);
}

/** Resolves once an eviction of `dir` in progress has finished (at once when there is none). */
export function evicted(dir: string): Promise<void> {
  return evicting.get(dir) ?? Promise.resolve();
}

/** Whether an attempt of this process uses `dir`, or a checkout into it is under way. */
export function checkoutInUse(dir: string): boolean {
  return uses.has(dir) || inFlight.has(dir);
}

/**
 * Removes the checkout `dir` unless it is in use (then false, nothing done). It is renamed away
 * first (one atomic step: no process sees it half-deleted), then deleted; a crash in between
 * leaves a staging directory, which the next checkout beside it removes.
 */
export function evictCheckout(dir: string): Promise<boolean> {
  if (checkoutInUse(dir) || evicting.has(dir)) return Promise.resolve(false);
  const gone = (async () => {
    const aside = join(
      dirname(dir),
      `${STAGING}${process.pid}-evicted-${randomBytes(4).toString("hex")}`,
    );
    try {
      await rename(dir, aside);
    } catch (e) {
      if (errno(e) === "ENOENT") return;
      throw e;
    }
    await rm(aside, { recursive: true, force: true });
    await rm(sizeFile(dir), { force: true });
  })();
  const settled = gone.then(
    () => undefined,
    () => undefined,
  );
  evicting.set(dir, settled);
  void settled.then(() => evicting.delete(dir));
  return gone.then(() => true);
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

/** One system call, made synchronously so that the use time is settled when the lease says so. */
function touch(dir: string): void {
  const now = new Date();
  try {
    utimesSync(dir, now, now);
  } catch {
    // Best effort: the time is a hint for eviction's order; a checkout gone is checked out again.
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
    if (errno(e) === "ENOENT" || errno(e) === "ENOTDIR") return false;
    throw e;
  }
}
