/**
 * Completing the check run of an execution that ended: the node table, outputs, the failed
 * node's log tail and a Relaunch button. Which executions need it is polled from the store
 * (README.md here says why polling): an ended execution with a check run and no report yet gets
 * a `reprise.report` delivery in the inbox, stored once whatever the number of replicas, and
 * processed like any delivery (retried if GitHub fails, resumed after a crash). checks.ts writes
 * the check run.
 */
import { executionDocument, orderedNodes } from "../runner/documents.js";
import { nodeLogs } from "../runner/reports.js";
import { executionOutput } from "./check-run-text.js";
import { completeCheckRun } from "./checks.js";
import type { AppContext, Outcome } from "./context.js";

export const REPORT_EVENT = "reprise.report";
export const REPORT_PREFIX = "reprise:report:";
/** Bytes of the failed node's log read for the check run (the text keeps its end). */
const LOG_TAIL_BYTES = 60_000;

/** Queues a report for every ended execution that has none; returns how many were queued. */
export async function queueReports(ctx: AppContext): Promise<number> {
  const ids = await ctx.store.checkRuns.endedUnreported(REPORT_PREFIX);
  let queued = 0;
  for (const id of ids) {
    const { stored } = await ctx.store.deliveries.record({
      id: `${REPORT_PREFIX}${id}`,
      event: REPORT_EVENT,
      action: null,
      payload: { executionId: id },
    });
    if (stored) queued++;
  }
  return queued;
}

export async function onReport(ctx: AppContext, p: { executionId: string }): Promise<Outcome> {
  const exec = await ctx.store.executions.get(p.executionId);
  const run = await ctx.store.checkRuns.get(p.executionId);
  if (!exec || !run) return "ignored: no such execution or check run";
  const nodes = await orderedNodes(ctx.store, exec);
  const doc = executionDocument(exec, nodes);
  const failed = nodes.find((n) => n.state === "FAILED");
  let failedLog: { node: string; log: string } | null = null;
  if (failed) {
    const [entry] = await nodeLogs(ctx.store, ctx.executor, exec, {
      node: failed.nodeId,
      attempt: null,
      tail: LOG_TAIL_BYTES,
    });
    const log = entry?.log ?? failed.error?.message ?? null;
    if (log) failedLog = { node: failed.nodeId, log };
  }
  await completeCheckRun(ctx, exec, run.checkRunId, executionOutput(doc, failedLog, ctx.publicUrl));
  return `reported ${exec.state} on check run ${run.checkRunId}`;
}
