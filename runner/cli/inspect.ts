/**
 * `reprise logs`, `lineage` and `cache` (docs/design.md sections 5 and 11): what a node printed,
 * where a node's outputs were computed, and the repository's memo cache.
 */
import { formatBytes } from "../../core/artifacts/ref.js";
import { outputsText } from "../../core/report/document.js";
import { localRepoKey } from "../../core/version/repo-key.js";
import type { Store } from "../../db/store.js";
import type { ExecutionRecord } from "../../db/types.js";
import type { Config } from "../config.js";
import { iso } from "../documents.js";
import { openConfiguredStore } from "../open-store.js";
import { type LogEntry, lineage, nodeLogs } from "../reports.js";
import { createConfiguredExecutor } from "../runtime.js";
import { RequestError } from "../service.js";
import { repoRoot } from "../sources/local-git.js";
import { EXIT, type Io, UsageError } from "./io.js";

/** How much of a log `logs` prints unless told (`--tail BYTES`). */
export const DEFAULT_LOG_TAIL = 64 * 1024;

const short = (sha: string | null | undefined) => (sha ? sha.slice(0, 12) : "-");
/** The runner's refusals are usage errors on the command line (exit 2). */
function usage(e: unknown): never {
  if (e instanceof RequestError) throw new UsageError(e.message);
  throw e;
}

/** `--attempt`, `--tail`: a whole number of at least 1, or a usage error naming the flag. */
export function positiveInt(
  value: string | undefined,
  flag: string,
  example: string,
): number | null {
  if (value === undefined) return null;
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(n) || n < 1)
    throw new UsageError(`${flag} takes a whole number of at least 1, e.g. ${flag} ${example}`);
  return n;
}

// ---------------------------------------------------------------------------------------------
// logs

export interface LogsOptions {
  execution: string;
  /** null: every node that ran. */
  node: string | null;
  /** null: the last attempt. */
  attempt: number | null;
  /** Bytes from the end of each log. */
  tail: number;
  json: boolean;
}

export async function logsCommand(config: Config, opts: LogsOptions, io: Io): Promise<number> {
  const open = await openConfiguredStore(config);
  // For log tails only: code at a SHA (the GitHub App's checkout) plays no part.
  const executor = await createConfiguredExecutor(config);
  try {
    const exec = await findExecution(open.store, opts.execution);
    const entries = await nodeLogs(open.store, executor, exec, opts).catch(usage);
    if (opts.json) {
      io.out(JSON.stringify({ execution: exec.id, nodes: entries }, null, 2));
      return EXIT.ok;
    }
    if (entries.length === 0) {
      io.out(
        opts.attempt === null
          ? `no node of ${exec.id} has run yet (${exec.state})`
          : `no node of ${exec.id} has an attempt ${opts.attempt}`,
      );
      return EXIT.ok;
    }
    // A blank line around each log; the one-line notes of cached nodes stay together.
    entries.forEach((e, i) => {
      const prev = entries[i - 1];
      if (prev && (prev.attempt !== null || e.attempt !== null)) io.out("");
      for (const line of logLines(exec.id, e, opts.tail)) io.out(line);
    });
    return EXIT.ok;
  } finally {
    await executor.close();
    await open.close();
  }
}

