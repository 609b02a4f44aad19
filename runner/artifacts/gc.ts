/**
 * The artifact store's garbage collection (`reprise artifacts gc`): removes the blobs nothing
 * needs any more, oldest first, within the limits asked for (core/artifacts/retention.ts), and
 * the `artifacts` rows of the blobs it removes, in every repository, so that no row claims bytes
 * that are gone.
 *
 * What is live (db/store/artifacts.ts `references`): what a cache entry, an execution of a
 * production version (past or present) or an unfinished execution references, plus anything
 * stored or recorded within the grace period; a live directory makes the file blobs its manifest
 * lists live (a manifest that is gone or corrupt keeps nothing).
 *
 * It runs beside executions, so a blob may become referenced while it runs. The order makes that
 * safe:
 *   1. list the store first, then read the references: anything referenced before the listing
 *      ended is seen;
 *   2. before each batch of deletions, read the references again (of the batch, and every
 *      directory): what was referenced meanwhile is kept;
 *   3. delete the batch's rows, then stat each blob once more right before deleting it: a blob
 *      stored again since it was listed (its time moved: a task produced the same bytes, an upload
 *      sent them) is kept and its rows put back; a blob gone already keeps its rows deleted.
 *   4. the grace period covers what the database does not show yet: a task's outputs are stored
 *      before its success is recorded, an upload before its row and its execution.
 * Rows go before blobs, so a crash between the two leaves an unreferenced blob without rows (the
 * next gc removes it), never a row claiming a removed blob.
 *
 * What it cannot see: a blob reused without being stored again, between the last re-check and its
 * deletion (a `--recover` relaunch adopting a non-production execution's outputs, `-i
 * name=sha256:...` naming an old upload, a cache entry evicted while a node was being served from
 * it). That window is one batch's deletions; the engine's self-repair computes a lost input again
 * (runner/engine/driver.ts), so a race costs a recomputation, never a wrong result.
 */

import {
  planRetention,
  type RetentionPlan,
  type Tally,
  tally,
} from "../../core/artifacts/retention.js";
import type { ArtifactReference } from "../../db/store/artifacts.js";
import type { Store } from "../../db/store.js";
import { ArtifactShapeError, MAX_MANIFEST_BYTES, readManifest } from "./ingest.js";
import { type BlobInfo, BlobMissingError, type BlobStore } from "./store.js";

/**
 * Blobs stored, and rows recorded, within the last hour are kept whatever references them. It
 * covers the moments when bytes are in the store before the database names them: a task's
 * outputs between their storing and the success that records them (seconds), an upload between
 * its bytes and the execution that reads them (a CLI's `-i name=@PATH`, an API upload followed
 * by a start: minutes at most). An hour is far above both and costs at most an hour of garbage.
 * A single directory output or upload taking longer than this to store is not covered: its first
 * files could go before its manifest is recorded.
 */
export const GC_GRACE_MS = 60 * 60 * 1000;

/**
 * Deletions between two re-checks of the references: small enough that the window in which a
 * reuse goes unseen is short, large enough that the re-check (one query) costs little per blob.
 */
const BATCH = 500;

export interface GcOptions {
  /** Say what would go; remove nothing, change no row. */
  dryRun?: boolean;
  /** Remove only unreferenced blobs stored at least this long ago. */
  olderThanMs?: number | null;
  /** Remove unreferenced blobs, oldest first, until the store holds at most this much. */
  maxBytes?: number | null;
  /** Default GC_GRACE_MS; tests shorten it. */
  graceMs?: number;
  batchSize?: number;
  now?: () => Date;
  /** Each blob as it is removed (in a dry run: as it would be); awaited before going on. */
  onRemoved?: (blob: BlobInfo) => void | Promise<void>;
}

export interface GcReport {
  dryRun: boolean;
  store: string;
  policy: { graceMs: number; olderThanMs: number | null; maxBytes: number | null };
  before: Tally;
  /** Removed (in a dry run: would be), oldest first. */
  removed: BlobInfo[];
  reclaimedBytes: number;
  /** The store as listed, less what was removed (blobs stored during the run are not counted). */
  after: Tally;
  kept: {
    referenced: Tally;
    recent: Tally;
    unreferenced: Tally;
    /** Planned for removal, but referenced or stored again while gc ran. */
    raced: Tally;
  };
  /** `artifacts` rows deleted with their blobs (every repository's). */
  recordsDeleted: number;
  overMaxSize: boolean;
}

