/**
 * `reprise artifacts get|ls|gc`: an artifact back onto disk, the artifacts of an execution, and
 * the store's garbage collection (gc.ts).
 */
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import {
  artifactRef,
  formatBytes,
  isArtifactDigest,
  shortDigest,
} from "../../core/artifacts/ref.js";
import { parseAge, parseByteSize, type Tally } from "../../core/artifacts/retention.js";
import { localRepoKey } from "../../core/version/repo-key.js";
import { openArtifactStore } from "../artifacts/configure.js";
import { collectGarbage, GcError, type GcReport } from "../artifacts/gc.js";
import { materialise } from "../artifacts/ingest.js";
import { executionArtifacts } from "../artifacts/listing.js";
import { BlobMissingError } from "../artifacts/store.js";
import type { Config } from "../config.js";
import { orderedNodes } from "../documents.js";
import { openConfiguredStore } from "../open-store.js";
import { repoRoot } from "../sources/local-git.js";
import { EXIT, type Io, UsageError } from "./io.js";

export interface ArtifactsGetOptions {
  digest: string;
  output: string;
  repo: string | null;
  cwd: string;
}

/** Writes the artifact at PATH (a file, or a directory as its tree), as a copy one may edit. */
export async function artifactsGet(
  config: Config,
  opts: ArtifactsGetOptions,
  io: Io,
): Promise<number> {
  if (!isArtifactDigest(opts.digest))
    throw new UsageError(`artifacts get takes a digest sha256:<64 hex>, got "${opts.digest}"`);
  const dest = resolve(opts.cwd, opts.output);
  if (existsSync(dest)) throw new UsageError(`-o ${opts.output}: ${dest} exists; name a new path`);
  const repo = localRepoKey(await repoRoot(opts.repo ?? opts.cwd));
  const open = await openConfiguredStore(config);
  try {
    const held = await open.store.artifacts.get(repo, opts.digest);
    if (!held)
      throw new UsageError(
        `${opts.digest} is not an artifact of ${repo}; \`reprise artifacts ls EXECUTION\` lists an execution's`,
      );
    const store = await openArtifactStore(config);
    const ref = artifactRef(held.type, held.digest, held.size, held.files ?? 0);
    try {
      await materialise(store, ref, dest, { writable: true });
    } catch (e) {
      if (e instanceof BlobMissingError) {
        io.err(`error: ${e.message}; relaunch an execution that produced it to store it again`);
        return EXIT.failed;
      }
      throw e;
    }
    io.err(
      `${held.type} ${shortDigest(held.digest)} (${formatBytes(held.size)}${held.files !== null ? `, ${held.files} files` : ""}) -> ${dest}`,
    );
    return EXIT.ok;
  } finally {
    await open.close();
  }
}

export async function artifactsLs(
  config: Config,
  opts: { execution: string; json: boolean },
  io: Io,
): Promise<number> {
  const open = await openConfiguredStore(config);
  try {
    const exec = await open.store.executions.get(opts.execution);
    if (!exec) throw new UsageError(`no execution "${opts.execution}"`);
    const nodes = await orderedNodes(open.store, exec);
    const rows = await executionArtifacts(open.store, exec, nodes);
    if (opts.json) {
      io.out(JSON.stringify({ execution: exec.id, artifacts: rows }, null, 2));
      return EXIT.ok;
    }
    if (rows.length === 0) {
      io.out(`execution ${exec.id} has no file or directory values`);
      return EXIT.ok;
    }
    const w = (xs: string[]) => Math.max(...xs.map((x) => x.length));
    const label = rows.map((r) => `${r.node} ${r.direction === "input" ? "<-" : "->"} ${r.name}`);
    const sizes = rows.map((r) => formatBytes(r.ref.size));
    const lw = w(label);
    const sw = w(sizes);
    rows.forEach((r, i) => {
      const from = r.producer
        ? `produced by ${r.producer.execution}/${r.producer.node}`
        : r.uploadedBy
          ? `uploaded by ${r.uploadedBy}`
          : "";
      io.out(
        `${(label[i] as string).padEnd(lw)}  ${r.ref.type.padEnd(9)}  ${(sizes[i] as string).padStart(sw)}  ${r.ref.artifact}  ${from}`,
      );
    });
    return EXIT.ok;
  } finally {
    await open.close();
  }
}

export interface ArtifactsGcOptions {
  dryRun: boolean;
  /** As typed: `30d`, `12h`. */
  olderThan: string | null;
  /** As typed: `50GiB`, `500MB`. */
  maxSize: string | null;
  json: boolean;
}

/** Removed digests printed one a line up to this many; the rest are counted (--json has all). */
const GC_LINES = 50;

