/**
 * The engine (docs/design.md section 6): claims executions through leases, and for each one runs a
 * Driver that reconciles the persisted state with the pure planner until the execution ends.
 * See README.md here for the invariants (what is persisted before what).
 */

import { setMaxListeners } from "node:events";
import { sleep } from "../../client/sleep.js";
import { attemptName } from "../../core/engine/attempt-name.js";
import { storableText } from "../../core/engine/storable.js";
import { TERMINAL_NODE_STATES } from "../../core/engine/vocabulary.js";
import { isUnavailable, NotFoundError, rootCause } from "../../db/errors.js";
import { EXECUTIONS_CHANNEL } from "../../db/store/executions.js";
import type { Store } from "../../db/store.js";
import type { ExecutionRecord, Lease, NodeError, NodeState } from "../../db/types.js";
import { TERMINAL_EXECUTION_STATES } from "../../db/types.js";
import type { BlobStore } from "../artifacts/store.js";
import type { Executor } from "../executors/types.js";
import { Driver } from "./driver.js";
import type { DriverHost, EngineEvent } from "./host.js";

export type { EngineEvent } from "./host.js";

export interface EngineOptions {
  store: Store;
  executor: Executor;
  /** This runner's identity in leases and logs. */
  owner: string;
  /** Attempts running at once in this runner (REPRISE_MAX_PARALLEL). */
  maxParallel: number;
  leaseMs?: number;
  tickMs?: number;
  /** Reservation expiry and heartbeat (docs/design.md section 5: 30 s and 10 s). */
  reservationMs?: number;
  heartbeatMs?: number;
  onEvent?: (event: EngineEvent) => void;
  /**
   * An error the engine survived (the database went away, say), with the execution it was
   * driving when there was one: the driver of that execution stopped, and the execution is
   * claimed again on a later tick (and ended after MAX_DRIVER_FAILURES, `giveUp`). Default: ignored.
   */
  onError?: (error: Error, executionId?: string) => void;
  /** `drive` gives up after the database has failed it this long in a row (default 120 s). */
  outageMs?: number;
  /**
   * Where `file` and `directory` values live: a cache hit is served only while every artifact of
   * it is there (self-repair). Absent: hits are not checked.
   */
  artifacts?: BlobStore;
  /** LISTEN (Database.listen): wake-ups when executions are created or asked to stop. */
  listen?: (channel: string, onPayload: (payload: string) => void) => Promise<() => Promise<void>>;
}

/**
 * A driver that fails this many times in a row on one execution, while the database answers,
 * ends it (`Engine.giveUp`): whatever it carries that cannot be written would be retried forever.
 */
export const MAX_DRIVER_FAILURES = 3;

export class Engine implements DriverHost {
  readonly store: Store;
  readonly executor: Executor;
  readonly artifacts: BlobStore | null;
  readonly owner: string;
  readonly leaseMs: number;
  readonly tickMs: number;
  readonly reservationMs: number;
  readonly heartbeatMs: number;
  private free: number;
  private readonly drivers = new Map<
    string,
    { driver: Driver; done: Promise<ExecutionRecord | null> }
  >();
  /** Drivers waiting for a slot, in the order they asked. */
  private readonly slotWaiters = new Set<() => void>();
  private wakeClaimLoop: (() => void) | null = null;
  /** Drivers of an execution that failed in a row, with nothing written in between. */
  private readonly failures = new Map<string, number>();

  constructor(private readonly opts: EngineOptions) {
    this.store = opts.store;
    this.executor = opts.executor;
    this.artifacts = opts.artifacts ?? null;
    this.owner = opts.owner;
    this.free = Math.max(1, opts.maxParallel);
    this.leaseMs = opts.leaseMs ?? 30_000;
    this.tickMs = opts.tickMs ?? 1_000;
    this.reservationMs = opts.reservationMs ?? 30_000;
    this.heartbeatMs = opts.heartbeatMs ?? 10_000;
  }

  emit(event: EngineEvent): void {
    this.opts.onEvent?.(event);
  }

