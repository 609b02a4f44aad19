/**
 * An execution's nodes in order (`orderedNodes`), kept once the execution has finished: nothing
 * writes a node of a finished execution again (relaunches are new executions; evicting the cache
 * deletes entries, not node records), so what was read is what a read would return. Reading and
 * ordering 1,000 nodes is most of an execution page's cost (runner/server/README.md); people
 * look at finished runs far more often than at running ones.
 */
import type { Store } from "../../db/store.js";
import type { ExecutionRecord, NodeRecord } from "../../db/types.js";
import { TERMINAL_EXECUTION_STATES } from "../../db/types.js";
import { orderedNodes } from "../documents.js";

/** Nodes kept across all executions; the least recently viewed executions are dropped first. */
const MAX_NODES = 20_000;

export type NodesOf = (exec: ExecutionRecord) => Promise<NodeRecord[]>;

export function finishedNodes(store: Store, maxNodes = MAX_NODES): NodesOf {
  const kept = new Map<string, NodeRecord[]>();
  let size = 0;
  return async (exec) => {
    const hit = kept.get(exec.id);
    if (hit) {
      kept.delete(exec.id);
      kept.set(exec.id, hit);
      return hit;
    }
    const nodes = await orderedNodes(store, exec);
    if (!TERMINAL_EXECUTION_STATES.includes(exec.state) || nodes.length > maxNodes) return nodes;
    kept.set(exec.id, nodes);
    size += nodes.length;
    for (const [id, old] of kept) {
      if (size <= maxNodes) break;
      kept.delete(id);
      size -= old.length;
    }
    return nodes;
  };
}
