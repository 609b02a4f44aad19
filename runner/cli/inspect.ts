/**
 * `reprise logs`, `lineage` and `cache` (DESIGN.md sections 5 and 11): what a node printed,
 * where a node's outputs were computed, and the repository's memo cache.
 */
import { localRepoKey } from "../../core/version/repo-key.js";
import type { Store } from "../../db/store.js";
import type { AttemptRecord, ExecutionRecord, NodeRecord } from "../../db/types.js";
import type { Config } from "../config.js";
import { createLocalExecutor } from "../executors/local/index.js";
import { openConfiguredStore } from "../open-store.js";
import { repoRoot } from "../sources/local-git.js";
import { iso, orderedNodes } from "./document.js";
import { EXIT, type Io, UsageError } from "./io.js";

/** How much of a log `logs` prints unless told (`--tail BYTES`). */
export const DEFAULT_LOG_TAIL = 64 * 1024;

const short = (sha: string | null | undefined) => (sha ? sha.slice(0, 12) : "-");
const reused = (n: NodeRecord) =>
  (n.cacheStatus === "HIT" || n.cacheStatus === "RECOVERED") && n.source !== null;

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

interface LogEntry {
  node: string;
  task: string;
  /** null: the node has no attempt of its own (served from the cache, skipped, not run yet). */
  attempt: number | null;
  /** The attempt's state, or the node's when it has no attempt. */
  state: string;
  logRef: string | null;
  log: string | null;
  /** The log is longer than what is shown (`--tail`). */
  truncated: boolean;
  error: { kind: string; reason: string; message: string; exitCode: number | null } | null;
  cache: NodeRecord["cacheStatus"];
  source: NodeRecord["source"];
}