  /**
   * A slot for one running attempt; false when maxParallel are running. `force` takes one anyway
   * (watching an attempt that runs already, to abort it: it holds a process whether or not).
   */
  takeSlot(force = false): boolean {
    if (this.free <= 0 && !force) return false;
    this.free--;
    return true;
  }

  availableSlots(): number {
    return Math.max(0, this.free);
  }

  /**
   * Gives a slot back and wakes as many drivers waiting for one as there are free slots, in the
   * order they asked (not all of them: a thousand executions waiting would all wake for one
   * slot). A slot taken and given back in the same pass (`wake: false`) wakes nobody, or a node
   * waiting for a reservation would wake its own driver in a loop.
   */
  releaseSlot(wake = true): void {
    this.free++;
    if (!wake) return;
    let n = this.free;
    for (const waiter of this.slotWaiters) {
      if (n-- <= 0) break;
      this.slotWaiters.delete(waiter);
      waiter();
    }
  }

  /** `wake` is called once a slot frees up (a driver with nodes to launch and no slot). */
  waitForSlot(wake: () => void): void {
    this.slotWaiters.add(wake);
  }

  cancelSlotWait(wake: () => void): void {
    this.slotWaiters.delete(wake);
  }

  /**
   * Drives one execution to its end in this process (what `reprise run` does). When another
   * live runner holds it, waits until that runner finishes it or its lease expires.
   */
  async drive(executionId: string, signal?: AbortSignal): Promise<ExecutionRecord> {
    const unlisten = await this.opts.listen?.(EXECUTIONS_CHANNEL, (id) => this.notified(id));
    try {
      return await this.driveLoop(executionId, signal);
    } finally {
      await unlisten?.();
    }
  }

  private async driveLoop(executionId: string, signal?: AbortSignal): Promise<ExecutionRecord> {
    let failingSince: number | null = null;
    for (;;) {
      try {
        const running = this.drivers.get(executionId);
        if (running) await running.done.catch(() => undefined);
        const exec = await this.store.executions.get(executionId);
        if (!exec) throw new NotFoundError(`execution ${executionId} not found`);
        if (TERMINAL_EXECUTION_STATES.includes(exec.state) || signal?.aborted) return exec;
        const [lease] = await this.store.executions.claim(this.owner, {
          leaseMs: this.leaseMs,
          ids: [executionId],
          reclaim: [...this.drivers.keys()],
        });
        if (lease) {
          const done = await this.start(lease, signal);
          failingSince = null;
          if (done && TERMINAL_EXECUTION_STATES.includes(done.state)) return done;
        } else {
          failingSince = null;
          await sleep(this.tickMs, signal);
        }
      } catch (e) {
        if (e instanceof NotFoundError) throw e;
        // The database failed us (a restart, a network cut): try again, for a while.
        failingSince ??= Date.now();
        if (Date.now() - failingSince > (this.opts.outageMs ?? 120_000)) throw e;
        this.opts.onError?.(e as Error);
        await sleep(this.tickMs, signal);
      }
    }
  }

  /** Claims and drives any executions that need it until `signal` aborts (`reprise worker`). */
  async work(signal: AbortSignal, opts: { batch?: number } = {}): Promise<void> {
    // Every driver waits on this signal while it sleeps: one listener per execution driven.
    setMaxListeners(0, signal);
    const unlisten = await this.opts.listen?.(EXECUTIONS_CHANNEL, (id) => this.notified(id));
    try {
      while (!signal.aborted) {
        try {
          const leases = await this.store.executions.claim(this.owner, {
            leaseMs: this.leaseMs,
            limit: opts.batch ?? 8,
            reclaim: [...this.drivers.keys()],
          });
          for (const lease of leases) void this.start(lease, signal).catch(() => undefined);
          // A full batch: more may be waiting; claim again now rather than after the tick.
          if (leases.length === (opts.batch ?? 8)) continue;
        } catch (e) {
          // The database is away: keep the worker alive and claim again on the next tick.
          this.opts.onError?.(e as Error);
        }
        // Woken early by a notification; the tick covers notifications missed (a reconnect).
        await new Promise<void>((resolve) => {
          this.wakeClaimLoop = resolve;
          void sleep(this.tickMs, signal).then(resolve);
        });
        this.wakeClaimLoop = null;
      }
      await Promise.allSettled([...this.drivers.values()].map((d) => d.done));
    } finally {
      await unlisten?.();
    }
  }