/** `reprise artifacts gc`: removes the blobs nothing needs any more (runner/artifacts/gc.ts). */
export async function artifactsGc(
  config: Config,
  opts: ArtifactsGcOptions,
  io: Io,
): Promise<number> {
  const olderThanMs = opts.olderThan === null ? null : parseAge(opts.olderThan);
  if (opts.olderThan !== null && olderThanMs === null)
    throw new UsageError(
      `--older-than takes a duration (d, h, m, s), e.g. --older-than 30d or --older-than 12h; got "${opts.olderThan}"`,
    );
  const maxBytes = opts.maxSize === null ? null : parseByteSize(opts.maxSize);
  if (opts.maxSize !== null && maxBytes === null)
    throw new UsageError(
      `--max-size takes a size (B, KB, MB, GB, TB or KiB, MiB, GiB, TiB), e.g. --max-size 50GiB or --max-size 500MB; got "${opts.maxSize}"`,
    );
  const blobs = await openArtifactStore(config);
  const open = await openConfiguredStore(config);
  let printed = 0;
  const verb = opts.dryRun ? "would remove" : "removed";
  const onRemoved = (b: { digest: string; size: number; modified: Date }) => {
    if (opts.json || printed++ >= GC_LINES) return;
    io.out(`${verb} ${b.digest}  ${formatBytes(b.size)}  stored ${b.modified.toISOString()}`);
  };
  try {
    let report: GcReport;
    try {
      report = await collectGarbage(open.store, blobs, {
        dryRun: opts.dryRun,
        olderThanMs,
        maxBytes,
        onRemoved,
      });
    } catch (e) {
      if (!(e instanceof GcError)) throw e;
      if (opts.json)
        io.out(JSON.stringify({ ...gcDocument(e.partial), error: e.message }, null, 2));
      else printGcSummary(e.partial, printed, io);
      io.err(`error: ${e.message}; what remains is intact, run gc again`);
      return EXIT.failed;
    }
    if (opts.json) io.out(JSON.stringify(gcDocument(report), null, 2));
    else printGcSummary(report, printed, io);
    return EXIT.ok;
  } finally {
    await open.close();
  }
}

/** The `--json` document of a gc (DESIGN: artifacts, retention). */
export function gcDocument(r: GcReport) {
  return {
    dryRun: r.dryRun,
    store: r.store,
    policy: {
      graceSeconds: r.policy.graceMs / 1000,
      olderThanSeconds: r.policy.olderThanMs === null ? null : r.policy.olderThanMs / 1000,
      maxSizeBytes: r.policy.maxBytes,
    },
    before: r.before,
    removed: r.removed.map((b) => ({
      digest: b.digest,
      size: b.size,
      modified: b.modified.toISOString(),
    })),
    reclaimedBytes: r.reclaimedBytes,
    after: r.after,
    kept: r.kept,
    recordsDeleted: r.recordsDeleted,
    overMaxSize: r.overMaxSize,
  };
}

function printGcSummary(r: GcReport, printed: number, io: Io): void {
  if (printed > GC_LINES) io.out(`... and ${printed - GC_LINES} more (--json lists every one)`);
  const count = (n: number, what: string) => `${n} ${what}${n === 1 ? "" : "s"}`;
  const blobs = (t: Tally) => `${count(t.blobs, "blob")} (${formatBytes(t.bytes)})`;
  const after = `${formatBytes(r.after.bytes)} in ${count(r.after.blobs, "blob")}`;
  const removed = { blobs: r.removed.length, bytes: r.reclaimedBytes };
  if (removed.blobs === 0)
    io.out(`nothing ${r.dryRun ? "to remove" : "removed"} in ${r.store}: it holds ${after}`);
  else if (r.dryRun)
    io.out(
      `dry run: would remove ${blobs(removed)} from ${r.store}, leaving ${after}; nothing was removed`,
    );
  else
    io.out(
      `removed ${blobs(removed)} from ${r.store} and ${count(r.recordsDeleted, "artifact record")}; it now holds ${after}`,
    );
  const kept: string[] = [];
  if (r.kept.referenced.blobs > 0) kept.push(`${blobs(r.kept.referenced)} referenced`);
  if (r.kept.recent.blobs > 0)
    kept.push(`${blobs(r.kept.recent)} stored within the last ${formatAge(r.policy.graceMs)}`);
  if (r.kept.unreferenced.blobs > 0)
    kept.push(`${blobs(r.kept.unreferenced)} unreferenced but within --older-than/--max-size`);
  if (r.kept.raced.blobs > 0)
    kept.push(`${blobs(r.kept.raced)} referenced or stored again while gc ran`);
  if (kept.length > 0) io.out(`kept ${kept.join(", ")}`);
  if (r.overMaxSize && r.policy.maxBytes !== null)
    io.err(
      `warning: the store still holds ${formatBytes(r.after.bytes)}, over --max-size ${formatBytes(r.policy.maxBytes)}: the rest is referenced or recent`,
    );
}

function formatAge(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s % 3600 === 0) return s === 3600 ? "hour" : `${s / 3600} hours`;
  if (s % 60 === 0) return `${s / 60} minutes`;
  return `${s} seconds`;
}
