/**
 * `on.schedule` (docs/design.md sections 2 and 6), fired by the runtime: every `reprise serve`
 * (with or without the GitHub App) and every `reprise worker` runs a Scheduler, for GitHub and
 * local repositories alike. Each tick asks every repository's active production version which
 * crons match the minutes just passed. A (repository, workflow, schedule index, minute) is a slot,
 * started once across every replica on the database: its claim is the inbox row
 * `reprise:schedule:<repo>:<workflow>:<index>:<minute>`, committed in one transaction with the
 * execution it starts (ExecutionStore.createOnce), so two replicas never both start it and a
 * crash never leaves a claim without its execution. A tick looks back 3 minutes, so a slot missed
 * by a restart or a slow tick still fires; older ones are skipped, as cron skips what it missed
 * while down. Listeners hear of each execution this replica started (the App opens its check run).
 */
import type { Logger } from "pino";
import type { JsonValue } from "../core/spec/types.js";
import { cronMatches, type Minute } from "../core/triggers/cron.js";
import type { Store } from "../db/store.js";
import type { ExecutionRecord } from "../db/types.js";
import { startExecutionOnce } from "./service.js";

export const SCHEDULE_EVENT = "reprise.schedule";
export const SCHEDULE_PREFIX = "reprise:schedule:";
/** Minutes looked back on each tick: more than the longest tick (REPRISE_SCHEDULE_TICK_MS). */
const LOOKBACK_MINUTES = 3;
const DEFAULT_TICK_MS = 15_000;

/** What a slot's claim records (its row's payload): the production version when it came due. */
export interface SchedulePayload {
  repo: string;
  sha: string;
  workflow: string;
  index: number;
  /** The minute, ISO 8601. */
  slot: string;
}

/** Told of each execution this replica started; awaited, and a throw is logged, not retried. */
export type StartedListener = (exec: ExecutionRecord) => void | Promise<void>;

export interface SchedulerOptions {
  store: Store;
  log: Logger;
  /** How often slots come due are looked for (REPRISE_SCHEDULE_TICK_MS; default 15 s). */
  tickMs?: number;
  /** The clock; tests give their own. */
  now?: () => Date;
}

interface Scheduled {
  workflow: string;
  index: number;
  cron: string;
  inputs: Record<string, JsonValue>;
}

export class Scheduler {
  readonly #opts: SchedulerOptions;
  readonly #log: Logger;
  readonly #listeners = new Set<StartedListener>();
  /** Schedules per `repo@sha` of the current production versions (versions are immutable). */
  #scheduled = new Map<string, Scheduled[]>();
  /** Slots known to be claimed (by anyone), by id, with their minute: not asked about again. */
  #claimed = new Map<string, number>();
  #timer: NodeJS.Timeout | null = null;
  #ticking: Promise<void> | null = null;
  #running = false;

  constructor(opts: SchedulerOptions) {
    this.#opts = opts;
    this.#log = opts.log.child({ component: "schedules" });
  }

  /** Registers a listener for executions this replica starts; returns its removal. */
  onStarted(listener: StartedListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Ticks now and then every `tickMs`; the timer never keeps the process alive on its own. */
  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#next(0);
  }

  /** Stops ticking; resolves once a tick under way has finished. */
  async stop(): Promise<void> {
    this.#running = false;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    await this.#ticking;
  }

