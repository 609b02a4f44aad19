import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  dependants,
  downstream,
  findCycles,
  readySet,
  topologicalOrder,
} from "../../../core/dag/graph.js";

const g = (o: Record<string, string[]>) => new Map(Object.entries(o));

/** Random DAGs: node i may depend only on nodes < i, so there is never a cycle. */
const dag = fc
  .integer({ min: 1, max: 40 })
  .chain((n) =>
    fc
      .array(fc.array(fc.nat({ max: n - 1 }), { maxLength: 4 }), { minLength: n, maxLength: n })
      .map((edges) =>
        g(
          Object.fromEntries(
            edges.map((ds, i) => [
              `n${i}`,
              [...new Set(ds.filter((d) => d < i))].map((d) => `n${d}`),
            ]),
          ),
        ),
      ),
  );

describe("dag", () => {
  it("orders every node after its dependencies (property)", () => {
    fc.assert(
      fc.property(dag, (deps) => {
        const order = topologicalOrder(deps);
        expect(order).not.toBeNull();
        const pos = new Map(order?.map((id, i) => [id, i]));
        expect(pos.size).toBe(deps.size);
        for (const [id, ds] of deps)
          for (const d of ds) expect(pos.get(d)).toBeLessThan(pos.get(id) as number);
        expect(findCycles(deps)).toEqual([]);
      }),
    );
  });

  it("finds a cycle exactly when there is no order (property)", () => {
    fc.assert(
      fc.property(dag, fc.nat(), fc.nat(), (deps, a, b) => {
        const ids = [...deps.keys()];
        const from = ids[a % ids.length] as string;
        const to = ids[b % ids.length] as string;
        const withBackEdge = new Map(deps);
        withBackEdge.set(from, [...(deps.get(from) ?? []), to]);
        const order = topologicalOrder(withBackEdge);
        const cycles = findCycles(withBackEdge);
        expect(order === null).toBe(cycles.length > 0);
        for (const c of cycles) {
          expect(c[0]).toBe(c[c.length - 1]);
          for (let i = 0; i + 1 < c.length; i++)
            expect(withBackEdge.get(c[i] as string)).toContain(c[i + 1]);
        }
      }),
    );
  });

  it("handles a 10,000-node chain without recursion", () => {
    const deps = g(
      Object.fromEntries(
        Array.from({ length: 10_000 }, (_, i) => [`n${i}`, i === 0 ? [] : [`n${i - 1}`]]),
      ),
    );
    expect(topologicalOrder(deps)?.at(-1)).toBe("n9999");
    deps.set("n0", ["n9999"]);
    expect(findCycles(deps)[0]).toHaveLength(10_001);
  });

  it("computes dependants, the ready set and downstream nodes", () => {
    const deps = g({ a: [], b: ["a"], c: ["a"], d: ["b", "c"] });
    expect(dependants(deps).get("a")).toEqual(["b", "c"]);
    const states = new Map([
      ["a", "SUCCEEDED"],
      ["b", "PENDING"],
      ["c", "RUNNING"],
      ["d", "PENDING"],
    ]);
    expect(readySet(deps, states)).toEqual(["b"]);
    expect(downstream(deps, "b")).toEqual(["d"]);
    expect(downstream(deps, "a")).toEqual(["b", "c", "d"]);
  });
});
