/**
 * A workflow graph as plain data: node id -> the ids it depends on. Everything here is
 * iterative, because a workflow may hold 10,000 nodes and recursion that deep overflows.
 */

export type Deps = ReadonlyMap<string, readonly string[]>;

/** Dependencies of each node of a workflow: referenced nodes plus `after`, sorted, unique. */
export function dependants(deps: Deps): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const id of deps.keys()) out.set(id, []);
  for (const [id, ds] of deps) {
    for (const d of ds) out.get(d)?.push(id);
  }
  for (const list of out.values()) list.sort();
  return out;
}

/**
 * Kahn's algorithm with a sorted frontier, so the order is deterministic. Returns null when
 * the graph has a cycle (use `findCycles` to say which).
 */
export function topologicalOrder(deps: Deps): string[] | null {
  const remaining = new Map<string, number>();
  for (const [id, ds] of deps) remaining.set(id, ds.filter((d) => deps.has(d)).length);
  const next = dependants(deps);
  let frontier = [...remaining]
    .filter(([, n]) => n === 0)
    .map(([id]) => id)
    .sort();
  const order: string[] = [];
  while (frontier.length > 0) {
    const freed: string[] = [];
    for (const id of frontier) {
      order.push(id);
      for (const d of next.get(id) ?? []) {
        const n = (remaining.get(d) ?? 0) - 1;
        remaining.set(d, n);
        if (n === 0) freed.push(d);
      }
    }
    frontier = freed.sort();
  }
  return order.length === deps.size ? order : null;
}

/**
 * One cycle per strongly connected component that has one, as a path that starts and ends
 * on the same node (["a", "b", "a"]), each starting at its smallest id. Tarjan's algorithm,
 * written with an explicit stack.
 */
export function findCycles(deps: Deps): string[][] {
  let counter = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const onStack = new Set<string>();
  const stack: string[] = [];
  const components: string[][] = [];
  const edges = (id: string) => (deps.get(id) ?? []).filter((d) => deps.has(d));

  for (const root of [...deps.keys()].sort()) {
    if (index.has(root)) continue;
    const work: Array<{ id: string; next: number }> = [{ id: root, next: 0 }];
    index.set(root, counter);
    low.set(root, counter++);
    stack.push(root);
    onStack.add(root);
    while (work.length > 0) {
      const frame = work[work.length - 1] as { id: string; next: number };
      const out = edges(frame.id);
      if (frame.next < out.length) {
        const w = out[frame.next++] as string;
        if (!index.has(w)) {
          index.set(w, counter);
          low.set(w, counter++);
          stack.push(w);
          onStack.add(w);
          work.push({ id: w, next: 0 });
        } else if (onStack.has(w)) {
          low.set(frame.id, Math.min(low.get(frame.id) as number, index.get(w) as number));
        }
        continue;
      }
      work.pop();
      const parent = work[work.length - 1];
      if (parent)
        low.set(parent.id, Math.min(low.get(parent.id) as number, low.get(frame.id) as number));
      if (low.get(frame.id) === index.get(frame.id)) {
        const component: string[] = [];
        let w: string | undefined;
        do {
          w = stack.pop() as string;
          onStack.delete(w);
          component.push(w);
        } while (w !== frame.id);
        const selfLoop = component.length === 1 && edges(frame.id).includes(frame.id);
        if (component.length > 1 || selfLoop) components.push(component);
      }
    }
  }
  return components
    .map((c) => cyclePath(c, edges))
    .sort((a, b) => (a[0] ?? "").localeCompare(b[0] ?? ""));
}

/** A simple cycle inside one strongly connected component, by breadth-first search. */
function cyclePath(component: string[], edges: (id: string) => string[]): string[] {
  const members = new Set(component);
  const start = [...component].sort()[0] as string;
  const prev = new Map<string, string>();
  const queue = [start];
  for (let i = 0; i < queue.length; i++) {
    const id = queue[i] as string;
    for (const w of [...edges(id)].sort()) {
      if (!members.has(w)) continue;
      if (w === start) {
        const path = [start];
        for (let at: string | undefined = id; at !== undefined && at !== start; at = prev.get(at))
          path.splice(1, 0, at);
        path.push(start);
        return path;
      }
      if (!prev.has(w)) {
        prev.set(w, id);
        queue.push(w);
      }
    }
  }
  return [start, start];
}

/**
 * Nodes whose dependencies have all succeeded and that are not yet started. `states` holds the
 * state of every node; only "SUCCEEDED" satisfies a dependency.
 */
export function readySet(deps: Deps, states: ReadonlyMap<string, string>): string[] {
  const ready: string[] = [];
  for (const [id, ds] of deps) {
    if (states.get(id) !== "PENDING") continue;
    if (ds.every((d) => states.get(d) === "SUCCEEDED")) ready.push(id);
  }
  return ready.sort();
}

/** Every node reachable downstream of `from` (not including it). */
export function downstream(deps: Deps, from: string): string[] {
  const next = dependants(deps);
  const seen = new Set<string>();
  const queue = [...(next.get(from) ?? [])];
  while (queue.length > 0) {
    const id = queue.pop() as string;
    if (seen.has(id)) continue;
    seen.add(id);
    for (const after of next.get(id) ?? []) queue.push(after);
  }
  return [...seen].sort();
}
