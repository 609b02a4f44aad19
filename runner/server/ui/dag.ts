/**
 * The execution page's graph: node positions from dagre, drawn as SVG on the server. A layout
 * depends only on the workflow's node ids and edges, which its digest covers and which never
 * change (versions are immutable), so it is computed once per workflow digest and kept: dagre
 * takes about a second for 1,000 nodes, a page render must not.
 */
import dagre from "@dagrejs/dagre";
import { raw } from "hono/html";
import type { HtmlEscapedString } from "hono/utils/html";
import type { NodeState } from "../../../db/types.js";
import type { How } from "../../task-history.js";
import { paths } from "./paths.js";

interface Point {
  x: number;
  y: number;
}

export interface Box {
  x: number;
  y: number;
  width: number;
  height: number;
}

export interface DagLayout {
  width: number;
  height: number;
  nodes: Map<string, Box>;
  edges: Array<{ from: string; to: string; points: Array<{ x: number; y: number }> }>;
}

const NODE_HEIGHT = 44;
/** Wide enough for the second line's longest text, "succeeded · recovered". */
const MIN_WIDTH = 160;
const MAX_WIDTH = 240;
/** Roughly the advance of a 13 px sans-serif character: boxes fit their node id. */
const CHAR_WIDTH = 7.6;
/** The same for the 11.5 px second line. */
const SUB_CHAR_WIDTH = 6.4;
const MARGIN = 16;
/** Up to this many nodes, dagre ranks by network simplex (a few hundred ms at most). */
const SIMPLEX_MAX_NODES = 100;
/** Layouts kept, least recently used dropped first: one per workflow digest seen lately. */
const MAX_LAYOUTS = 64;

const layouts = new Map<string, DagLayout>();

export function nodeWidth(id: string): number {
  return Math.min(MAX_WIDTH, Math.max(MIN_WIDTH, Math.ceil(id.length * CHAR_WIDTH + 28)));
}

/** The layout of `deps` (node -> the nodes it depends on), cached under `key` (a workflow digest). */
export function dagLayout(key: string, deps: ReadonlyMap<string, readonly string[]>): DagLayout {
  const hit = layouts.get(key);
  if (hit) {
    layouts.delete(key);
    layouts.set(key, hit);
    return hit;
  }
  const layout = computeLayout(deps);
  layouts.set(key, layout);
  if (layouts.size > MAX_LAYOUTS) layouts.delete(layouts.keys().next().value as string);
  return layout;
}

/** Whether a layout for `key` is at hand (the caller can skip reading the workflow). */
export function hasLayout(key: string): boolean {
  return layouts.has(key);
}

function computeLayout(deps: ReadonlyMap<string, readonly string[]>): DagLayout {
  const g = new dagre.graphlib.Graph();
  g.setGraph({
    rankdir: "TB",
    nodesep: 24,
    ranksep: 40,
    marginx: MARGIN,
    marginy: MARGIN,
    // dagre's default ranker (network simplex) draws small graphs best but grows steeply: a
    // 1,000-node layered graph took 70 s here, against under 2 s by longest path.
    ranker: deps.size <= SIMPLEX_MAX_NODES ? "network-simplex" : "longest-path",
  });
  g.setDefaultEdgeLabel(() => ({}));
  for (const id of deps.keys()) g.setNode(id, { width: nodeWidth(id), height: NODE_HEIGHT });
  for (const [id, ds] of deps) for (const d of ds) if (deps.has(d)) g.setEdge(d, id);
  dagre.layout(g);
  const nodes = new Map<string, Box>();
  for (const id of g.nodes()) {
    const n = g.node(id);
    nodes.set(id, {
      x: n.x - n.width / 2,
      y: n.y - n.height / 2,
      width: n.width,
      height: n.height,
    });
  }
  const edges = g.edges().map((e: { v: string; w: string }) => ({
    from: e.v,
    to: e.w,
    points: ((g.edge(e) as { points?: Point[] }).points ?? []).map((p) => ({ x: p.x, y: p.y })),
  }));
  const graph = g.graph();
  return {
    width: Math.ceil(graph.width ?? 0),
    height: Math.ceil(graph.height ?? 0),
    nodes,
    edges,
  };
}

export interface DagNode {
  id: string;
  task: string;
  state: NodeState;
  how: How;
}

