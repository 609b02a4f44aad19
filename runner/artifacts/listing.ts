/**
 * The artifacts an execution read and wrote, node by node, with where each was first produced:
 * what `reprise artifacts ls`, the API and the execution page show.
 */
import { type ArtifactRef, artifactsOf } from "../../core/artifacts/ref.js";
import type { Store } from "../../db/store.js";
import type { ArtifactRecord, ExecutionRecord, NodeRecord } from "../../db/types.js";

export interface ExecutionArtifact {
  node: string;
  direction: "input" | "output";
  name: string;
  ref: ArtifactRef;
  /** Where the bytes were first produced; null for an upload (or a record gc removed). */
  producer: ArtifactRecord["producer"];
  uploadedBy: string | null;
}

export async function executionArtifacts(
  store: Store,
  exec: ExecutionRecord,
  nodes: readonly NodeRecord[],
): Promise<ExecutionArtifact[]> {
  const wf = await store.versions.resolveWorkflow(exec.repo, exec.sha, exec.workflow);
  const found: Omit<ExecutionArtifact, "producer" | "uploadedBy">[] = [];
  for (const n of nodes) {
    const task = wf.tasks[n.taskName]?.spec;
    if (!task) continue;
    for (const { name, ref } of artifactsOf(task.inputs, n.inputs))
      found.push({ node: n.nodeId, direction: "input", name, ref });
    for (const { name, ref } of artifactsOf(task.outputs, n.outputs))
      found.push({ node: n.nodeId, direction: "output", name, ref });
  }
  const records = await store.artifacts.getMany(
    exec.repo,
    found.map((f) => f.ref.artifact),
  );
  return found.map((f) => {
    const r = records.get(f.ref.artifact);
    return { ...f, producer: r?.producer ?? null, uploadedBy: r?.uploadedBy ?? null };
  });
}
