/**
 * The UI's stylesheet and icon, served by the app itself (no external requests, no build step: it
 * is a string in the compiled code, so `tsc` output carries it). Each URL carries a digest of the
 * content, so it can be cached for good.
 */
import { createHash } from "node:crypto";

const CSS = `
:root {
  --fg: #1f2328; --muted: #59636e; --bg: #ffffff; --panel: #f6f8fa; --line: #d1d9e0;
  --link: #0969da; --ok: #1a7f37; --ok-bg: #dafbe1; --bad: #cf222e; --bad-bg: #ffebe9;
  --run: #0969da; --run-bg: #ddf4ff; --wait: #6e7781; --wait-bg: #f6f8fa; --warn: #9a6700;
  --warn-bg: #fff8c5; --cached: #8250df; --cached-bg: #fbefff;
  font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
  font-size: 14px; line-height: 1.45; color: var(--fg); background: var(--bg);
}
* { box-sizing: border-box; }
body { margin: 0; }
a { color: var(--link); text-decoration: none; }
a:hover { text-decoration: underline; }
code.cell { display: inline-block; max-width: 32ch; white-space: nowrap; overflow: hidden;
  text-overflow: ellipsis; vertical-align: top; }
code, pre, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12.5px; }
header.top { display: flex; flex-wrap: wrap; gap: 8px 16px; align-items: center; padding: 10px 16px;
  border-bottom: 1px solid var(--line); background: var(--panel); }
header.top .brand { font-weight: 700; color: var(--fg); }
header.top nav { display: flex; flex-wrap: wrap; gap: 4px 12px; flex: 1; min-width: 0; }
header.top nav a { overflow-wrap: anywhere; }
header.top form { margin: 0; }
main { padding: 16px; max-width: 1400px; margin: 0 auto; }
h1 { font-size: 20px; margin: 0 0 4px; overflow-wrap: anywhere; }
h2 { font-size: 16px; margin: 24px 0 8px; }
h3 { font-size: 14px; margin: 16px 0 6px; }
.first { margin-top: 0; }
.sub { color: var(--muted); }
.meta { display: flex; flex-wrap: wrap; gap: 4px 16px; color: var(--muted); margin: 4px 0 12px; }
.scroll { overflow-x: auto; -webkit-overflow-scrolling: touch; max-width: 100%; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 6px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { font-weight: 600; color: var(--muted); white-space: nowrap; background: var(--panel); }
td.num { text-align: right; }
tr.diff td { background: var(--warn-bg); }
.badge { display: inline-block; padding: 0 8px; border-radius: 10px; font-size: 12px; font-weight: 600;
  white-space: nowrap; border: 1px solid transparent; }
.badge.succeeded { color: var(--ok); background: var(--ok-bg); }
.badge.failed, .badge.aborted { color: var(--bad); background: var(--bad-bg); }
.badge.running, .badge.aborting { color: var(--run); background: var(--run-bg); }
.badge.queued, .badge.pending, .badge.skipped { color: var(--wait); background: var(--wait-bg); border-color: var(--line); }
.badge.cached, .badge.recovered { color: var(--cached); background: var(--cached-bg); }
.badge.ran { color: var(--fg); background: var(--panel); border-color: var(--line); }
.badge.rollback { color: var(--warn); background: var(--warn-bg); }
.badge.production { color: var(--ok); background: var(--ok-bg); }
.grid { display: grid; grid-template-columns: minmax(0, 3fr) minmax(0, 2fr); gap: 16px; align-items: start; }
.cols2 { display: grid; grid-template-columns: 1fr 1fr; gap: 16px; }
.panel { border: 1px solid var(--line); border-radius: 8px; padding: 12px; background: var(--bg); min-width: 0; }
.graph { border: 1px solid var(--line); border-radius: 8px; overflow: auto; max-height: 75vh; background: var(--panel); }
.graph svg { display: block; margin: 0 auto; }
pre { background: var(--panel); border: 1px solid var(--line); border-radius: 6px; padding: 8px;
  overflow: auto; max-height: 320px; white-space: pre-wrap; overflow-wrap: anywhere; margin: 4px 0; }
dl.kv { display: grid; grid-template-columns: max-content minmax(0, 1fr); gap: 2px 12px; margin: 0; }
dl.kv dt { color: var(--muted); }
dl.kv dd { margin: 0; overflow-wrap: anywhere; }
ul.plain { list-style: none; padding: 0; margin: 0; }
ul.plain li { padding: 2px 0; }
.notice { padding: 8px 12px; border-radius: 6px; background: var(--warn-bg); border: 1px solid #d4a72c66; margin: 8px 0; }
.error { background: var(--bad-bg); border-color: #ff818266; }
form.inline { display: flex; flex-wrap: wrap; gap: 8px; align-items: center; }
input[type=text], input[type=password] { padding: 6px 8px; border: 1px solid var(--line); border-radius: 6px;
  font: inherit; min-width: 0; }
button { padding: 6px 12px; border: 1px solid var(--line); border-radius: 6px; background: var(--panel);
  font: inherit; cursor: pointer; }
button.link { border: 0; background: none; color: var(--link); padding: 0; }
svg.dag .edges path { fill: none; stroke: #8c959f; stroke-width: 1.4; }
svg.dag .arrow { fill: #8c959f; }
svg.dag .node rect { fill: var(--wait-bg); stroke: var(--wait); stroke-width: 1.5; }
svg.dag .node text { font-size: 13px; fill: var(--fg); }
svg.dag .node text.id { font-weight: 600; }
svg.dag .node text.sub { font-size: 11.5px; fill: var(--muted); }
svg.dag .node.state-succeeded rect { fill: var(--ok-bg); stroke: var(--ok); }
svg.dag .node.state-failed rect, svg.dag .node.state-aborted rect { fill: var(--bad-bg); stroke: var(--bad); }
svg.dag .node.state-running rect, svg.dag .node.state-queued rect { fill: var(--run-bg); stroke: var(--run); }
svg.dag .node.state-skipped rect { stroke-dasharray: 4 3; }
svg.dag .node.how-cached rect, svg.dag .node.how-recovered rect { fill: var(--cached-bg); stroke: var(--cached); stroke-dasharray: 6 3; }
svg.dag .selection { fill: none; stroke: var(--fg); stroke-width: 2; pointer-events: none; }
svg.dag a.node:hover rect { stroke-width: 2.5; }
.legend { display: flex; flex-wrap: wrap; gap: 6px 10px; margin: 6px 0; }
@media (max-width: 900px) {
  .grid, .cols2 { grid-template-columns: minmax(0, 1fr); }
}
@media (max-width: 480px) {
  main { padding: 10px; }
  th, td { padding: 5px 6px; }
  .hide-narrow { display: none; }
}
`;

export interface Asset {
  path: string;
  body: string;
  contentType: string;
}

/** A DAG of three nodes: the browser asks for an icon, and gets one from here. */
const ICON = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><path d="M9 9L16 23M23 9L16 23" stroke="#59636e" stroke-width="2.5"/><circle cx="9" cy="8" r="5" fill="#8250df"/><circle cx="23" cy="8" r="5" fill="#8250df"/><circle cx="16" cy="24" r="6" fill="#1a7f37"/></svg>`;

const digest = (body: string) => createHash("sha256").update(body).digest("hex").slice(0, 12);

export const STYLESHEET: Asset = {
  path: `style-${digest(CSS)}.css`,
  body: CSS,
  contentType: "text/css; charset=utf-8",
};

export const FAVICON: Asset = {
  path: `icon-${digest(ICON)}.svg`,
  body: ICON,
  contentType: "image/svg+xml",
};

export const ASSETS: readonly Asset[] = [STYLESHEET, FAVICON];
