/**
 * The execution and version documents of docs/design.md section 11, built from the store's records:
 * what the CLI prints (`--json`, `status`), the API answers, the web UI and the check runs show.
 */
import { topologicalOrder } from "../core/dag/graph.js";
import { dependencyMap } from "../core/dag/workflow-deps.js";
import type { ExecutionDocument } from "../core/report/document.js";
import type { Store } from "../db/store.js";
import type { ExecutionRecord, NodeRecord, VersionRecord } from "../db/types.js";

export const iso = (d: Date | null) => (d ? d.toISOString() : null);

/** An execution's nodes in the order they can run (topological, then by id): how every command lists them. */
export async function orderedNodes(store: Store, exec: ExecutionRecord): Promise<NodeRecord[]> {
  const [nodes, rank] = await Promise.all([
    store.executions.nodes(exec.id),
    nodeRanks(store, exec),
  ]);
  const last = rank.size;
  return nodes.sort(
    (a, b) =>
      (rank.get(a.nodeId) ?? last) - (rank.get(b.nodeId) ?? last) ||
      a.nodeId.localeCompare(b.nodeId),
  );
}

/**
 * Each node's place in its workflow's topological order, by workflow digest: a digest names an
 * immutable graph, so the order is computed once per process (a few hundred graphs kept).
 */
const ranks = new Map<string, Map<string, number>>();

async function nodeRanks(store: Store, exec: ExecutionRecord): Promise<Map<string, number>> {
  const cached = ranks.get(exec.workflowDigest);
  if (cached) return cached;
  const wf = await store.versions
    .resolveWorkflow(exec.repo, exec.sha, exec.workflow)
    .catch(() => null);
  const order = wf ? (topologicalOrder(dependencyMap(wf.spec)) ?? []) : [];
  const rank = new Map(order.map((id, i) => [id, i]));
  if (wf) {
    if (ranks.size >= 256) ranks.delete(ranks.keys().next().value as string);
    ranks.set(exec.workflowDigest, rank);
  }
  return rank;
}

/** `order`: node ids in topological order (the document lists nodes in the order they can run). */
export function executionDocument(
  e: ExecutionRecord,
  sorted: readonly NodeRecord[],
): ExecutionDocument {
  return {
    id: e.id,
    workflow: e.workflow,
    repo: e.repo,
    sha: e.sha,
    status: e.state,
    mode: e.mode,
    parent: e.parentId,
    inputs: e.inputs,
    outputs: e.outputs ?? {},
    error: e.error,
    createdAt: e.createdAt.toISOString(),
    startedAt: iso(e.startedAt),
    finishedAt: iso(e.finishedAt),
    nodes: sorted.map((n) => ({
      id: n.nodeId,
      task: n.taskName,
      status: n.state,
      cache: n.cacheStatus,
      attempts: n.attempts,
      taskDigest: n.taskDigest,
      cacheKey: n.cacheKey,
      cacheReason: n.cacheReason,
      inputs: n.inputs,
      outputs: n.outputs,
      source: n.source,
      startedAt: iso(n.startedAt),
      finishedAt: iso(n.finishedAt),
      error: n.error,
    })),
  };
}

/** A version as `--json` and the API list it (without its tasks and workflows). */
export function versionDocument(v: VersionRecord) {
  return {
    repo: v.repo,
    sha: v.sha,
    ref: v.ref,
    message: v.message,
    status: v.status,
    specDigest: v.specDigest,
    registeredAt: v.registeredAt.toISOString(),
    errors: v.errors,
  };
}

/** What core's diffVersions compares of a version. */
export function diffable(v: VersionRecord) {
  return { specDigest: v.specDigest ?? "", tasks: v.tasks, workflows: v.workflows };
}
