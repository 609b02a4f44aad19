/**
 * `on.schedule` (DESIGN.md sections 2 and 6): each minute, the workflows of every repository's
 * active production version whose cron matches fire once. "Once" across replicas comes from the
 * durable inbox: a slot is the delivery `reprise:schedule:<repo>:<workflow>:<index>:<minute>`,
 * stored by whichever replica gets there first and processed like any delivery. A replica looks
 * back a few minutes, so a slot missed by a restart still fires; older slots are skipped, as cron
 * skips what it missed while down.
 */
import { cronMatches } from "../../core/triggers/cron.js";
import { startExecution } from "../service.js";
import type { AppContext, Outcome } from "./context.js";
import { startWithCheckRun } from "./start.js";

export const SCHEDULE_EVENT = "reprise.schedule";
const PREFIX = "reprise:schedule:";
/** Minutes looked back on each tick. */
const LOOKBACK_MINUTES = 3;

export interface SchedulePayload {
  repo: string;
  /** The production version when the slot came due. */
  sha: string;
  workflow: string;
  index: number;
  slot: string;
}

/** Workflows with schedules, per (repo, sha): versions are immutable, so this never goes stale. */
const scheduled = new Map<string, Array<{ workflow: string; index: number; cron: string }>>();

export async function queueSchedules(ctx: AppContext, now: Date): Promise<number> {
  const minute = Math.floor(now.getTime() / 60_000) * 60_000;
  let queued = 0;
  for (const repo of await ctx.store.versions.repositories()) {
    const current = await ctx.store.production.current(repo);
    if (!current) continue;
    const crons = await schedulesOf(ctx, repo, current.sha);
    for (const s of crons)
      for (let back = LOOKBACK_MINUTES - 1; back >= 0; back--) {
        const at = new Date(minute - back * 60_000);
        if (at.getTime() < current.activatedAt.getTime() - 60_000) continue;
        if (!cronMatches(s.cron, fields(at))) continue;
        const slot = at.toISOString();
        const payload: SchedulePayload = {
          repo,
          sha: current.sha,
          workflow: s.workflow,
          index: s.index,
          slot,
        };
        const { stored } = await ctx.store.deliveries.record({
          id: `${PREFIX}${repo}:${s.workflow}:${s.index}:${slot}`,
          event: SCHEDULE_EVENT,
          action: null,
          payload,
        });
        if (stored) queued++;
      }
  }
  return queued;
}

export async function onSchedule(ctx: AppContext, p: SchedulePayload): Promise<Outcome> {
  const wf = await ctx.store.versions.resolveWorkflow(p.repo, p.sha, p.workflow);
  const trigger = wf.spec.on.schedule[p.index];
  if (!trigger) return "ignored: the schedule is gone";
  const req = {
    repo: p.repo,
    at: { sha: p.sha },
    workflow: p.workflow,
    inputs: trigger.inputs,
    trigger: { kind: "schedule" as const, actor: `schedule ${trigger.cron}` },
  };
  if (!ctx.client.owns(p.repo)) {
    const exec = await startExecution(ctx.store, req);
    return `started ${exec.id} for ${p.slot}`;
  }
  const octokit = await ctx.client.forRepo(p.repo);
  const exec = await startWithCheckRun(ctx, octokit, ctx.client.name(p.repo), req);
  return `started ${exec.id} for ${p.slot}`;
}

async function schedulesOf(ctx: AppContext, repo: string, sha: string) {
  const key = `${repo}@${sha}`;
  let list = scheduled.get(key);
  if (!list) {
    list = [] as Array<{ workflow: string; index: number; cron: string }>;
    const version = await ctx.store.versions.get(repo, sha);
    for (const workflow of Object.keys(version?.workflows ?? {}).sort()) {
      const wf = await ctx.store.versions.resolveWorkflow(repo, sha, workflow);
      for (const [index, s] of wf.spec.on.schedule.entries())
        list.push({ workflow, index, cron: s.cron });
    }
    scheduled.set(key, list);
  }
  return list;
}

function fields(d: Date) {
  return {
    minute: d.getUTCMinutes(),
    hour: d.getUTCHours(),
    day: d.getUTCDate(),
    month: d.getUTCMonth() + 1,
    weekday: d.getUTCDay(),
  };
}
