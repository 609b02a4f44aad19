/**
 * A repository: its versions (commit, branch, message, tasks changed against the first parent),
 * the production pointer and its history (rollbacks marked), its workflows and tasks, and the
 * latest executions.
 */
import { diffVersions, type NamedChanges } from "../../../../core/diff/diff-versions.js";
import type { Store } from "../../../../db/store.js";
import type { Activation, ExecutionRecord, VersionRecord } from "../../../../db/types.js";
import type { Principal } from "../../auth.js";
import { Badge, duration, Page, short, subject, when } from "../layout.js";
import { paths } from "../paths.js";

const VERSIONS = 50;
const RECENT_RUNS = 20;

export const isRollback = (a: Pick<Activation, "reason">) => a.reason.startsWith("rollback to");

export interface VersionRow {
  version: VersionRecord;
  /** Against the first parent; null when the parent is not registered here. */
  changes: NamedChanges | null;
  /** An earlier version in the list with the same spec digest (a revert). */
  identicalTo: string | null;
}

export async function repoPage(store: Store, principal: Principal, repo: string) {
  const [versions, history, workflows, recent] = await Promise.all([
    store.versions.list(repo, { limit: VERSIONS }),
    store.production.history(repo, VERSIONS),
    store.executions.workflowSummary(repo),
    store.executions.list({ repo, limit: RECENT_RUNS }),
  ]);
  const rows = await versionRows(store, repo, versions);
  const current = history[0] ?? null;
  const latest = rows.find((r) => r.version.status === "registered")?.version ?? null;
  const taskSource = current
    ? ((await store.versions.get(repo, current.sha)) ?? latest)
    : latest && (await store.versions.get(repo, latest.sha));
  const workflowNames = [
    ...new Set([...workflows.map((w) => w.workflow), ...Object.keys(taskSource?.workflows ?? {})]),
  ].sort();
  const runsOf = new Map(workflows.map((w) => [w.workflow, w]));

  return (
    <Page title={repo} principal={principal} crumbs={[[repo, null]]}>
      <h1>{repo}</h1>
      <div class="meta">
        <span>
          production:{" "}
          {current ? (
            <>
              <code>{short(current.sha)}</code> since {when(current.activatedAt)}
            </>
          ) : (
            "none yet"
          )}
        </span>
        <span>{versions.length} version(s) shown</span>
      </div>

      <div class="cols2">
        <section>
          <h2>Workflows</h2>
          {workflowNames.length === 0 ? (
            <p class="sub">none</p>
          ) : (
            <ul class="plain">
              {workflowNames.map((w) => {
                const s = runsOf.get(w);
                return (
                  <li>
                    <a href={paths.runs(repo, w)}>{w}</a>{" "}
                    <span class="sub">
                      {s ? `${s.executions} run(s), last ${when(s.lastAt)}` : "no runs yet"}
                    </span>
                  </li>
                );
              })}
            </ul>
          )}
        </section>
        <section>
          <h2>Tasks{taskSource ? ` at ${short(taskSource.sha)}` : ""}</h2>
          {taskSource ? (
            <ul class="plain">
              {Object.keys(taskSource.tasks).map((t) => (
                <li>
                  <a href={paths.task(repo, t)}>{t}</a> <span class="sub">history</span>
                </li>
              ))}
            </ul>
          ) : (
            <p class="sub">no registered version</p>
          )}
        </section>
      </div>

      <h2>Versions</h2>
      <div class="scroll">
        <table id="versions">
          <thead>
            <tr>
              <th>commit</th>
              <th>branch</th>
              <th>message</th>
              <th>tasks changed</th>
              <th class="hide-narrow">registered</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((r) => (
              <tr data-sha={r.version.sha}>
                <td>
                  <code>{short(r.version.sha)}</code>{" "}
                  {r.version.sha === current?.sha ? <Badge kind="production" /> : null}
                </td>
                <td>{r.version.ref ?? "-"}</td>
                <td>{subject(r.version.message)}</td>
                <td>
                  <Changes row={r} />
                </td>
                <td class="hide-narrow">{when(r.version.registeredAt)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>

      <h2>Production history</h2>
      {history.length === 0 ? (
        <p class="sub">no activation yet</p>
      ) : (
        <div class="scroll">
          <table id="production">
            <thead>
              <tr>
                <th>when</th>
                <th>version</th>
                <th>from</th>
                <th>by</th>
                <th>why</th>
              </tr>
            </thead>
            <tbody>
              {history.map((a) => (
                <tr data-rollback={isRollback(a) ? "true" : "false"}>
                  <td>{when(a.activatedAt)}</td>
                  <td>
                    <code>{short(a.sha)}</code>
                  </td>
                  <td>
                    <code>{short(a.previousSha)}</code>
                  </td>
                  <td>{a.actor}</td>
                  <td>
                    {isRollback(a) ? <Badge kind="rollback" /> : null} {a.reason}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}

      <h2>Latest executions</h2>
      <ExecutionTable rows={recent} />
    </Page>
  );
}

function Changes(p: { row: VersionRow }) {
  const { version: v, changes, identicalTo } = p.row;
  if (v.status !== "registered")
    return <span class="badge failed">invalid ({v.errors.length} errors)</span>;
  if (!changes) return <span class="sub">first registered</span>;
  const parts: string[] = [
    ...changes.added.map((t) => `+${t}`),
    ...changes.changed.map((t) => `~${t}`),
    ...changes.removed.map((t) => `-${t}`),
    ...changes.renamed.map((r) => `${r.from}→${r.to}`),
  ];
  return (
    <span>
      {parts.length === 0 ? <span class="sub">none</span> : <code>{parts.join(" ")}</code>}
      {identicalTo ? <span class="sub"> identical to {short(identicalTo)}</span> : null}
    </span>
  );
}

/** Each version's task changes against its first parent, in two queries for the whole page. */
export async function versionRows(
  store: Store,
  repo: string,
  versions: readonly VersionRecord[],
): Promise<VersionRow[]> {
  const parents = versions.flatMap((v) => (v.parents[0] ? [v.parents[0]] : []));
  const digests = await store.versions.taskDigests(repo, [
    ...versions.map((v) => v.sha),
    ...parents,
  ]);
  // Oldest first, so "identical to" names the earliest.
  const firstBySpec = new Map<string, string>();
  for (const v of [...versions].reverse())
    if (v.specDigest && !firstBySpec.has(v.specDigest)) firstBySpec.set(v.specDigest, v.sha);
  return versions.map((v) => {
    const parent = v.parents[0];
    const before = parent ? digests.get(parent) : undefined;
    const tasks = digests.get(v.sha) ?? {};
    const first = v.specDigest ? firstBySpec.get(v.specDigest) : undefined;
    return {
      version: v,
      changes:
        before && v.status === "registered"
          ? diffVersions(
              { specDigest: "", tasks: before, workflows: {} },
              {
                specDigest: "",
                tasks,
                workflows: {},
              },
            ).tasks
          : null,
      identicalTo: first && first !== v.sha ? first : null,
    };
  });
}

export function ExecutionTable(p: { rows: readonly ExecutionRecord[] }) {
  if (p.rows.length === 0) return <p class="sub">none yet</p>;
  return (
    <div class="scroll">
      <table class="executions">
        <thead>
          <tr>
            <th>execution</th>
            <th>workflow</th>
            <th>status</th>
            <th>commit</th>
            <th class="hide-narrow">trigger</th>
            <th class="hide-narrow">created</th>
            <th class="hide-narrow">took</th>
          </tr>
        </thead>
        <tbody>
          {p.rows.map((e) => (
            <tr>
              <td>
                <a href={paths.execution(e.id)} class="mono">
                  {e.id}
                </a>
              </td>
              <td>
                <a href={paths.runs(e.repo, e.workflow)}>{e.workflow}</a>
              </td>
              <td>
                <Badge kind={e.state} />
              </td>
              <td>
                <code>{short(e.sha)}</code>
              </td>
              <td class="hide-narrow">
                {e.trigger.kind} by {e.trigger.actor}
              </td>
              <td class="hide-narrow">{when(e.createdAt)}</td>
              <td class="hide-narrow">{duration(e.startedAt, e.finishedAt)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
