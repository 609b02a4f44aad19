/** The execution document of DESIGN.md section 11: `--json` output, `status`, and the API. */
import { topologicalOrder } from "../../core/dag/graph.js";
import { dependencyMap } from "../../core/dag/workflow-deps.js";
import type { Store } from "../../db/store.js";
import type { ExecutionRecord, NodeRecord } from "../../db/types.js";

export interface ExecutionDocument {
  id: string;
  workflow: string;
  repo: string;
  sha: string;
  status: ExecutionRecord["state"];
  mode: ExecutionRecord["mode"];
  parent: string | null;
  inputs: ExecutionRecord["inputs"];
  outputs: ExecutionRecord["outputs"];
  error: ExecutionRecord["error"];
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  nodes: Array<{
    id: string;
    task: string;
    status: NodeRecord["state"];
    cache: NodeRecord["cacheStatus"];
    attempts: number;
    taskDigest: string;
    cacheKey: string | null;
    inputs: NodeRecord["inputs"];
    outputs: NodeRecord["outputs"];
    source: NodeRecord["source"];
    startedAt: string | null;
    finishedAt: string | null;
    error: NodeRecord["error"];
  }>;
}

export const iso = (d: Date | null) => (d ? d.toISOString() : null);

/** An execution's nodes in the order they can run (topological, then by id): how every command lists them. */
export async function orderedNodes(store: Store, exec: ExecutionRecord): Promise<NodeRecord[]> {
  const nodes = await store.executions.nodes(exec.id);
  const wf = await store.versions
    .resolveWorkflow(exec.repo, exec.sha, exec.workflow)
    .catch(() => null);
  const order = wf ? (topologicalOrder(dependencyMap(wf.spec)) ?? []) : [];
  const rank = new Map(order.map((id, i) => [id, i]));
  return nodes.sort(
    (a, b) =>
      (rank.get(a.nodeId) ?? order.length) - (rank.get(b.nodeId) ?? order.length) ||
      a.nodeId.localeCompare(b.nodeId),
  );
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
      inputs: n.inputs,
      outputs: n.outputs,
      source: n.source,
      startedAt: iso(n.startedAt),
      finishedAt: iso(n.finishedAt),
      error: n.error,
    })),
  };
}

/** The human summary: one line per node, what ran, what came from the cache, how long. */
export function summaryLines(doc: ExecutionDocument): string[] {
  const width = Math.max(4, ...doc.nodes.map((n) => n.id.length));
  const lines = [`execution ${doc.id}  ${doc.workflow} @ ${doc.sha.slice(0, 12)}  ${doc.status}`];
  for (const n of doc.nodes) {
    const how =
      n.cache === "HIT" || n.cache === "RECOVERED"
        ? `${n.cache === "HIT" ? "cached" : "recovered"} from ${n.source?.execution}/${n.source?.node}`
        : n.status === "SUCCEEDED"
          ? `ran${n.attempts > 1 ? ` (${n.attempts} attempts)` : ""}`
          : n.status === "FAILED"
            ? `failed: ${n.error?.message.split("\n")[0] ?? ""}`
            : n.status === "SKIPPED"
              ? `skipped: ${n.error?.message ?? ""}`
              : n.status.toLowerCase();
    lines.push(
      `  ${n.id.padEnd(width)}  ${n.status.padEnd(9)}  ${duration(n).padStart(7)}  ${how}`,
    );
  }
  if (doc.status === "SUCCEEDED" && Object.keys(doc.outputs ?? {}).length > 0) {
    lines.push(`outputs ${JSON.stringify(doc.outputs)}`);
  }
  for (const n of doc.nodes) {
    if (n.status !== "FAILED" || !n.error) continue;
    const rest = n.error.message
      .split("\n")
      .slice(1)
      .filter((l) => l.trim() !== "");
    if (rest.length === 0) continue;
    lines.push("", `${n.id} (${n.task}), attempt ${n.attempts}:`);
    for (const l of rest.slice(-15)) lines.push(`  | ${l}`);
  }
  return lines;
}

function duration(n: ExecutionDocument["nodes"][number]): string {
  if (!n.startedAt || !n.finishedAt) return "";
  const ms = Date.parse(n.finishedAt) - Date.parse(n.startedAt);
  return ms < 1_000 ? `${ms}ms` : `${(ms / 1_000).toFixed(1)}s`;
}
