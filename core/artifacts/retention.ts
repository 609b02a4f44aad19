/**
 * Retention of the artifact store (`reprise artifacts gc`), the pure half: which blobs go, given
 * the store's listing, what is live, the time and the limits asked for. The caller lists, reads
 * the references, re-checks and deletes (runner/artifacts/gc.ts).
 *
 * A blob is *live* when something references it (the caller decides what counts), *recent* when it
 * was stored within the grace period, and otherwise *unreferenced*. Only unreferenced blobs are
 * ever removed, oldest first:
 *   - no limit: every unreferenced blob;
 *   - `olderThan`: those stored at least that long ago;
 *   - `maxBytes`: the oldest until the whole store (live and recent included) is at most that big;
 *   - both: a blob goes when either limit says so. Both select a prefix of the unreferenced blobs
 *     sorted oldest first, so together they remove the longer prefix: everything older than the
 *     age, then more, oldest first, while the store is still too big.
 */
import { parseDuration } from "../spec/units.js";

export interface StoredBlob {
  digest: string;
  size: number;
  modified: Date;
}

export interface RetentionPolicy {
  /** Blobs stored within this long are kept whatever references them (uploads in flight). */
  graceMs: number;
  olderThanMs: number | null;
  maxBytes: number | null;
}

export interface Tally {
  blobs: number;
  bytes: number;
}

export interface RetentionPlan<B extends StoredBlob = StoredBlob> {
  /** What to remove, oldest first (ties by digest, so a plan is the same on every run). */
  remove: B[];
  before: Tally;
  /** The store once `remove` is gone. */
  after: Tally;
  kept: {
    referenced: Tally;
    recent: Tally;
    /** Unreferenced and past the grace period, but within the limits asked for. */
    unreferenced: Tally;
  };
  /** `maxBytes` was asked for and what must stay (live, recent) is more than that. */
  overMaxSize: boolean;
}

export function planRetention<B extends StoredBlob>(
  blobs: readonly B[],
  isLive: (digest: string) => boolean,
  now: Date,
  policy: RetentionPolicy,
): RetentionPlan<B> {
  const before = tally(blobs);
  const referenced: B[] = [];
  const recent: B[] = [];
  const unreferenced: B[] = [];
  const graceStart = now.getTime() - policy.graceMs;
  for (const b of blobs) {
    if (isLive(b.digest)) referenced.push(b);
    else if (b.modified.getTime() > graceStart) recent.push(b);
    else unreferenced.push(b);
  }
  unreferenced.sort(
    (a, b) =>
      a.modified.getTime() - b.modified.getTime() ||
      (a.digest < b.digest ? -1 : a.digest > b.digest ? 1 : 0),
  );
  let take = unreferenced.length;
  if (policy.olderThanMs !== null || policy.maxBytes !== null) {
    let byAge = 0;
    if (policy.olderThanMs !== null) {
      const cutoff = now.getTime() - policy.olderThanMs;
      while (byAge < unreferenced.length && (unreferenced[byAge] as B).modified.getTime() <= cutoff)
        byAge++;
    }
    let bySize = 0;
    if (policy.maxBytes !== null) {
      let total = before.bytes;
      while (bySize < unreferenced.length && total > policy.maxBytes)
        total -= (unreferenced[bySize++] as B).size;
    }
    take = Math.max(byAge, bySize);
  }
  const remove = unreferenced.slice(0, take);
  const gone = tally(remove);
  const after = { blobs: before.blobs - gone.blobs, bytes: before.bytes - gone.bytes };
  return {
    remove,
    before,
    after,
    kept: {
      referenced: tally(referenced),
      recent: tally(recent),
      unreferenced: tally(unreferenced.slice(take)),
    },
    overMaxSize: policy.maxBytes !== null && after.bytes > policy.maxBytes,
  };
}

export function tally(blobs: readonly { size: number }[]): Tally {
  let bytes = 0;
  for (const b of blobs) bytes += b.size;
  return { blobs: blobs.length, bytes };
}

const SIZE = /^(\d+(?:\.\d+)?|\.\d+)\s*([a-z]*)$/i;
const SIZE_UNITS: Readonly<Record<string, number>> = {
  "": 1,
  b: 1,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  tb: 1e12,
  pb: 1e15,
  kib: 2 ** 10,
  mib: 2 ** 20,
  gib: 2 ** 30,
  tib: 2 ** 40,
  pib: 2 ** 50,
};

/**
 * `50GiB`, `500MB`, `1.5TiB`, `4096` (bytes) -> bytes, rounded down; null when not a size. KB, MB,
 * GB are powers of 1000 and KiB, MiB, GiB of 1024, as disks and `df -H` / `df -h` count them; the
 * case of the unit does not matter (nobody means bits here).
 */
export function parseByteSize(text: string): number | null {
  const m = SIZE.exec(text.trim());
  if (!m) return null;
  const unit = SIZE_UNITS[(m[2] as string).toLowerCase()];
  if (unit === undefined) return null;
  const bytes = Math.floor(Number(m[1]) * unit);
  return Number.isSafeInteger(bytes) ? bytes : null;
}

/** `30d`, `12h`, `1h30m`, `90s` -> milliseconds; null when not a positive duration with units. */
export function parseAge(text: string): number | null {
  const seconds = parseDuration(text.trim());
  return seconds === null ? null : seconds * 1000;
}
