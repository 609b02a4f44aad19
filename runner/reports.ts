/**
 * What a node printed and where its outputs were computed (docs/design.md sections 5 and 11), as
 * data: `reprise logs` and `reprise lineage` print it, the API returns it.
 */
import type { Store } from "../db/store.js";
import type { AttemptRecord, ExecutionRecord, NodeRecord } from "../db/types.js";
import { type ExecutionArtifact, executionArtifacts } from "./artifacts/listing.js";
import { iso, orderedNodes } from "./documents.js";
import type { Executor } from "./executors/types.js";
import { RequestError } from "./service.js";

export const reused = (n: NodeRecord) =>
  (n.cacheStatus === "HIT" || n.cacheStatus === "RECOVERED") && n.source !== null;

export interface LogEntry {
  node: string;
  task: string;
  /** null: the node has no attempt of its own (served from the cache, skipped, not run yet). */
  attempt: number | null;
  /** The attempt's state, or the node's when it has no attempt. */
  state: string;
  /**
   * The attempt started a process, so it has a log (`log` null then: it is gone). Never the
   * executor's reference: on the local executor that is the runner's filesystem path.
   */
  logged: boolean;
  log: string | null;
  /** The log is longer than what is shown (`--tail`). */
  truncated: boolean;
  error: { kind: string; reason: string; message: string; exitCode: number | null } | null;
  cache: NodeRecord["cacheStatus"];
  source: NodeRecord["source"];
}

export interface LogsQuery {
  /** null: every node that ran (or was served from elsewhere). */
  node: string | null;
  /** null: the last attempt. */
  attempt: number | null;
  /** Bytes from the end of each log. */
  tail: number;
}

/** Each selected node's log tail and outcome, for its chosen attempt. */
export async function nodeLogs(
  store: Store,
  executor: Pick<Executor, "logTail">,
  exec: ExecutionRecord,
  q: LogsQuery,
): Promise<LogEntry[]> {
  const nodes = await orderedNodes(store, exec);
  const byNode = new Map<string, AttemptRecord[]>();
  for (const a of await store.executions.attempts(exec.id)) {
    const list = byNode.get(a.nodeId) ?? [];
    list.push(a);
    byNode.set(a.nodeId, list);
  }
  const entries: LogEntry[] = [];
  const selected =
    q.node === null
      ? nodes.filter((n) => (byNode.get(n.nodeId)?.length ?? 0) > 0 || reused(n))
      : [findNode(exec, nodes, q.node)];
  for (const n of selected) {
    const tries = (byNode.get(n.nodeId) ?? []).sort((a, b) => a.attempt - b.attempt);
    if (tries.length === 0) {
      entries.push(noAttempt(n));
      continue;
    }
    const chosen =
      q.attempt === null ? tries[tries.length - 1] : tries.find((a) => a.attempt === q.attempt);
    if (!chosen) {
      // Without a node, attempt N selects the nodes that have an attempt N.
      if (q.node === null) continue;
      const numbers = tries.map((a) => a.attempt).join(", ");
      throw new RequestError(
        "not_found",
        `node "${n.nodeId}" of ${exec.id} has no attempt ${q.attempt}; its attempts: ${numbers}`,
      );
    }
    entries.push(await attemptEntry(n, chosen, q.tail, executor));
  }
  return entries;
}

function noAttempt(n: NodeRecord): LogEntry {
  return {
    node: n.nodeId,
    task: n.taskName,
    attempt: null,
    state: n.state,
    logged: false,
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
    logged: a.logRef !== null,
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

export interface LineageStep {
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

export interface Lineage {
  execution: string;
  node: string;
  outputs: NodeRecord["outputs"];
  /** The node that computed the outputs, or null when none did (failed, or a broken chain). */
  computedBy: {
    execution: string;
    node: string;
    task: string;
    sha: string;
    taskDigest: string;
    cacheKey: string | null;
    finishedAt: string | null;
  } | null;
  chain: LineageStep[];
  /**
   * The node's file and directory inputs and outputs, each with the execution, node and task
   * digest that first produced its bytes (null: uploaded).
   */
  artifacts: ExecutionArtifact[];
  problem?: string;
}

/** Follows a node's outputs through cache hits and recoveries to the node that computed them. */
export async function lineage(
  store: Store,
  exec: ExecutionRecord,
  nodeId: string,
): Promise<Lineage> {
  const node = findNode(exec, await store.executions.nodes(exec.id), nodeId);
  const chain: LineageStep[] = [step(exec, node)];
  const seen = new Set([`${exec.id}/${node.nodeId}`]);
  let problem: string | null = null;
  let current = node;
  // Normally one step, since a hit records the computing node, but stored data may say otherwise.
  while (reused(current) && current.source) {
    const { execution, node: sourceNode } = current.source;
    const where = `${execution}/${sourceNode}`;
    if (seen.has(where)) {
      problem = `the sources form a cycle at ${where}: the stored lineage is inconsistent`;
      break;
    }
    seen.add(where);
    const srcExec = await store.executions.get(execution);
    const srcNode = srcExec
      ? (await store.executions.nodes(srcExec.id)).find((n) => n.nodeId === sourceNode)
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
  return {
    execution: exec.id,
    node: node.nodeId,
    outputs: node.outputs,
    computedBy,
    chain,
    artifacts: await executionArtifacts(store, exec, [node]),
    ...(problem ? { problem } : {}),
  };
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

export function findNode(
  exec: ExecutionRecord,
  nodes: readonly NodeRecord[],
  id: string,
): NodeRecord {
  const node = nodes.find((n) => n.nodeId === id);
  if (!node)
    throw new RequestError(
      "not_found",
      `execution ${exec.id} (${exec.workflow}) has no node "${id}"; its nodes: ${nodes.map((n) => n.nodeId).join(", ")}`,
    );
  return node;
}
