/** The execution page's graph: dagre's layout, kept per workflow digest, drawn as escaped SVG. */
import { describe, expect, it } from "vitest";
import {
  dagLayout,
  dagNodesMarkup,
  dagSvg,
  escapeHtml,
  hasLayout,
} from "../../runner/server/ui/dag.js";

const SEED = new Map<string, string[]>([
  ["prepare", []],
  ["featurize", ["prepare"]],
  ["train", ["featurize"]],
  ["evaluate", ["featurize", "train"]],
]);

describe("dagLayout", () => {
  it("places every node once, each below the nodes it depends on, with an edge per dependency", () => {
    const layout = dagLayout("sha256:seed", SEED);
    expect([...layout.nodes.keys()].sort()).toEqual(["evaluate", "featurize", "prepare", "train"]);
    const y = (id: string) => layout.nodes.get(id)?.y as number;
    for (const [id, deps] of SEED) for (const d of deps) expect(y(d)).toBeLessThan(y(id));
    expect(layout.edges.map((e) => `${e.from}->${e.to}`).sort()).toEqual([
      "featurize->evaluate",
      "featurize->train",
      "prepare->featurize",
      "train->evaluate",
    ]);
    for (const b of layout.nodes.values()) {
      expect(b.x).toBeGreaterThanOrEqual(0);
      expect(b.x + b.width).toBeLessThanOrEqual(layout.width);
      expect(b.y + b.height).toBeLessThanOrEqual(layout.height);
    }
  });

  it("computes a workflow digest's layout once and hands the same one back", () => {
    expect(hasLayout("sha256:once")).toBe(false);
    const first = dagLayout("sha256:once", SEED);
    expect(hasLayout("sha256:once")).toBe(true);
    // The graph is not read again: the digest names it.
    expect(dagLayout("sha256:once", new Map())).toBe(first);
  });

  it("lays out a few hundred nodes without dagre's network simplex, keeping dependencies above", () => {
    const deps = new Map<string, string[]>();
    for (let l = 0; l < 15; l++)
      for (let i = 0; i < 10; i++)
        deps.set(`n${l}-${i}`, l === 0 ? [] : [`n${l - 1}-${i}`, `n${l - 1}-${(i + 1) % 10}`]);
    const layout = dagLayout("sha256:big", deps);
    expect(layout.nodes.size).toBe(150);
    const y = (id: string) => layout.nodes.get(id)?.y as number;
    expect(y("n0-0")).toBeLessThan(y("n1-0"));
    expect(y("n13-4")).toBeLessThan(y("n14-3"));
  });
});

describe("dagSvg", () => {
  it("links each node to its panel and marks its state and how it came to be", () => {
    const layout = dagLayout("sha256:seed", SEED);
    const nodesMarkup = dagNodesMarkup("e1", layout, [
      { id: "prepare", task: "prepare", state: "SUCCEEDED", how: "cached" },
      { id: "featurize", task: "featurize", state: "SUCCEEDED", how: "recovered" },
      { id: "train", task: "train", state: "FAILED", how: "ran" },
      { id: "evaluate", task: "evaluate", state: "SKIPPED", how: "not run" },
    ]);
    const svg = String(dagSvg({ layout, nodesMarkup, selected: "train" }));
    expect(svg).toContain(
      '<a href="/executions/e1?node=prepare#node" class="node state-succeeded how-cached" data-node="prepare" data-state="SUCCEEDED" data-how="cached">',
    );
    expect(svg).toContain('class="node state-failed how-ran"');
    expect(svg).toMatch(/<rect class="selection" [^>]*data-selected-node="train"\/><\/svg>$/);
    expect(svg).toContain('class="node state-skipped how-not-run"');
    expect(svg).toContain("succeeded · recovered");
    expect(svg.match(/data-edge="/g)).toHaveLength(4);
  });

  it("escapes what it writes into markup", () => {
    expect(escapeHtml(`<a href="x">&'`)).toBe("&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
  });
});