function logLines(executionId: string, e: LogEntry, tail: number): string[] {
  if (e.attempt === null) {
    if (e.source && (e.cache === "HIT" || e.cache === "RECOVERED")) {
      const how = e.cache === "HIT" ? "cached" : "recovered";
      return [
        `${e.node}: ${how} from ${e.source.execution}/${e.source.node}; see \`reprise logs ${e.source.execution} ${e.source.node}\``,
      ];
    }
    const why = e.error ? `: ${firstLine(e.error.message)}` : "";
    return [`${e.node}: no attempt in ${executionId} (${e.state}${why})`];
  }
  const lines = [`== ${e.node} (${e.task}) attempt ${e.attempt}: ${e.state}`];
  if (e.log === null) {
    lines.push(!e.logged ? "(no log: the attempt did not start a process)" : "(the log is gone)");
  } else {
    if (e.truncated)
      lines.push(
        `[... earlier output cut: the log is over ${tail} bytes; a larger --tail shows more]`,
      );
    // Cut mid-line: start at the first whole line, if there is one.
    const cut = e.truncated && e.log.includes("\n") ? e.log.slice(e.log.indexOf("\n") + 1) : e.log;
    const text = cut.replace(/\n$/, "");
    if (text !== "") lines.push(text);
  }
  if (e.error && e.state !== "SUCCEEDED") {
    // With the log shown, its last lines (quoted in the message) would be repeated.
    const message = e.log === null ? e.error.message : firstLine(e.error.message);
    lines.push(`error (${e.error.kind}, ${e.error.reason}): ${message}`);
  }
  return lines;
}

function firstLine(message: string): string {
  return (message.split("\n")[0] ?? "").replace(/; last lines of the log:$/, "");
}

// ---------------------------------------------------------------------------------------------
// lineage

export async function lineageCommand(
  config: Config,
  opts: { execution: string; node: string; json: boolean },
  io: Io,
): Promise<number> {
  const open = await openConfiguredStore(config);
  try {
    const exec = await findExecution(open.store, opts.execution);
    const found = await lineage(open.store, exec, opts.node).catch(usage);
    const { chain, problem } = found;
    const node = {
      nodeId: found.node,
      taskName: chain[0]?.task,
      state: chain[0]?.state,
      outputs: found.outputs,
    };
    if (opts.json) {
      io.out(JSON.stringify(found, null, 2));
      return EXIT.ok;
    }
    io.out(`${exec.id}/${node.nodeId} (task ${node.taskName}): ${node.state}`);
    if (node.outputs) io.out(`  outputs ${outputsText(node.outputs)}`);
    for (const s of chain) {
      const at = `${s.execution}/${s.node}`;
      if ((s.cache === "HIT" || s.cache === "RECOVERED") && s.source) {
        const how = s.cache === "HIT" ? "cache hit" : "recovered";
        io.out(`  ${at}  ${how} from ${s.source.execution}/${s.source.node}`);
      } else if (s.state === "SUCCEEDED") {
        io.out(
          `  ${at}  computed ${s.finishedAt ?? "-"} at ${short(s.sha)} (${s.cache ?? "no cache"})`,
        );
        io.out(`      task ${s.task} ${s.taskDigest}`);
        if (s.cacheKey) io.out(`      cache key ${s.cacheKey}`);
      } else {
        io.out(`  ${at}  ${s.state}: no outputs${s.state === "FAILED" ? " (it failed)" : ""}`);
      }
    }
    for (const a of found.artifacts) {
      const from = a.producer
        ? `first produced by ${a.producer.execution}/${a.producer.node} (task ${a.producer.taskDigest})`
        : a.uploadedBy
          ? `uploaded by ${a.uploadedBy}`
          : "producer unknown";
      io.out(
        `  ${a.direction} ${a.name}: ${a.ref.type} ${a.ref.artifact} (${formatBytes(a.ref.size)}), ${from}`,
      );
    }
    if (problem) io.out(`  ${problem}`);
    return EXIT.ok;
  } finally {
    await open.close();
  }
}

// ---------------------------------------------------------------------------------------------
// cache

export interface CacheOptions {
  action: string;
  /** --repo; null: the execution's repository (evict --execution), else the cwd's. */
  repo: string | null;
  cwd: string;
  task: string | null;
  key: string | null;
  execution: string | null;
  json: boolean;
}

