/** A task's history: the versions in which its digest changed, and the runs at each digest. */
import type { Store } from "../../../../db/store.js";
import { taskHistory } from "../../../task-history.js";
import type { Principal } from "../../auth.js";
import { Badge, Page, short, shortDigest, subject, when } from "../layout.js";
import { paths } from "../paths.js";

/** Runs listed per change; the rest are counted. */
const RUNS_SHOWN = 10;

export async function taskHistoryPage(
  store: Store,
  principal: Principal,
  repo: string,
  task: string,
) {
  const history = await taskHistory(store, repo, task);
  return (
    <Page
      title={`${task} history`}
      principal={principal}
      crumbs={[
        [repo, paths.repo(repo)],
        [`task ${task}`, null],
      ]}
    >
      <h1>
        {task} <span class="sub">history</span>
      </h1>
      {history.changes.length === 0 ? (
        <p class="notice">
          no registered version of {repo} has a task "{task}"
        </p>
      ) : (
        <div class="scroll">
          <table id="history">
            <thead>
              <tr>
                <th>commit</th>
                <th>change</th>
                <th>digest</th>
                <th>branch</th>
                <th>message</th>
                <th>executions at this digest</th>
              </tr>
            </thead>
            <tbody>
              {history.changes.map((c) => (
                <tr data-sha={c.sha} data-change={c.change}>
                  <td>
                    <code>{short(c.sha)}</code>
                    <div class="sub">{when(c.registeredAt)}</div>
                  </td>
                  <td>
                    {c.change}
                    {c.sameAs ? <div class="sub">as in {short(c.sameAs)}</div> : null}
                  </td>
                  <td>
                    <code>{shortDigest(c.digest)}</code>
                  </td>
                  <td>{c.ref ?? "-"}</td>
                  <td>{subject(c.message)}</td>
                  <td>
                    {c.runs.length === 0 ? (
                      <span class="sub">{c.digest ? "none" : ""}</span>
                    ) : (
                      <ul class="plain">
                        {c.runs.slice(0, RUNS_SHOWN).map((r) => (
                          <li>
                            <a href={paths.execution(r.execution, r.node)} class="mono">
                              {r.execution}
                            </a>{" "}
                            <Badge kind={r.how === "not run" ? r.nodeStatus : r.how} />{" "}
                            <span class="sub">
                              {r.workflow}/{r.node}
                            </span>
                          </li>
                        ))}
                        {c.runs.length > RUNS_SHOWN ? (
                          <li class="sub">and {c.runs.length - RUNS_SHOWN} more</li>
                        ) : null}
                      </ul>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </Page>
  );
}
