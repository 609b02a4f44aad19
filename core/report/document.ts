/**
 * The execution document of docs/design.md section 11 — what `--json`, `status` and the API return —
 * and its human summary. Pure: the runner builds the document from the store.
 */
import { type ArtifactRef, artifactProblem, formatBytes, shortDigest } from "../artifacts/ref.js";
import type {
  CacheStatus,
  ExecutionError,
  ExecutionMode,
  ExecutionState,
  NodeError,
  NodeState,
} from "../engine/vocabulary.js";
import type { JsonValue } from "../spec/types.js";

export interface ExecutionDocument {
  id: string;
  workflow: string;
  repo: string;
  sha: string;
  status: ExecutionState;
  mode: ExecutionMode;
  parent: string | null;
  inputs: Record<string, JsonValue>;
  outputs: Record<string, JsonValue> | null;
  error: ExecutionError | null;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  nodes: Array<{
    id: string;
    task: string;
    status: NodeState;
    cache: CacheStatus | null;
    attempts: number;
    taskDigest: string;
    cacheKey: string | null;
    /** Why a cacheable node was not served from the cache, beyond plain absence (self-repair). */
    cacheReason?: string | null;
    inputs: Record<string, JsonValue> | null;
    outputs: Record<string, JsonValue> | null;
    source: { execution: string; node: string } | null;
    startedAt: string | null;
    finishedAt: string | null;
    error: NodeError | null;
  }>;
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
          ? `ran${n.attempts > 1 ? ` (${n.attempts} attempts)` : ""}${n.cacheReason ? `: ${n.cacheReason}` : ""}`
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
    lines.push(`outputs ${outputsText(doc.outputs ?? {})}`);
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

/**
 * Outputs as one line: artifacts as `name=file 1aa18daa3283 (348 B)` (type, digest prefix, size),
 * other values as JSON.
 */
export function outputsText(outputs: Readonly<Record<string, JsonValue>>): string {
  return Object.entries(outputs)
    .map(([name, v]) => {
      const t = typeof v === "object" && v !== null && !Array.isArray(v) ? v.type : undefined;
      if ((t === "file" || t === "directory") && artifactProblem(t, v) === null) {
        const ref = v as unknown as ArtifactRef;
        const files = ref.files !== undefined ? `, ${ref.files} files` : "";
        return `${name}=${t} ${shortDigest(ref.artifact)} (${formatBytes(ref.size)}${files})`;
      }
      return `${name}=${JSON.stringify(v)}`;
    })
    .join(" ");
}

/** How long a node took ("840ms", "12.5s"), or "" when it did not run. */
export function duration(n: ExecutionDocument["nodes"][number]): string {
  if (!n.startedAt || !n.finishedAt) return "";
  const ms = Date.parse(n.finishedAt) - Date.parse(n.startedAt);
  return ms < 1_000 ? `${ms}ms` : `${(ms / 1_000).toFixed(1)}s`;
}