export async function logsCommand(config: Config, opts: LogsOptions, io: Io): Promise<number> {
  const open = await openConfiguredStore(config);
  const executor = createLocalExecutor({ dataDir: config.dataDir, env: config.environment });
  try {
    const store = open.store;
    const exec = await findExecution(store, opts.execution);
    const nodes = await orderedNodes(store, exec);
    const byNode = new Map<string, AttemptRecord[]>();
    for (const a of await store.executions.attempts(exec.id)) {
      const list = byNode.get(a.nodeId) ?? [];
      list.push(a);
      byNode.set(a.nodeId, list);
    }

    const entries: LogEntry[] = [];
    const selected =
      opts.node === null
        ? nodes.filter((n) => (byNode.get(n.nodeId)?.length ?? 0) > 0 || reused(n))
        : [findNode(exec, nodes, opts.node)];
    for (const n of selected) {
      const tries = (byNode.get(n.nodeId) ?? []).sort((a, b) => a.attempt - b.attempt);
      if (tries.length === 0) {
        entries.push(noAttempt(n));
        continue;
      }
      const chosen =
        opts.attempt === null
          ? tries[tries.length - 1]
          : tries.find((a) => a.attempt === opts.attempt);
      if (!chosen) {
        // Without NODE, --attempt N shows the nodes that have an attempt N.
        if (opts.node === null) continue;
        const numbers = tries.map((a) => a.attempt).join(", ");
        throw new UsageError(
          `node "${n.nodeId}" of ${exec.id} has no attempt ${opts.attempt}; pass --attempt ${numbers.includes(",") ? `one of ${numbers}` : numbers}`,
        );
      }
      entries.push(await attemptEntry(n, chosen, opts.tail, executor));
    }

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

function noAttempt(n: NodeRecord): LogEntry {
  return {
    node: n.nodeId,
    task: n.taskName,
    attempt: null,
    state: n.state,
    logRef: null,
    log: null,
    truncated: false,
    error: n.error
      ? {
          kind: n.error.kind,
          reason: n.error.reason,
          message: n.error.message,
          exitCode: n.error.exitCode ?? null,
        }
      : null,
    cache: n.cacheStatus,
    source: n.source,
  };
}

async function attemptEntry(
  n: NodeRecord,
  a: AttemptRecord,
  tail: number,
  executor: { logTail(logRef: string, maxBytes: number): Promise<string | null> },
): Promise<LogEntry> {
  let log: string | null = null;
  let truncated = false;
  if (a.logRef !== null) {
    // One byte more than asked tells whether there is more than what is shown.
    const text = await executor.logTail(a.logRef, tail + 1);
    if (text !== null) {
      const bytes = Buffer.from(text, "utf8");
      truncated = bytes.length > tail;
      log = truncated ? dropPartialChar(bytes.subarray(bytes.length - tail)) : text;
    }
  }
  return {
    node: n.nodeId,
    task: n.taskName,
    attempt: a.attempt,
    state: a.state,
    logRef: a.logRef,
    log,
    truncated,
    error:
      a.errorMessage !== null || a.errorReason !== null
        ? {
            kind: a.errorKind ?? "user",
            reason: a.errorReason ?? "",
            message: a.errorMessage ?? "",
            exitCode: a.exitCode,
          }
        : null,
    cache: n.cacheStatus,
    source: n.source,
  };
}

/** Decodes bytes that may begin in the middle of a UTF-8 character, skipping its remains. */
function dropPartialChar(bytes: Buffer): string {
  let start = 0;
  while (start < bytes.length && start < 3 && ((bytes[start] ?? 0) & 0xc0) === 0x80) start++;
  return bytes.subarray(start).toString("utf8");
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
    lines.push(
      e.logRef === null ? "(no log: the attempt did not start a process)" : "(the log is gone)",
    );
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

interface LineageStep {
  execution: string;
  node: string;
  task: string;
  state: NodeRecord["state"];
  cache: NodeRecord["cacheStatus"];
  cacheKey: string | null;
  taskDigest: string;
  sha: string;
  finishedAt: string | null;
  source: NodeRecord["source"];
}

export async function lineageCommand(
  config: Config,
  opts: { execution: string; node: string; json: boolean },
  io: Io,
): Promise<number> {
  const open = await openConfiguredStore(config);
  try {
    const store = open.store;
    const exec = await findExecution(store, opts.execution);
    const node = findNode(exec, await store.executions.nodes(exec.id), opts.node);

    const chain: LineageStep[] = [step(exec, node)];
    const seen = new Set([`${exec.id}/${node.nodeId}`]);
    let problem: string | null = null;
    let current = node;
    // Follow the source through executions to the node that ran; normally one step, since a hit
    // records the computing node, but stored data may say otherwise.
    while (reused(current) && current.source) {
      const { execution, node: nodeId } = current.source;
      const where = `${execution}/${nodeId}`;
      if (seen.has(where)) {
        problem = `the sources form a cycle at ${where}: the stored lineage is inconsistent`;
        break;
      }
      seen.add(where);
      const srcExec = await store.executions.get(execution);
      const srcNode = srcExec
        ? (await store.executions.nodes(srcExec.id)).find((n) => n.nodeId === nodeId)
        : undefined;
      if (!srcExec || !srcNode) {
        problem = `the source ${where} no longer exists`;
        break;
      }
      chain.push(step(srcExec, srcNode));
      current = srcNode;
    }
    const last = chain[chain.length - 1] as LineageStep;
    const computedBy =
      problem === null && !reused(current) && current.state === "SUCCEEDED"
        ? {
            execution: last.execution,
            node: last.node,
            task: last.task,
            sha: last.sha,
            taskDigest: last.taskDigest,
            cacheKey: last.cacheKey,
            finishedAt: last.finishedAt,
          }
        : null;

    if (opts.json) {
      io.out(
        JSON.stringify(
          {
            execution: exec.id,
            node: node.nodeId,
            outputs: node.outputs,
            computedBy,
            chain,
            ...(problem ? { problem } : {}),
          },
          null,
          2,
        ),
      );
      return EXIT.ok;
    }
    io.out(`${exec.id}/${node.nodeId} (task ${node.taskName}): ${node.state}`);
    if (node.outputs) io.out(`  outputs ${JSON.stringify(node.outputs)}`);
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
    if (problem) io.out(`  ${problem}`);
    return EXIT.ok;
  } finally {
    await open.close();
  }
}

function step(e: ExecutionRecord, n: NodeRecord): LineageStep {
  return {
    execution: e.id,
    node: n.nodeId,
    task: n.taskName,
    state: n.state,
    cache: n.cacheStatus,
    cacheKey: n.cacheKey,
    taskDigest: n.taskDigest,
    sha: e.sha,
    finishedAt: iso(n.finishedAt),
    source: n.source,
  };
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

function findNode(exec: ExecutionRecord, nodes: readonly NodeRecord[], id: string): NodeRecord {
  const node = nodes.find((n) => n.nodeId === id);
  if (!node)
    throw new UsageError(
      `execution ${exec.id} (${exec.workflow}) has no node "${id}"; its nodes: ${nodes.map((n) => n.nodeId).join(", ")}`,
    );
  return node;
}
