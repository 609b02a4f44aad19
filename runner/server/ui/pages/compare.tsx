/**
 * Two executions side by side, to tie runs to results: what changed between their versions,
 * their inputs and outputs, and per node the task digest, how it came to be (ran, cached,
 * recovered, not run) and its outputs. Rows that differ are highlighted.
 */
import { diffVersions, type NamedChanges } from "../../../../core/diff/diff-versions.js";
import type { Store } from "../../../../db/store.js";
import type { ExecutionRecord, NodeRecord, VersionRecord } from "../../../../db/types.js";
import { nodeHow } from "../../../task-history.js";
import type { Principal } from "../../auth.js";
import type { NodesOf } from "../../finished-nodes.js";
import { Badge, Json, Page, short, shortDigest, when } from "../layout.js";
import { paths } from "../paths.js";

const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

export function comparePicker(principal: Principal, a: string, b: string, message: string | null) {
  return (
    <Page title="Compare" principal={principal} crumbs={[["compare", null]]}>
      <h1>Compare two executions</h1>
      {message ? <p class="notice">{message}</p> : null}
      <form method="get" action={paths.compare()} class="inline">
        <input type="text" name="a" value={a} placeholder="execution A" aria-label="execution A" />
        <input type="text" name="b" value={b} placeholder="execution B" aria-label="execution B" />
        <button type="submit">compare</button>
      </form>
      <p class="sub">A workflow's runs list lets you pick two runs to compare.</p>
    </Page>
  );
}

export async function comparePage(
  store: Store,
  nodesOf: NodesOf,
  principal: Principal,
  a: ExecutionRecord,
  b: ExecutionRecord,
) {
  const [na, nb, va, vb] = await Promise.all([
    nodesOf(a),
    nodesOf(b),
    store.versions.get(a.repo, a.sha),
    a.repo === b.repo && a.sha === b.sha ? null : store.versions.get(b.repo, b.sha),
  ]);
  const byA = new Map(na.map((n) => [n.nodeId, n]));
  const byB = new Map(nb.map((n) => [n.nodeId, n]));
  // B's order, then A's nodes that B lacks.
  const ids = [...nb.map((n) => n.nodeId), ...na.map((n) => n.nodeId).filter((id) => !byB.has(id))];
  const inputKeys = [...new Set([...Object.keys(a.inputs), ...Object.keys(b.inputs)])].sort();
  const outA = a.outputs ?? {};
  const outB = b.outputs ?? {};
  const outputKeys = [...new Set([...Object.keys(outA), ...Object.keys(outB)])].sort();

  return (
    <Page
      title={`Compare ${a.id} and ${b.id}`}
      principal={principal}
      crumbs={[
        [a.repo, paths.repo(a.repo)],
        ["compare", null],
      ]}
    >
      <h1>Compare</h1>
      <div class="scroll">
        <table id="sides">
          <thead>
            <tr>
              <th />
              <th>A</th>
              <th>B</th>
            </tr>
          </thead>
          <tbody>
            <tr>
              <th>execution</th>
              <td>
                <a href={paths.execution(a.id)} class="mono">
                  {a.id}
                </a>
              </td>
              <td>
                <a href={paths.execution(b.id)} class="mono">
                  {b.id}
                </a>
              </td>
            </tr>
            <Row label="workflow" a={a.workflow} b={b.workflow} />
            <tr class={a.state === b.state ? "" : "diff"}>
              <th>status</th>
              <td>
                <Badge kind={a.state} />
              </td>
              <td>
                <Badge kind={b.state} />
              </td>
            </tr>
            <Row label="commit" a={short(a.sha)} b={short(b.sha)} code />
            <Row label="created" a={when(a.createdAt)} b={when(b.createdAt)} plain />
          </tbody>
        </table>
      </div>

      <h2>Version</h2>
      <VersionDiff a={a} b={b} va={va} vb={vb} />

      <h2>Inputs</h2>
      <ValuesTable keys={inputKeys} a={a.inputs} b={b.inputs} id="inputs" />

      <h2>Outputs</h2>
      <ValuesTable keys={outputKeys} a={outA} b={outB} id="outputs" />

      <h2>Nodes</h2>
      <div class="scroll">
        <table id="compare-nodes">
          <thead>
            <tr>
              <th>node</th>
              <th>A: digest</th>
              <th>A: how</th>
              <th>A: outputs</th>
              <th>B: digest</th>
              <th>B: how</th>
              <th>B: outputs</th>
            </tr>
          </thead>
          <tbody>
            {ids.map((id) => {
              const x = byA.get(id);
              const y = byB.get(id);
              const differs =
                !x || !y || x.taskDigest !== y.taskDigest || !same(x.outputs, y.outputs);
              return (
                <tr class={differs ? "diff" : ""} data-node={id}>
                  <th>{id}</th>
                  <Side exec={a} n={x} />
                  <Side exec={b} n={y} />
                </tr>
              );
            })}
          </tbody>
        </table>
      </div>
    </Page>
  );
}

