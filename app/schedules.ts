/**
 * The check run of a scheduled execution. Schedules are fired by the runtime (runner/schedules.ts),
 * for every repository; the App only adds what GitHub shows. It listens to the scheduler: for a
 * repository of this App's GitHub, a started execution gets the delivery
 * `reprise:check-run:<execution id>` (stored once, whatever the replicas), processed like any
 * delivery: the check run `reprise/<workflow>` is opened, retried if GitHub fails, never twice.
 * The scheduler's tick only inserts a row: GitHub's pace (throttling, outages) never holds it.
 */
import type { ExecutionRecord } from "../db/types.js";
import type { AppContext, Outcome } from "./context.js";
import { describe, ensureCheckRun } from "./start.js";

export const CHECK_RUN_EVENT = "reprise.check-run";
export const CHECK_RUN_PREFIX = "reprise:check-run:";

/** Queues the opening of `exec`'s check run; false when not GitHub's (or already queued). */
export async function queueCheckRun(ctx: AppContext, exec: ExecutionRecord): Promise<boolean> {
  if (!ctx.client.owns(exec.repo)) return false;
  const { stored } = await ctx.store.deliveries.record({
    id: `${CHECK_RUN_PREFIX}${exec.id}`,
    event: CHECK_RUN_EVENT,
    action: null,
    payload: { executionId: exec.id },
  });
  return stored;
}

export async function onCheckRunQueued(
  ctx: AppContext,
  p: { executionId: string },
): Promise<Outcome> {
  const exec = await ctx.store.executions.get(p.executionId);
  if (!exec) return "ignored: no such execution";
  if (!ctx.client.owns(exec.repo)) return `ignored: ${exec.repo} is not on this App's GitHub`;
  if (await ctx.store.checkRuns.get(exec.id)) return `ignored: ${exec.id} has its check run`;
  const octokit = await ctx.client.forRepo(exec.repo);
  await ensureCheckRun(
    ctx,
    octokit,
    ctx.client.name(exec.repo),
    exec,
    `started by ${describe(exec.trigger)}`,
  );
  return `opened the check run of ${exec.id}`;
}
