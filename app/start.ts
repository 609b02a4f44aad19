/**
 * Starting executions from GitHub: the runner call, then the execution's check run
 * `reprise/<workflow>`, opened by checks.ts (in_progress, external_id = execution id,
 * details_url = its page). The check run is completed by report.ts when the execution ends.
 */
import type { ExecutionRecord } from "../db/types.js";
import {
  type RelaunchRequest,
  relaunchExecution,
  type StartRequest,
  startExecution,
} from "../runner/service.js";
import { openCheckRun } from "./checks.js";
import type { AppContext } from "./context.js";
import type { Octokit, RepoName } from "./github-client.js";

export async function startWithCheckRun(
  ctx: AppContext,
  octokit: Octokit,
  name: RepoName,
  req: StartRequest,
): Promise<ExecutionRecord> {
  const exec = await startExecution(ctx.store, req);
  await openCheckRun(ctx, octokit, name, exec, `started by ${describe(req.trigger)}`);
  return exec;
}

export async function relaunchWithCheckRun(
  ctx: AppContext,
  octokit: Octokit,
  name: RepoName,
  req: RelaunchRequest,
): Promise<ExecutionRecord> {
  const exec = await relaunchExecution(ctx.store, req);
  await openCheckRun(
    ctx,
    octokit,
    name,
    exec,
    `relaunched from \`${req.parent}\` by ${describe(req.trigger)}${req.recover ? " (recover mode)" : ""}`,
  );
  return exec;
}

/**
 * Starts an automatic trigger's execution unless that delivery already did: a delivery processed
 * again after a crash or a GitHub error finds the execution of the same workflow, SHA, trigger
 * kind (and pull request), opens its check run if that is what failed, and starts nothing new.
 */
export async function startOnce(
  ctx: AppContext,
  octokit: Octokit,
  name: RepoName,
  req: StartRequest & { trigger: { kind: "push" | "pull_request" } },
): Promise<{ exec: ExecutionRecord; started: boolean }> {
  if (!("sha" in req.at)) throw new Error("automatic triggers start at a SHA");
  const { sha } = req.at;
  const list = await ctx.store.executions.list({
    repo: req.repo,
    sha,
    workflow: req.workflow,
    limit: 50,
  });
  const existing = list.find(
    (e) =>
      e.trigger.kind === req.trigger.kind &&
      (req.trigger.pr === undefined || e.trigger.pr === req.trigger.pr),
  );
  if (!existing) return { exec: await startWithCheckRun(ctx, octokit, name, req), started: true };
  await ensureCheckRun(ctx, octokit, name, existing, `started by ${describe(req.trigger)}`);
  return { exec: existing, started: false };
}

/** Opens the execution's check run unless it has one (a retried delivery that failed midway). */
export async function ensureCheckRun(
  ctx: AppContext,
  octokit: Octokit,
  name: RepoName,
  exec: ExecutionRecord,
  why: string,
): Promise<void> {
  if (!(await ctx.store.checkRuns.get(exec.id))) await openCheckRun(ctx, octokit, name, exec, why);
}

export function describe(t: { kind: string; actor: string; pr?: number }): string {
  return `${t.kind.replace("_", " ")} (${t.actor}${t.pr !== undefined ? `, #${t.pr}` : ""})`;
}
