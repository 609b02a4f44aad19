import type { WorkflowSpec } from "../spec/types.js";

/** Each node's dependencies: the nodes its bindings reference, plus `after`. */
export function dependencyMap(wf: WorkflowSpec): Map<string, string[]> {
  const deps = new Map<string, string[]>();
  for (const [id, node] of Object.entries(wf.nodes)) {
    const set = new Set(node.after);
    for (const b of Object.values(node.inputs)) if (b.kind === "output") set.add(b.node);
    deps.set(id, [...set].sort());
  }
  return deps;
}