/** gc failed part way: what it had removed by then is in `partial`. */
export class GcError extends Error {
  override readonly name = "GcError";
  constructor(
    message: string,
    readonly partial: GcReport,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export async function collectGarbage(
  store: Store,
  blobs: BlobStore,
  options: GcOptions = {},
): Promise<GcReport> {
  const graceMs = options.graceMs ?? GC_GRACE_MS;
  const now = options.now ?? (() => new Date());
  const policy = {
    graceMs,
    olderThanMs: options.olderThanMs ?? null,
    maxBytes: options.maxBytes ?? null,
  };
  const graceSeconds = graceMs / 1000;

  // 1. The listing first, then the references: a reference made before the listing ended is seen.
  const listed: BlobInfo[] = [];
  for await (const b of blobs.list()) listed.push(b);
  const listedAt = now();
  const live = new LiveSet(blobs);
  await live.add(await store.artifacts.references(graceSeconds));
  const plan: RetentionPlan<BlobInfo> = planRetention(listed, (d) => live.has(d), listedAt, policy);

  const report: GcReport = {
    dryRun: options.dryRun === true,
    store: blobs.location,
    policy,
    before: plan.before,
    removed: [],
    reclaimedBytes: 0,
    after: plan.after,
    kept: { ...plan.kept, raced: { blobs: 0, bytes: 0 } },
    recordsDeleted: 0,
    overMaxSize: plan.overMaxSize,
  };
  if (report.dryRun) {
    report.removed = plan.remove;
    report.reclaimedBytes = tally(plan.remove).bytes;
    for (const b of plan.remove) await options.onRemoved?.(b);
    return report;
  }

  const raced: BlobInfo[] = [];
  /** Blobs someone else removed between the listing and now: gone, but not by us. */
  const vanished: BlobInfo[] = [];
  const finish = () => {
    report.reclaimedBytes = tally(report.removed).bytes;
    report.kept.raced = tally(raced);
    const gone = tally([...report.removed, ...vanished]);
    report.after = { blobs: plan.before.blobs - gone.blobs, bytes: plan.before.bytes - gone.bytes };
    report.overMaxSize = policy.maxBytes !== null && report.after.bytes > policy.maxBytes;
    return report;
  };
  const size = Math.max(1, options.batchSize ?? BATCH);
  try {
    for (let i = 0; i < plan.remove.length; i += size) {
      const batch = plan.remove.slice(i, i + size);
      // 2. Referenced since the plan was made: kept.
      await live.add(
        await store.artifacts.references(
          graceSeconds,
          batch.map((b) => b.digest),
        ),
      );
      const doomed: BlobInfo[] = [];
      for (const b of batch) (live.has(b.digest) ? raced : doomed).push(b);
      if (doomed.length === 0) continue;
      // 3. Rows first, then each blob after one last look at it.
      const rows = await store.artifacts.deleteDigests(doomed.map((b) => b.digest));
      report.recordsDeleted += rows.length;
      for (const b of doomed) {
        const current = await blobs.stat(b.digest);
        if (current === null) {
          vanished.push(b);
          continue;
        }
        const storedAgain =
          current.modified.getTime() !== b.modified.getTime() ||
          current.modified.getTime() > now().getTime() - graceMs;
        if (storedAgain) {
          raced.push(b);
          const mine = rows.filter((r) => r.digest === b.digest);
          await store.artifacts.restore(mine);
          report.recordsDeleted -= mine.length;
          continue;
        }
        await blobs.delete(b.digest);
        report.removed.push(b);
        await options.onRemoved?.(b);
      }
    }
  } catch (e) {
    throw new GcError(
      `gc stopped after removing ${report.removed.length} blob(s): ${(e as Error).message}`,
      finish(),
      { cause: e },
    );
  }
  return finish();
}

/**
 * The live digests, grown as references are read: each live directory adds the file blobs of its
 * manifest, read once per run (a manifest is content-addressed, so it cannot change).
 */
class LiveSet {
  readonly #digests = new Set<string>();
  readonly #expanded = new Set<string>();

  constructor(private readonly blobs: BlobStore) {}

  has(digest: string): boolean {
    return this.#digests.has(digest);
  }

  async add(refs: readonly ArtifactReference[]): Promise<void> {
    for (const r of refs) {
      this.#digests.add(r.digest);
      if (r.directory && !this.#expanded.has(r.digest)) {
        for (const d of await this.#filesOf(r.digest)) this.#digests.add(d);
        this.#expanded.add(r.digest);
      }
    }
  }

  /**
   * The file digests a directory's manifest lists; none when the manifest is gone or is not one
   * (its files are then unreachable anyway). Any other failure (the store unreachable) stops gc:
   * guessing "none" would remove a live directory's files.
   */
  async #filesOf(digest: string): Promise<string[]> {
    const info = await this.blobs.stat(digest);
    // Larger than any manifest can be: not one (readManifest would refuse it as a store error).
    if (info === null || info.size > MAX_MANIFEST_BYTES) return [];
    try {
      const manifest = await readManifest(this.blobs, digest);
      return manifest.entries.flatMap((e) => (e.kind === "symlink" ? [] : [e.digest]));
    } catch (e) {
      if (e instanceof BlobMissingError || e instanceof ArtifactShapeError) return [];
      throw e;
    }
  }
}
