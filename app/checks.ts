/**
 * Every check run the App writes, and the only module that calls GitHub's `checks.*`:
 * - `reprise/<workflow>`, an execution's: opened `in_progress` when it starts (external_id = the
 *   execution id, details_url = its page; start.ts, schedules.ts), completed with its report
 *   when it ends (report.ts). There are no updates in between (README.md here says why).
 * - `reprise/register`, a pushed commit's registration, posted completed (on-push.ts).
 * What they say is check-run-text.ts's (core/report/check-run.ts, which the Action renders with).
 */
import type { ExecutionRecord, VersionRecord } from "../db/types.js";
import {
  ANNOTATIONS_PER_REQUEST,
  type CheckRunOutput,
  type Conclusion,
  executionUrl,
} from "./check-run-text.js";
import type { AppContext, DeliveryAttempt } from "./context.js";
import type { Octokit, RepoName } from "./github-client.js";

/** An execution's check run is `reprise/<workflow>`. */
export const CHECK_PREFIX = "reprise/";
export const REGISTER_CHECK = "reprise/register";

/** What a completed check run shows. */
export interface CheckRunResult {
  conclusion: Conclusion;
  output: CheckRunOutput;
}

/** Opens `exec`'s check run, in_progress, and records it (the report completes it). */
export async function openCheckRun(
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

/** Completes the check run `checkRunId` of the ended `exec`, with a Relaunch button. */
export async function completeCheckRun(
  ctx: AppContext,
  exec: ExecutionRecord,
  checkRunId: number,
  { conclusion, output }: CheckRunResult,
): Promise<void> {
  const octokit = await ctx.client.forRepo(exec.repo);
  await octokit.rest.checks.update({
    ...ctx.client.name(exec.repo),
    check_run_id: checkRunId,
    status: "completed",
    conclusion,
    completed_at: (exec.finishedAt ?? new Date()).toISOString(),
    output,
    actions: [
      {
        // GitHub limits: label 20 characters, description 40, identifier 20.
        label: "Relaunch",
        description: "Run it again; the cache decides",
        identifier: "relaunch",
      },
    ],
  });
}

/**
 * Posts `reprise/register`, its external_id the delivery's id, with the first 50 annotations,
 * then adds the rest 50 at a time. A delivery taken up again (its first attempt cut short after
 * posting, by a crash or a database outage) finds the check run it posted and rewrites it rather
 * than posting a second: one read, on retries only.
 */
export async function postRegisterCheck(
  octokit: Octokit,
  name: RepoName,
  version: VersionRecord,
  { conclusion, output }: CheckRunResult,
  delivery: DeliveryAttempt,
): Promise<void> {
  const all = output.annotations ?? [];
  const fields = {
    ...name,
    name: REGISTER_CHECK,
    status: "completed" as const,
    conclusion,
    completed_at: new Date().toISOString(),
    output: { ...output, annotations: all.slice(0, ANNOTATIONS_PER_REQUEST) },
    ...(delivery.id ? { external_id: delivery.id } : {}),
  };
  const posted =
    delivery.attempts > 1 && delivery.id
      ? (
          await octokit.rest.checks.listForRef({
            ...name,
            ref: version.sha,
            check_name: REGISTER_CHECK,
            filter: "all",
            per_page: 100,
          })
        ).data.check_runs.find((c) => c.external_id === delivery.id)
      : undefined;
  // Annotations add up over a check run's updates: a retry sends what the first attempt did not.
  let id: number;
  let sent: number;
  if (posted) {
    id = posted.id;
    sent = posted.output.annotations_count;
    await octokit.rest.checks.update({
      ...fields,
      check_run_id: id,
      output: { title: output.title, summary: output.summary },
    });
  } else {
    id = (await octokit.rest.checks.create({ ...fields, head_sha: version.sha })).data.id;
    sent = ANNOTATIONS_PER_REQUEST;
  }
  for (let i = sent; i < all.length; i += ANNOTATIONS_PER_REQUEST) {
    await octokit.rest.checks.update({
      ...name,
      check_run_id: id,
      output: {
        title: output.title,
        summary: output.summary,
        annotations: all.slice(i, i + ANNOTATIONS_PER_REQUEST),
      },
    });
  }
}