function Row(p: { label: string; a: string; b: string; code?: boolean; plain?: boolean }) {
  const cell = (v: string) => (p.code ? <code>{v}</code> : v);
  return (
    <tr class={p.plain || p.a === p.b ? "" : "diff"}>
      <th>{p.label}</th>
      <td>{cell(p.a)}</td>
      <td>{cell(p.b)}</td>
    </tr>
  );
}

function Side(p: { exec: ExecutionRecord; n: NodeRecord | undefined }) {
  const { n } = p;
  if (!n)
    return (
      <>
        <td class="sub">absent</td>
        <td />
        <td />
      </>
    );
  const how = nodeHow(n);
  return (
    <>
      <td>
        <code>{shortDigest(n.taskDigest)}</code>
      </td>
      <td data-how={how}>
        <a href={paths.execution(p.exec.id, n.nodeId)}>
          {how === "not run" ? n.state.toLowerCase() : how}
        </a>
      </td>
      <td>{n.outputs ? <Json value={n.outputs} compact /> : <span class="sub">-</span>}</td>
    </>
  );
}

function ValuesTable(p: {
  keys: string[];
  a: Record<string, unknown>;
  b: Record<string, unknown>;
  id: string;
}) {
  if (p.keys.length === 0) return <p class="sub">none</p>;
  return (
    <div class="scroll">
      <table id={p.id}>
        <thead>
          <tr>
            <th>name</th>
            <th>A</th>
            <th>B</th>
          </tr>
        </thead>
        <tbody>
          {p.keys.map((k) => (
            <tr class={same(p.a[k], p.b[k]) ? "" : "diff"}>
              <th>{k}</th>
              <td>
                <Json value={p.a[k] as never} />
              </td>
              <td>
                <Json value={p.b[k] as never} />
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function VersionDiff(p: {
  a: ExecutionRecord;
  b: ExecutionRecord;
  va: VersionRecord | null;
  vb: VersionRecord | null;
}) {
  if (p.a.repo !== p.b.repo)
    return (
      <p class="notice">
        different repositories: {p.a.repo} and {p.b.repo}
      </p>
    );
  if (p.vb === null) return <p class="sub">same commit, same version</p>;
  if (!p.va) return <p class="sub">version of A not found</p>;
  const d = diffVersions(
    { specDigest: p.va.specDigest ?? "", tasks: p.va.tasks, workflows: p.va.workflows },
    { specDigest: p.vb.specDigest ?? "", tasks: p.vb.tasks, workflows: p.vb.workflows },
  );
  return (
    <div id="version-diff">
      <p>
        <code>{short(p.a.sha)}</code> → <code>{short(p.b.sha)}</code>
        {d.equivalent ? " (equivalent: the same spec digest)" : ""}
      </p>
      <Changes label="tasks" c={d.tasks} />
      <Changes label="workflows" c={d.workflows} />
    </div>
  );
}

function Changes(p: { label: string; c: NamedChanges }) {
  const parts: Array<[string, string[]]> = [
    ["added", p.c.added],
    ["changed", p.c.changed],
    ["removed", p.c.removed],
    ["renamed", p.c.renamed.map((r) => `${r.from} → ${r.to}`)],
  ];
  const shown = parts.filter(([, names]) => names.length > 0);
  return (
    <p>
      <strong>{p.label}:</strong>{" "}
      {shown.length === 0
        ? "unchanged"
        : shown.map(([what, names]) => (
            <span>
              {what} <code>{names.join(", ")}</code>{" "}
            </span>
          ))}
    </p>
  );
}
