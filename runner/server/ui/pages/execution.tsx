/**
 * An execution: its graph drawn and coloured by state and marked ran / cached / recovered, its
 * inputs and outputs, and the selected node's inputs, outputs, attempts, log tail and, for a
 * reused one, the execution that computed its outputs; the artifacts its nodes read and wrote
 * (ui/artifacts.tsx), with previews. The document is the CLI's and the API's
 * (runner/documents.ts); logs and lineage are runner/reports.ts's.
 */
import { raw } from "hono/html";
import { dependencyMap } from "../../../../core/dag/workflow-deps.js";
import type { ExecutionDocument } from "../../../../core/report/document.js";
import type { Store } from "../../../../db/store.js";
import type { AttemptRecord, ExecutionRecord, NodeRecord } from "../../../../db/types.js";
import { TERMINAL_EXECUTION_STATES } from "../../../../db/types.js";
import type { BlobStore } from "../../../artifacts/store.js";
import { executionDocument } from "../../../documents.js";
import type { Executor } from "../../../executors/types.js";
import { type Lineage, type LogEntry, lineage, nodeLogs, reused } from "../../../reports.js";
import { nodeHow } from "../../../task-history.js";
import type { Principal } from "../../auth.js";
import type { NodesOf } from "../../finished-nodes.js";
import { ArtifactsSection, artifactsView } from "../artifacts.js";
import {
  type DagLayout,
  dagLayout,
  dagNodesMarkup,
  dagSvg,
  escapeHtml,
  hasLayout,
} from "../dag.js";
import { Badge, duration, Json, Page, short, shortDigest, when } from "../layout.js";
import { paths } from "../paths.js";

/** Bytes of a node's log shown on the page. */
export const LOG_TAIL = 16 * 1024;
/** Seconds between reloads while the execution is not finished. */
const REFRESH = 3;

export interface Selected {
  node: NodeRecord;
  attempts: AttemptRecord[];
  log: LogEntry | null;
  lineage: Lineage | null;
}

export async function executionPage(
  store: Store,
  executor: Pick<Executor, "logTail">,
  nodesOf: NodesOf,
  principal: Principal,
  exec: ExecutionRecord,
  selectedId: string | null,
  artifacts: BlobStore | null = null,
) {
  const nodes = await nodesOf(exec);
  const artifactList = await artifactsView(store, artifacts, exec, nodes);
  const doc = executionDocument(exec, nodes);
  const layout = dagLayout(exec.workflowDigest, await graphOf(store, exec, nodes));
  const node = selectedId ? (nodes.find((n) => n.nodeId === selectedId) ?? null) : null;
  let selected: Selected | null = null;
  if (node) {
    const [attempts, logs, lin] = await Promise.all([
      store.executions.attempts(exec.id, node.nodeId),
      nodeLogs(store, executor, exec, { node: node.nodeId, attempt: null, tail: LOG_TAIL }),
      reused(node) ? lineage(store, exec, node.nodeId) : Promise.resolve(null),
    ]);
    selected = { node, attempts, log: logs[0] ?? null, lineage: lin };
  }
  const markup = nodesMarkup(exec, layout, nodes);
  const running = !TERMINAL_EXECUTION_STATES.includes(exec.state);
  const counts = { ran: 0, cached: 0, recovered: 0, "not run": 0 };
  for (const n of nodes) counts[nodeHow(n)]++;

  return (
    <Page
      title={`${exec.workflow} ${exec.id}`}
      principal={principal}
      crumbs={[
        [exec.repo, paths.repo(exec.repo)],
        [exec.workflow, paths.runs(exec.repo, exec.workflow)],
        [exec.id, null],
      ]}
      {...(running ? { refresh: REFRESH } : {})}
    >
      <h1>
        {exec.workflow} <span class="mono sub">{exec.id}</span> <Badge kind={exec.state} />
      </h1>
      <div class="meta">
        <span>
          commit <code>{short(exec.sha)}</code>
        </span>
        <span>
          {exec.trigger.kind} by {exec.trigger.actor}
          {exec.trigger.pr ? ` (PR #${exec.trigger.pr})` : ""}
        </span>
        <span>created {when(exec.createdAt)}</span>
        {exec.finishedAt ? <span>took {duration(exec.startedAt, exec.finishedAt)}</span> : null}
        {exec.mode === "recover" ? <span>recover mode</span> : null}
        {exec.parentId ? (
          <span>
            relaunch of <a href={paths.execution(exec.parentId)}>{exec.parentId}</a> (
            <a href={paths.compare(exec.parentId, exec.id)}>compare</a>)
          </span>
        ) : null}
      </div>
      <div class="legend" id="counts">
        <Badge kind="ran">{`${counts.ran} ran`}</Badge>
        <Badge kind="cached">{`${counts.cached} cached`}</Badge>
        {counts.recovered ? (
          <Badge kind="recovered">{`${counts.recovered} recovered`}</Badge>
        ) : null}
        {counts["not run"] ? <Badge kind="skipped">{`${counts["not run"]} not run`}</Badge> : null}
      </div>
      {exec.error ? <pre class="notice error">{exec.error.message}</pre> : null}

      <div class="grid">
        <section>
          <div class="graph">
            {dagSvg({ layout, nodesMarkup: markup.graph, selected: node?.nodeId ?? null })}
          </div>
        </section>
        <section class="panel" id="node">
          {selected ? (
            <NodePanel exec={exec} selected={selected} />
          ) : (
            <ExecutionPanel
              doc={doc}
              selectedMissing={selectedId !== null && !node ? selectedId : null}
            />
          )}
        </section>
      </div>

      <h2>Nodes</h2>
      {raw(markup.table)}
      {artifactList ? <ArtifactsSection exec={exec} view={artifactList} /> : null}
    </Page>
  );
}

