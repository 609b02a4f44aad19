/**
 * Bounded disk for the local executor (README.md "Eviction"): checkouts and ended attempt
 * directories (their logs and task/ scratch included) are removed when unused for longer than
 * REPRISE_CACHE_MAX_AGE_DAYS, and, least recently used first, while together they hold more than
 * REPRISE_CACHE_MAX_BYTES. Never one in use: a running attempt's directory, an attempt whose
 * outcome was not collected yet, a checkout a starting or running attempt uses.
 *
 * `cacheEntries` lists what is there, sized, with whether it is in use (from the executor's own
 * state and from the attempt files, so another runner's running attempts count too);
 * `chooseVictims` is the policy, pure; the executor removes what it returns.
 */
import { lstat, readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { COMMIT_SHA, checkoutBytes, checkoutInUse } from "../../sources/materialise.js";
import { AttemptDir } from "./attempt-dir.js";
import { errno } from "./errno.js";

export const DEFAULT_CACHE_MAX_BYTES = 20 * 1024 ** 3;
export const DEFAULT_CACHE_MAX_AGE_DAYS = 14;
const DAY_MS = 24 * 60 * 60 * 1000;
/**
 * An ended attempt this process did not collect (a dead runner's) may still have its outcome
 * collected by a re-attaching wait; until it has been left alone this long, it is in use.
 */
const UNCOLLECTED_GRACE_MS = 60 * 60_000;

export interface CacheLimits {
  /** REPRISE_CACHE_MAX_BYTES: checkouts and attempt directories together. */
  maxBytes: number;
  /** REPRISE_CACHE_MAX_AGE_DAYS: unused for longer than this, an entry goes whatever the size. */
  maxAgeDays: number;
}

export const DEFAULT_CACHE_LIMITS: CacheLimits = {
  maxBytes: DEFAULT_CACHE_MAX_BYTES,
  maxAgeDays: DEFAULT_CACHE_MAX_AGE_DAYS,
};

export interface CacheEntry {
  kind: "checkout" | "attempt";
  path: string;
  bytes: number;
  /** When it was last used, ms since the epoch (its directory's mtime). */
  usedAt: number;
  inUse: boolean;
}

export interface EvictionReport {
  evicted: Array<{ kind: CacheEntry["kind"]; path: string; bytes: number; why: Victim["why"] }>;
  /** What checkouts and attempt directories hold after it. */
  bytes: number;
}

export interface Victim {
  entry: CacheEntry;
  why: "age" | "size";
}

/**
 * What to evict: every unused entry older than the age limit, then unused entries, least
 * recently used first, until the total (in-use entries count, and are never chosen) is within
 * the byte limit. Ties go to the larger entry, then by path, so the order is total.
 */
export function chooseVictims(
  entries: readonly CacheEntry[],
  limits: CacheLimits,
  now: number,
): Victim[] {
  const oldest = now - limits.maxAgeDays * DAY_MS;
  const candidates = entries
    .filter((e) => !e.inUse)
    .sort((a, b) => a.usedAt - b.usedAt || b.bytes - a.bytes || a.path.localeCompare(b.path));
  let total = entries.reduce((sum, e) => sum + e.bytes, 0);
  const victims: Victim[] = [];
  for (const entry of candidates) {
    if (entry.usedAt < oldest) victims.push({ entry, why: "age" });
    else if (total > limits.maxBytes) victims.push({ entry, why: "size" });
    else continue;
    total -= entry.bytes;
  }
  return victims;
}

/** What a scan asks of the executor that runs it: its own attempts, and when to stop. */
export interface CacheScan {
  attemptsRoot: string;
  checkoutRoots: readonly string[];
  /** Launched or waited for by this process. */
  mine(handle: string): boolean;
  /** Whether the attempt's wrapper (pid) still runs. */
  alive(attempt: AttemptDir, pid: number): boolean;
  /** A wait of this process returned its outcome. */
  collected(handle: string): boolean;
  /** Sizes of entries that no longer change, kept between scans. */
  sizes: Map<string, number>;
  /** The executor was closed: stop (a CLI command that is done does not wait for a scan). */
  closed(): boolean;
  now?: number;
}

/**
 * Checkouts and attempt directories with their size, last use and whether they are in use: an
 * attempt launched or waited for here, one whose wrapper runs (any runner's), one not yet
 * collected (see UNCOLLECTED_GRACE_MS); a checkout leased here or named by such an attempt.
 */
export async function cacheEntries(scan: CacheScan): Promise<CacheEntry[]> {
  const now = scan.now ?? Date.now();
  const entries: CacheEntry[] = [];
  const used = new Set<string>();
  for (const handle of await names(scan.attemptsRoot)) {
    // A closing runner (a CLI command that is done) does not wait for a scan.
    if (scan.closed()) return [];
    if (handle.startsWith(".")) continue;
    let attempt: AttemptDir;
    try {
      attempt = new AttemptDir(scan.attemptsRoot, handle);
    } catch {
      continue;
    }
    const st = await statOrNull(attempt.path);
    if (!st?.isDirectory() || attempt.readEvicted() !== null) continue;
    const mine = scan.mine(handle);
    const pid = attempt.readExit() === null ? attempt.readPid() : null;
    const runs = pid !== null && scan.alive(attempt, pid);
    const collected = scan.collected(handle) || now - st.mtimeMs > UNCOLLECTED_GRACE_MS;
    const inUse = mine || runs || !collected || !attempt.ended();
    if (inUse) {
      const checkout = attempt.readCheckout();
      if (checkout) used.add(checkout);
    }
    const bytes = await sized(scan.sizes, attempt.path, !inUse);
    entries.push({ kind: "attempt", path: attempt.path, bytes, usedAt: st.mtimeMs, inUse });
  }
  for (const dir of await checkoutDirs(scan.checkoutRoots)) {
    if (scan.closed()) return [];
    const st = await statOrNull(dir);
    if (!st) continue;
    entries.push({
      kind: "checkout",
      path: dir,
      bytes: checkoutBytes(dir) ?? (await sized(scan.sizes, dir, true)),
      usedAt: st.mtimeMs,
      inUse: used.has(dir) || checkoutInUse(dir),
    });
  }
  return entries;
}

async function sized(sizes: Map<string, number>, path: string, stable: boolean): Promise<number> {
  const known = sizes.get(path);
  if (known !== undefined) return known;
  const bytes = await bytesBelow(path);
  if (stable) sizes.set(path, bytes);
  return bytes;
}

/** `<root>/<sha>` and `<root>/<name>/<sha>` under each checkout root. */
async function checkoutDirs(roots: readonly string[]): Promise<string[]> {
  const dirs: string[] = [];
  for (const root of roots) {
    for (const name of await names(root)) {
      if (name.startsWith(".")) continue;
      if (COMMIT_SHA.test(name)) dirs.push(join(root, name));
      else
        for (const sha of await names(join(root, name)))
          if (COMMIT_SHA.test(sha)) dirs.push(join(root, name, sha));
    }
  }
  return dirs;
}

/** The entries of a directory; none when it does not exist (yet). */
async function names(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (e) {
    if (errno(e) === "ENOENT" || errno(e) === "ENOTDIR") return [];
    throw e;
  }
}

async function statOrNull(path: string) {
  try {
    return await stat(path);
  } catch (e) {
    if (errno(e) === "ENOENT") return null;
    throw e;
  }
}

/** Bytes of the regular files and links below `path` (0 when it is gone). */
export async function bytesBelow(path: string): Promise<number> {
  let entries: Awaited<ReturnType<typeof readdirWithTypes>>;
  try {
    entries = await readdirWithTypes(path);
  } catch (e) {
    if (errno(e) === "ENOENT" || errno(e) === "ENOTDIR") return 0;
    throw e;
  }
  let total = 0;
  for (const e of entries) {
    if (!e.isFile() && !e.isSymbolicLink()) continue;
    try {
      total += (await lstat(join(e.parentPath, e.name))).size;
    } catch (err) {
      if (errno(err) !== "ENOENT") throw err;
    }
  }
  return total;
}

function readdirWithTypes(path: string) {
  return readdir(path, { recursive: true, withFileTypes: true });
}

/** Why an entry went, for the note an evicted attempt's log is replaced by. */
export function evictionNote(why: Victim["why"], limits: CacheLimits, at: Date): string {
  const rule =
    why === "age"
      ? `unused for more than ${limits.maxAgeDays} days (REPRISE_CACHE_MAX_AGE_DAYS)`
      : `the local executor's disk cache was over ${limits.maxBytes} bytes (REPRISE_CACHE_MAX_BYTES), and this attempt was among the least recently used`;
  return `[reprise] this attempt's log was evicted at ${at.toISOString()}: ${rule}\n`;
}