  #next(ms: number): void {
    this.#timer = setTimeout(() => {
      this.#timer = null;
      this.#ticking = this.tick()
        .then(
          () => undefined,
          (e: Error) => this.#log.error({ err: e.stack ?? e.message }, "cannot look for schedules"),
        )
        .finally(() => {
          this.#ticking = null;
          if (this.#running) this.#next(this.#opts.tickMs ?? DEFAULT_TICK_MS);
        });
    }, ms);
    this.#timer.unref();
  }

  /** Starts every slot come due that no replica started yet; returns what this call started. */
  async tick(): Promise<ExecutionRecord[]> {
    const { store } = this.#opts;
    const now = (this.#opts.now ?? (() => new Date()))();
    const minute = Math.floor(now.getTime() / 60_000) * 60_000;
    const oldest = minute - (LOOKBACK_MINUTES - 1) * 60_000;
    for (const [id, at] of this.#claimed) if (at < oldest) this.#claimed.delete(id);
    const started: ExecutionRecord[] = [];
    const current = new Map<string, Scheduled[]>();
    for (const repo of await store.versions.repositories()) {
      const production = await store.production.current(repo);
      if (!production) continue;
      const key = `${repo}@${production.sha}`;
      const list = this.#scheduled.get(key) ?? (await this.#schedulesOf(repo, production.sha));
      current.set(key, list);
      for (const s of list)
        for (let at = oldest; at <= minute; at += 60_000) {
          // A slot before the activation (less a minute's grace) belongs to the version before.
          if (at < production.activatedAt.getTime() - 60_000) continue;
          if (!cronMatches(s.cron, fields(new Date(at)))) continue;
          const exec = await this.#fire(repo, production.sha, s, at);
          if (exec) started.push(exec);
        }
    }
    // Only current versions stay cached: an old production version's schedules never fire again.
    this.#scheduled = current;
    this.#log.debug({ started: started.length }, "schedules looked at");
    return started;
  }

  /** Starts one slot unless it was claimed; a slot that cannot start is logged and tried again next tick. */
  async #fire(
    repo: string,
    sha: string,
    s: Scheduled,
    at: number,
  ): Promise<ExecutionRecord | null> {
    const slot = new Date(at).toISOString();
    const id = `${SCHEDULE_PREFIX}${repo}:${s.workflow}:${s.index}:${slot}`;
    if (this.#claimed.has(id)) return null;
    const log = this.#log.child({ repo, workflow: s.workflow, slot });
    let exec: ExecutionRecord | null;
    try {
      // Most ticks find their slots claimed already (by an earlier tick or another replica): a
      // key lookup, before the checks of a start.
      if (await this.#opts.store.deliveries.get(id)) {
        this.#claimed.set(id, at);
        return null;
      }
      const payload: SchedulePayload = { repo, sha, workflow: s.workflow, index: s.index, slot };
      exec = await startExecutionOnce(
        this.#opts.store,
        {
          repo,
          at: { sha },
          workflow: s.workflow,
          inputs: s.inputs,
          trigger: { kind: "schedule", actor: `schedule ${s.cron}` },
        },
        { id, event: SCHEDULE_EVENT, payload },
      );
    } catch (e) {
      log.error({ err: (e as Error).message }, "cannot start a scheduled execution");
      return null;
    }
    this.#claimed.set(id, at);
    if (!exec) return null;
    log.info({ executionId: exec.id }, "schedule fired");
    for (const listener of this.#listeners)
      try {
        await listener(exec);
      } catch (e) {
        log.error(
          { executionId: exec.id, err: (e as Error).message },
          "a listener of scheduled executions failed",
        );
      }
    return exec;
  }

  async #schedulesOf(repo: string, sha: string): Promise<Scheduled[]> {
    const { versions } = this.#opts.store;
    const list: Scheduled[] = [];
    const version = await versions.get(repo, sha);
    for (const workflow of Object.keys(version?.workflows ?? {}).sort()) {
      const wf = await versions.resolveWorkflow(repo, sha, workflow);
      for (const [index, s] of wf.spec.on.schedule.entries())
        list.push({ workflow, index, cron: s.cron, inputs: s.inputs });
    }
    return list;
  }
}

function fields(d: Date): Minute {
  return {
    minute: d.getUTCMinutes(),
    hour: d.getUTCHours(),
    day: d.getUTCDate(),
    month: d.getUTCMonth() + 1,
    weekday: d.getUTCDay(),
  };
}
