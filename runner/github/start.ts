/**
 * Starting executions from GitHub: the runner call, then the execution's check run
 * `reprise/<workflow>` (in_progress, external_id = execution id, details_url = its page). The
 * check run is completed by report.ts when the execution ends.
 */
import type { ExecutionRecord } from "../../db/types.js";
import {
  type RelaunchRequest,
  relaunchExecution,
  type StartRequest,
  startExecution,
} from "../service.js";
import { executionUrl } from "./check-run-text.js";
import type { Octokit, RepoName } from "./client.js";
import type { AppContext } from "./context.js";

export const CHECK_PREFIX = "reprise/";

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
 * Whether an automatic trigger already started this workflow at this commit: a delivery that is
 * processed again after a crash must not start it twice.
 */
export async function alreadyStarted(
  ctx: AppContext,
  repo: string,
  sha: string,
  workflow: string,
  kind: "push" | "pull_request",
  pr?: number,
): Promise<boolean> {
  const list = await ctx.store.executions.list({ repo, sha, workflow, limit: 50 });
  return list.some((e) => e.trigger.kind === kind && (pr === undefined || e.trigger.pr === pr));
}

async function openCheckRun(
  ctx: AppContext,
  octokit: Octokit,
  name: RepoName,
  exec: ExecutionRecord,
  why: string,
): Promise<void> {
  const url = executionUrl(ctx.publicUrl, exec.id);
  const { data } = await octokit.rest.checks.create({
    ...name,
    name: `${CHECK_PREFIX}${exec.workflow}`,
    head_sha: exec.sha,
    status: "in_progress",
    started_at: new Date().toISOString(),
    external_id: exec.id,
    ...(url ? { details_url: url } : {}),
    output: {
      title: "running",
      summary: `Execution ${url ? `[${exec.id}](${url})` : `\`${exec.id}\``} of \`${exec.workflow}\`, ${why}.`,
    },
  });
  await ctx.store.checkRuns.save({
    executionId: exec.id,
    repo: exec.repo,
    checkRunId: data.id,
    name: `${CHECK_PREFIX}${exec.workflow}`,
  });
  ctx.log.info({ executionId: exec.id, checkRunId: data.id }, "execution started from GitHub");
}

function describe(t: { kind: string; actor: string; pr?: number }): string {
  return `${t.kind.replace("_", " ")} (${t.actor}${t.pr !== undefined ? `, #${t.pr}` : ""})`;
}