const round = (v: number) => Math.round(v * 10) / 10;

function edgePath(points: ReadonlyArray<{ x: number; y: number }>): string {
  return points.map((p, i) => `${i === 0 ? "M" : "L"}${round(p.x)},${round(p.y)}`).join("");
}

function clip(text: string, width: number, charWidth = CHAR_WIDTH): string {
  const max = Math.floor((width - 16) / charWidth);
  return text.length <= max ? text : `${text.slice(0, Math.max(1, max - 1))}…`;
}

/** Escapes text for HTML and SVG, in element content and in quoted attribute values. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ESCAPES[c] as string);
}
const ESCAPES: Record<string, string> = {
  "&": "&amp;",
  "<": "&lt;",
  ">": "&gt;",
  '"': "&quot;",
  "'": "&#39;",
};

/** The edges drawn once per layout: they depend on nothing else. */
function edgesSvg(layout: DagLayout): string {
  const cached = edgeMarkup.get(layout);
  if (cached !== undefined) return cached;
  const parts = layout.edges.map(
    (e) =>
      `<path d="${edgePath(e.points)}" marker-end="url(#arrow)" data-edge="${escapeHtml(`${e.from}->${e.to}`)}"/>`,
  );
  const markup = parts.join("");
  edgeMarkup.set(layout, markup);
  return markup;
}
const edgeMarkup = new WeakMap<DagLayout, string>();

/**
 * The graph as SVG: each node a link to the same page with that node selected (the panel
 * renders on the server, so it works without JavaScript), coloured by state, marked ran /
 * cached / recovered. Written as a string rather than JSX: at 1,000 nodes, JSX's per-element
 * work was most of the page's render time. The selection is drawn as a frame on top, so the
 * nodes' markup (`dagNodesMarkup`) does not depend on it and can be kept for a finished run.
 */
export function dagSvg(props: {
  layout: DagLayout;
  /** From `dagNodesMarkup`. */
  nodesMarkup: string;
  selected: string | null;
}): HtmlEscapedString {
  const { layout } = props;
  const box = props.selected === null ? undefined : layout.nodes.get(props.selected);
  return raw(
    `<svg class="dag" xmlns="http://www.w3.org/2000/svg" width="${layout.width}" height="${layout.height}" viewBox="0 0 ${layout.width} ${layout.height}" role="img" aria-label="the execution's graph">` +
      '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0L10,5L0,10z" class="arrow"/></marker></defs>' +
      `<g class="edges">${edgesSvg(layout)}</g><g class="nodes">${props.nodesMarkup}</g>` +
      (box
        ? `<rect class="selection" x="${round(box.x - 3)}" y="${round(box.y - 3)}" width="${box.width + 6}" height="${box.height + 6}" rx="8" data-selected-node="${escapeHtml(props.selected as string)}"/>`
        : "") +
      "</svg>",
  );
}

/** Every node of the graph, as the `nodesMarkup` of `dagSvg`. */
export function dagNodesMarkup(
  execution: string,
  layout: DagLayout,
  nodes: readonly DagNode[],
): string {
  const out: string[] = [];
  for (const n of nodes) {
    const b = layout.nodes.get(n.id);
    if (!b) continue;
    const how = n.how === "not run" ? "" : n.how;
    const id = escapeHtml(n.id);
    const state = n.state.toLowerCase();
    out.push(
      `<a href="${escapeHtml(paths.execution(execution, n.id))}" class="node state-${state} how-${n.how.replace(" ", "-")}" data-node="${id}" data-state="${n.state}" data-how="${n.how}">`,
      `<title>${escapeHtml(`${n.id} (${n.task}): ${n.state}${how ? `, ${how}` : ""}`)}</title>`,
      `<rect x="${round(b.x)}" y="${round(b.y)}" width="${b.width}" height="${b.height}" rx="6"/>`,
      `<text x="${round(b.x + 10)}" y="${round(b.y + 18)}" class="id">${escapeHtml(clip(n.id, b.width))}</text>`,
      `<text x="${round(b.x + 10)}" y="${round(b.y + 35)}" class="sub">${escapeHtml(clip(`${state}${how ? ` · ${how}` : ""}`, b.width, SUB_CHAR_WIDTH))}</text></a>`,
    );
  }
  return out.join("");
}