export async function cacheCommand(config: Config, opts: CacheOptions, io: Io): Promise<number> {
  if (opts.action !== "stats" && opts.action !== "evict")
    throw new UsageError(`cache takes "stats" or "evict", got "${opts.action}"`);
  if (opts.action === "stats" && (opts.key !== null || opts.execution !== null))
    throw new UsageError(
      "cache stats takes --repo, --task and --json; --key and --execution select what `cache evict` removes",
    );
  if (opts.action === "evict" && opts.task === null && opts.key === null && opts.execution === null)
    throw new UsageError(
      "cache evict needs what to evict: pass --task NAME (or its sha256: digest), --key KEY or --execution ID",
    );
  const open = await openConfiguredStore(config);
  try {
    const store = open.store;
    let repo: string;
    const source = opts.execution === null ? null : await findExecution(store, opts.execution);
    if (opts.repo === null && source) repo = source.repo;
    else repo = localRepoKey(await repoRoot(opts.repo ?? opts.cwd));
    if (source && source.repo !== repo)
      throw new UsageError(
        `execution ${source.id} belongs to ${source.repo}, not ${repo}; pass --repo for its repository`,
      );

    if (opts.action === "stats") return await cacheStats(store, repo, opts.task, opts.json, io);

    const byDigest = opts.task?.startsWith("sha256:") === true;
    const evicted = await store.cache.evict(repo, {
      ...(opts.task !== null && !byDigest ? { taskName: opts.task } : {}),
      ...(opts.task !== null && byDigest ? { taskDigest: opts.task } : {}),
      ...(opts.key !== null ? { key: opts.key } : {}),
      ...(opts.execution !== null ? { sourceExecution: opts.execution } : {}),
    });
    if (opts.json) {
      io.out(
        JSON.stringify(
          { repo, evicted, task: opts.task, key: opts.key, execution: opts.execution },
          null,
          2,
        ),
      );
      return EXIT.ok;
    }
    const what = [
      opts.task !== null ? `task ${opts.task}` : null,
      opts.key !== null ? `key ${opts.key}` : null,
      opts.execution !== null ? `computed by ${opts.execution}` : null,
    ].filter((x) => x !== null);
    io.out(
      `evicted ${evicted} cache ${evicted === 1 ? "entry" : "entries"} of ${repo} (${what.join(", ")})`,
    );
    return EXIT.ok;
  } finally {
    await open.close();
  }
}

async function cacheStats(
  store: Store,
  repo: string,
  task: string | null,
  json: boolean,
  io: Io,
): Promise<number> {
  const all = await store.cache.stats(repo);
  const rows = all.filter((s) => task === null || s.taskName === task || s.taskDigest === task);
  const entries = rows.reduce((sum, s) => sum + s.entries, 0);
  const hits = rows.reduce((sum, s) => sum + s.hits, 0);
  if (json) {
    const tasks = rows.map((s) => ({
      task: s.taskName,
      taskDigest: s.taskDigest,
      entries: s.entries,
      hits: s.hits,
      lastHitAt: iso(s.lastHitAt),
    }));
    io.out(JSON.stringify({ repo, entries, hits, tasks }, null, 2));
    return EXIT.ok;
  }
  if (rows.length === 0) {
    io.out(`no cache entries of ${repo}${task === null ? "" : ` for task ${task}`}`);
    return EXIT.ok;
  }
  io.out(
    `cache of ${repo}: ${entries} ${entries === 1 ? "entry" : "entries"}, ${hits} ${hits === 1 ? "hit" : "hits"}`,
  );
  const width = Math.max(4, ...rows.map((s) => s.taskName.length));
  io.out(`  ${"TASK".padEnd(width)}  DIGEST        ENTRIES     HITS  LAST HIT`);
  for (const s of rows) {
    io.out(
      `  ${s.taskName.padEnd(width)}  ${short(s.taskDigest.replace(/^sha256:/, ""))}  ${String(s.entries).padStart(7)}  ${String(s.hits).padStart(7)}  ${iso(s.lastHitAt) ?? "-"}`,
    );
  }
  return EXIT.ok;
}

// ---------------------------------------------------------------------------------------------

async function findExecution(store: Store, id: string): Promise<ExecutionRecord> {
  const exec = await store.executions.get(id);
  if (!exec) throw new UsageError(`no execution "${id}"`);
  return exec;
}