  /** An execution was created, or asked to stop: claim it, or wake the driver that has it. */
  private notified(executionId: string): void {
    const running = this.drivers.get(executionId);
    if (running) running.driver.wake(true);
    else this.wakeClaimLoop?.();
  }

  private start(lease: Lease, signal?: AbortSignal): Promise<ExecutionRecord | null> {
    const existing = this.drivers.get(lease.executionId);
    if (existing) return existing.done;
    const id = lease.executionId;
    const driver = new Driver(this, lease, signal);
    const done = driver
      .run()
      .then((r) => {
        this.failures.delete(id);
        return r;
      })
      .catch(async (e: Error) => {
        // The driver stopped on an error; the execution is claimed again on a later tick.
        this.opts.onError?.(e, id);
        if (isUnavailable(e)) throw e;
        const n = (driver.progressed ? 0 : (this.failures.get(id) ?? 0)) + 1;
        this.failures.set(id, n);
        if (n < MAX_DRIVER_FAILURES) throw e;
        const ended = await this.giveUp(id, e, n).catch((e2: Error) => {
          this.opts.onError?.(e2, id);
          return null;
        });
        if (!ended) throw e;
        this.failures.delete(id);
        return ended;
      })
      .finally(() => this.drivers.delete(id));
    this.drivers.set(lease.executionId, { driver, done });
    return done;
  }
  /**
   * Ends an execution its drivers keep failing on (a write the database refuses for what it
   * carries, a bug): every node still active ends with a system error saying why and the
   * execution FAILED, or everything ABORTED when it was asked to stop. These writes carry no
   * value of the execution's, so they land where the failing ones did not. Running attempts are
   * stopped. Null when another runner holds the execution now.
   */
  async giveUp(
    executionId: string,
    cause: Error,
    failures: number,
  ): Promise<ExecutionRecord | null> {
    const [lease] = await this.store.executions.claim(this.owner, {
      leaseMs: this.leaseMs,
      ids: [executionId],
      reclaim: [],
    });
    if (!lease) return null;
    const message = storableText(
      `the engine failed ${failures} times in a row driving this execution, and stopped: ${rootCause(cause).message}`,
    );
    const error: NodeError = { kind: "system", reason: "engine", message };
    const ended: Array<{ nodeId: string; state: NodeState; handle: string | null }> = [];
    await this.store.executions.withLease(lease, async (tx) => {
      const exec = await tx.get();
      if (TERMINAL_EXECUTION_STATES.includes(exec.state)) return;
      const final = exec.state === "ABORTING" ? "ABORTED" : "FAILED";
      const state: NodeState = final === "ABORTED" ? "ABORTED" : "FAILED";
      for (const n of await tx.nodes()) {
        if (TERMINAL_NODE_STATES.includes(n.state)) continue;
        const running = n.state === "RUNNING";
        if (running)
          await tx.finishAttempt(n.nodeId, n.attempts, {
            state: state === "ABORTED" ? "ABORTED" : "FAILED",
            error,
          });
        await tx.updateNode(n.nodeId, { state, error, finished: true });
        if (n.cacheKey)
          await tx.releaseReservation(n.cacheKey, `${executionId}/${n.nodeId}/${n.attempts}`);
        ended.push({
          nodeId: n.nodeId,
          state,
          handle: running ? attemptName(executionId, n.nodeId, n.attempts) : null,
        });
      }
      await tx.setState(final, { outputs: null, error: { message } });
    });
    await this.store.executions.release(lease).catch(() => undefined);
    for (const n of ended) {
      if (n.handle) void this.executor.abort(n.handle).catch(() => undefined);
      this.emit({ type: "node", executionId, nodeId: n.nodeId, state: n.state, error });
    }
    const exec = await this.store.executions.get(executionId);
    if (exec && TERMINAL_EXECUTION_STATES.includes(exec.state))
      this.emit({ type: "execution", executionId, state: exec.state });
    return exec;
  }
}