/** node -> its dependencies: read from the version only when the layout is not cached yet. */
async function graphOf(
  store: Store,
  exec: ExecutionRecord,
  nodes: readonly NodeRecord[],
): Promise<Map<string, string[]>> {
  if (hasLayout(exec.workflowDigest)) return new Map();
  try {
    const wf = await store.versions.resolveWorkflow(exec.repo, exec.sha, exec.workflow);
    return dependencyMap(wf.spec);
  } catch {
    // The version cannot be read (it always can: versions are immutable); draw the nodes alone.
    return new Map(nodes.map((n) => [n.nodeId, []]));
  }
}

function ExecutionPanel(p: { doc: ExecutionDocument; selectedMissing: string | null }) {
  return (
    <>
      {p.selectedMissing ? (
        <p class="notice">this execution has no node "{p.selectedMissing}"</p>
      ) : (
        <p class="sub">Select a node for its inputs, outputs, attempts and log.</p>
      )}
      <h3>Inputs</h3>
      <KeyValues values={p.doc.inputs} />
      <h3>Outputs</h3>
      <KeyValues values={p.doc.outputs ?? {}} />
    </>
  );
}

export function KeyValues(p: { values: Record<string, unknown> | null }) {
  const entries = Object.entries(p.values ?? {});
  if (entries.length === 0) return <p class="sub">none</p>;
  return (
    <dl class="kv">
      {entries.map(([k, v]) => (
        <>
          <dt>{k}</dt>
          <dd>
            <Json value={v as never} />
          </dd>
        </>
      ))}
    </dl>
  );
}

