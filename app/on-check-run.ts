/**
 * `check_run` rerequested, or its `Relaunch` button (requested_action `relaunch`): relaunch the
 * execution the check run reports (its external_id) at the same commit. GitHub shows both only to
 * people with write access.
 */
import { githubRepoKey } from "../core/version/repo-key.js";
import { CHECK_PREFIX } from "./checks.js";
import type { AppContext, Outcome, RepositoryPayload, Sender } from "./context.js";
import { relaunchWithCheckRun } from "./start.js";

export interface CheckRunPayload {
  action: string;
  check_run: {
    name: string;
    external_id?: string | null;
    pull_requests?: Array<{ number: number }>;
  };
  requested_action?: { identifier: string };
  repository: RepositoryPayload;
  sender?: Sender;
  installation?: { id: number };
}

export async function onCheckRun(ctx: AppContext, p: CheckRunPayload): Promise<Outcome> {
  const relaunch =
    p.action === "rerequested" ||
    (p.action === "requested_action" && p.requested_action?.identifier === "relaunch");
  if (!relaunch) return `ignored: check_run ${p.action}`;
  const id = p.check_run.external_id;
  if (!id || !p.check_run.name.startsWith(CHECK_PREFIX))
    return "ignored: not an execution's check run";
  const repoKey = githubRepoKey(p.repository.full_name, ctx.client.host);
  const parent = await ctx.store.executions.get(id);
  if (!parent || parent.repo !== repoKey) return `ignored: no execution ${id} in ${repoKey}`;
  const octokit = await ctx.client.forRepo(repoKey, p.installation?.id);
  const pr = p.check_run.pull_requests?.[0]?.number;
  const exec = await relaunchWithCheckRun(ctx, octokit, ctx.client.name(repoKey), {
    parent: id,
    trigger: {
      kind: "check_run",
      actor: p.sender?.login ?? "unknown",
      ...(pr !== undefined
        ? { pr }
        : parent.trigger.pr !== undefined
          ? { pr: parent.trigger.pr }
          : {}),
    },
  });
  return `relaunched ${id} as ${exec.id}`;
}