function NodePanel(p: { exec: ExecutionRecord; selected: Selected }) {
  const { node: n, attempts, log, lineage: lin } = p.selected;
  const how = nodeHow(n);
  const computed = lin?.computedBy ?? null;
  return (
    <>
      <h2 class="first" data-selected={n.nodeId}>
        {n.nodeId} <span class="sub">({n.taskName})</span> <Badge kind={n.state} />{" "}
        {how === "not run" ? null : <Badge kind={how} />}
      </h2>
      {lin ? (
        <div class="notice" id="lineage">
          {computed ? (
            <>
              Outputs {how === "recovered" ? "recovered" : "served from the cache"}: computed by{" "}
              <a
                href={paths.execution(computed.execution, computed.node)}
                data-lineage={computed.execution}
              >
                execution {computed.execution}
              </a>{" "}
              (node {computed.node}, commit <code>{short(computed.sha)}</code>, finished{" "}
              {when(computed.finishedAt)})
            </>
          ) : (
            <>The execution that computed these outputs is unknown: {lin.problem ?? "it failed"}</>
          )}
        </div>
      ) : null}
      {n.error ? (
        <pre class="notice error">
          {n.error.reason ? `${n.error.reason}: ` : ""}
          {n.error.message}
        </pre>
      ) : null}
      <dl class="kv">
        <dt>task digest</dt>
        <dd>
          <code>{shortDigest(n.taskDigest)}</code>
        </dd>
        <dt>cache</dt>
        <dd>
          {n.cacheStatus ?? "-"} {n.cacheKey ? <code>{shortDigest(n.cacheKey)}</code> : null}
        </dd>
        <dt>attempts</dt>
        <dd>{n.attempts}</dd>
        <dt>took</dt>
        <dd>{reused(n) ? "-" : duration(n.startedAt, n.finishedAt) || "-"}</dd>
      </dl>
      <h3>Inputs</h3>
      <KeyValues values={n.inputs} />
      <h3>Outputs</h3>
      <KeyValues values={n.outputs} />
      <h3>Attempts</h3>
      {attempts.length === 0 ? (
        <p class="sub">{reused(n) ? "none here: its outputs were reused" : "none"}</p>
      ) : (
        <div class="scroll">
          <table id="attempts">
            <thead>
              <tr>
                <th>#</th>
                <th>state</th>
                <th>started</th>
                <th>took</th>
                <th>exit</th>
                <th>why</th>
              </tr>
            </thead>
            <tbody>
              {attempts.map((a) => (
                <tr>
                  <td>{a.attempt}</td>
                  <td>
                    <Badge kind={a.state} />
                  </td>
                  <td>{when(a.startedAt)}</td>
                  <td>{duration(a.startedAt, a.finishedAt)}</td>
                  <td>{a.exitCode ?? ""}</td>
                  <td>{a.errorReason ?? ""}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      <h3>Log{log?.attempt ? ` of attempt ${log.attempt}` : ""}</h3>
      {log?.log != null ? (
        <>
          {log.truncated ? <p class="sub">the last {LOG_TAIL / 1024} KiB</p> : null}
          <pre id="log">{log.log}</pre>
        </>
      ) : (
        <p class="sub">
          {reused(n) && computed ? (
            <>
              the log is{" "}
              <a href={paths.execution(computed.execution, computed.node)}>
                the computing execution's
              </a>
            </>
          ) : (
            "no log"
          )}
        </p>
      )}
    </>
  );
}

/**
 * The graph's nodes and the node table, kept as long as the node list is: a finished run's list
 * is kept (finished-nodes.ts) and the same for every visitor, a running one's is read anew.
 */
const markups = new WeakMap<readonly NodeRecord[], { graph: string; table: string }>();

function nodesMarkup(exec: ExecutionRecord, layout: DagLayout, nodes: readonly NodeRecord[]) {
  let m = markups.get(nodes);
  if (!m) {
    const graph = dagNodesMarkup(
      exec.id,
      layout,
      nodes.map((n) => ({ id: n.nodeId, task: n.taskName, state: n.state, how: nodeHow(n) })),
    );
    m = { graph, table: nodeTable(exec, nodes) };
    markups.set(nodes, m);
  }
  return m;
}

/** One row per node, written as a string for the same reason as the graph (dag.ts). */
function nodeTable(exec: ExecutionRecord, nodes: readonly NodeRecord[]): string {
  const badge = (kind: string, text = kind.toLowerCase()) =>
    `<span class="badge ${kind.toLowerCase().replace(" ", "-")}">${escapeHtml(text)}</span>`;
  const out = [
    '<div class="scroll"><table id="nodes"><thead><tr><th>node</th><th>task</th><th>state</th><th>how</th><th class="hide-narrow">attempts</th><th class="hide-narrow">took</th></tr></thead><tbody>',
  ];
  for (const n of nodes) {
    const how = nodeHow(n);
    const id = escapeHtml(n.nodeId);
    const source = n.source
      ? ` <span class="sub">from</span> <a href="${escapeHtml(paths.execution(n.source.execution, n.source.node))}" class="mono">${escapeHtml(n.source.execution)}</a>`
      : "";
    out.push(
      `<tr data-node="${id}" data-how="${how}">`,
      `<td><a href="${escapeHtml(paths.execution(exec.id, n.nodeId))}">${id}</a></td>`,
      `<td>${escapeHtml(n.taskName)}</td><td>${badge(n.state)}</td>`,
      `<td>${how === "not run" ? '<span class="sub">not run</span>' : badge(how)}${source}</td>`,
      `<td class="hide-narrow">${n.attempts}</td>`,
      `<td class="hide-narrow">${reused(n) ? "" : escapeHtml(duration(n.startedAt, n.finishedAt))}</td></tr>`,
    );
  }
  out.push("</tbody></table></div>");
  return out.join("");
}
