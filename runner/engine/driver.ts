/**
 * Drives one execution while this runner holds its lease: reconcile (plan from the persisted
 * state, persist the transitions, launch what is ready), then sleep until woken by an attempt
 * finishing, a freed slot, or the tick. Every write is fenced by the lease; losing it stops the
 * driver without writing anything more.
 */

import { attemptName } from "../../core/engine/attempt-name.js";
import { type CachePlan, cachePlan, recoverKey } from "../../core/engine/cache-plan.js";
import { afterFailure, type NodeView, plan } from "../../core/engine/plan.js";
import type { Digest } from "../../core/hash/digest.js";
import type { JsonValue, TaskSpec } from "../../core/spec/types.js";
import { LeaseLostError } from "../../db/errors.js";
import type { ExecutionTx } from "../../db/store/executions.js";
import type {
  ExecutionRecord,
  Lease,
  NodeRecord,
  NodeState,
  ResolvedWorkflow,
} from "../../db/types.js";
import { TERMINAL_EXECUTION_STATES } from "../../db/types.js";
import type { AttemptOutcome, LaunchSpec } from "../executors/types.js";
import type { Engine, EngineEvent } from "./engine.js";
import { WriteBatcher } from "./write-batcher.js";

/** A result reused instead of computed: its outputs and the node that computed them. */
type Reuse = { outputs: Record<string, JsonValue>; source: { execution: string; node: string } };

export class Driver {
  private lease: Lease;
  private workflow: ResolvedWorkflow | null = null;
  private recoverable: Map<string, Reuse> | null = null;
  private readonly watchers = new Map<string, Promise<void>>();
  private readonly reservations = new Map<
    string,
    { key: string; owner: string; timer: NodeJS.Timeout }
  >();
  private readonly waitingOn = new Map<string, string>();
  private wakeUp: (() => void) | null = null;
  private woken = false;
  private lost = false;
  private readonly writes = new WriteBatcher((fn) => this.fenced(fn));
  /** Attempts whose outcome this driver has persisted ("node/attempt"); only it writes while it holds the lease. */
  private readonly recorded = new Set<string>();

  constructor(
    private readonly engine: Engine,
    lease: Lease,
    private readonly signal?: AbortSignal,
  ) {
    this.lease = lease;
  }

  private get store() {
    return this.engine.store;
  }

  wake(): void {
    this.woken = true;
    this.wakeUp?.();
  }

  async run(): Promise<ExecutionRecord | null> {
    const renew = setInterval(
      () => void this.renew(),
      Math.max(50, Math.floor(this.engine.leaseMs / 3)),
    );
    const unsubscribe = this.engine.onSlotFreed(() => this.wake());
    try {
      for (;;) {
        const exec = await this.store.executions.get(this.lease.executionId);
        if (!exec || TERMINAL_EXECUTION_STATES.includes(exec.state)) break;
        this.woken = false;
        await this.reconcile(exec);
        if (this.lost || this.signal?.aborted) break;
        if (!this.woken) await this.nap();
      }
    } catch (e) {
      if (!(e instanceof LeaseLostError)) throw e;
      this.lost = true;
    } finally {
      clearInterval(renew);
      unsubscribe();
      if (!this.lost) {
        // Let running attempts report before giving the execution up, unless told to stop: then
        // they keep running (they outlive the runner) and the next runner re-attaches to them.
        if (!this.signal?.aborted) await Promise.allSettled([...this.watchers.values()]);
        await this.store.executions.release(this.lease).catch(() => undefined);
      }
      for (const r of this.reservations.values()) clearInterval(r.timer);
    }
    return this.store.executions.get(this.lease.executionId);
  }

  /** Sleeps until woken or the tick; the timer is cleared on wake so nothing outlives the run. */
  private nap(): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => this.wakeUp?.(), this.engine.tickMs);
      const onAbort = () => this.wakeUp?.();
      this.signal?.addEventListener("abort", onAbort, { once: true });
      this.wakeUp = () => {
        this.wakeUp = null;
        clearTimeout(timer);
        this.signal?.removeEventListener("abort", onAbort);
        resolve();
      };
    });
  }

  private async renew(): Promise<void> {
    if (this.lost) return;
    const renewed = await this.store.executions
      .renew(this.lease, this.engine.leaseMs)
      .catch(() => undefined);
    if (renewed === null) {
      this.lost = true;
      this.wake();
    } else if (renewed) this.lease = renewed;
  }

  private fenced<T>(fn: (tx: ExecutionTx) => Promise<T>): Promise<T> {
    return this.store.executions.withLease(this.lease, fn);
  }

  private async resolved(exec: ExecutionRecord): Promise<ResolvedWorkflow> {
    // Pinning: the graph comes from the execution's own version, read once; versions are immutable.
    this.workflow ??= await this.store.versions.resolveWorkflow(exec.repo, exec.sha, exec.workflow);
    return this.workflow;
  }

  private async reconcile(exec: ExecutionRecord): Promise<void> {
    const wf = await this.resolved(exec);
    const tasks: Record<string, TaskSpec> = Object.fromEntries(
      Object.entries(wf.tasks).map(([n, t]) => [n, t.spec]),
    );
    const nodes = await this.store.executions.nodes(exec.id);
    const byId = new Map(nodes.map((n) => [n.nodeId, n]));
    const views: Record<string, NodeView> = {};
    for (const n of nodes) views[n.nodeId] = { state: n.state, outputs: n.outputs, error: n.error };
    const actions = plan({
      state: exec.state,
      workflow: wf.spec,
      tasks,
      inputs: exec.inputs,
      nodes: views,
    });

    // Reads first (cache lookups, the parent's results for recover), then one fenced write. The
    // cache plan (two digests) is computed once per ready node, here.
    const decided = new Map<
      string,
      { cp: CachePlan; reuse?: Reuse & { status: "HIT" | "RECOVERED" } }
    >();
    for (const a of actions) {
      if (a.kind !== "ready") continue;
      const node = byId.get(a.node) as NodeRecord;
      const task = tasks[node.taskName] as TaskSpec;
      const cp = cachePlan(
        exec.repo,
        task,
        node.taskDigest as Digest,
        a.inputs,
        exec.overwriteCache,
      );
      const recovered =
        exec.mode === "recover"
          ? (await this.recoverIndex(exec)).get(recoverKey(node.taskDigest, a.inputs))
          : undefined;
      if (recovered) {
        decided.set(a.node, { cp, reuse: { ...recovered, status: "RECOVERED" } });
        continue;
      }
      const hit =
        cp.enabled && cp.lookup ? await this.store.cache.lookup(cp.key, cp.ttlSeconds) : null;
      decided.set(
        a.node,
        hit ? { cp, reuse: { outputs: hit.outputs, source: hit.source, status: "HIT" } } : { cp },
      );
    }

    const toKill: NodeRecord[] = [];
    const queuedNow: NodeRecord[] = [];
    const events: Array<() => void> = [];
    await this.fenced(async (tx) => {
      for (const a of actions) {
        switch (a.kind) {
          case "start":
            await tx.setState("RUNNING");
            events.push(() =>
              this.engine.emit({ type: "execution", executionId: exec.id, state: "RUNNING" }),
            );
            break;
          case "skip": {
            const error = {
              kind: "user" as const,
              reason: "upstream",
              message: `upstream node "${a.upstream}" did not succeed`,
            };
            await tx.updateNode(a.node, { state: "SKIPPED", error, finished: true });
            events.push(() => this.emitNode(exec.id, a.node, "SKIPPED", { error }));
            break;
          }
          case "fail": {
            const error = { kind: "user" as const, reason: "inputs", message: a.reason };
            await tx.updateNode(a.node, { state: "FAILED", error, finished: true });
            events.push(() => this.emitNode(exec.id, a.node, "FAILED", { error }));
            break;
          }
          case "ready": {
            const node = byId.get(a.node) as NodeRecord;
            const { cp, reuse } = decided.get(a.node) as {
              cp: CachePlan;
              reuse?: Reuse & { status: "HIT" | "RECOVERED" };
            };
            if (reuse) {
              await tx.resolveNodeFrom(a.node, {
                status: reuse.status,
                cacheKey: cp.enabled ? cp.key : null,
                inputs: a.inputs,
                outputs: reuse.outputs,
                source: reuse.source,
              });
              events.push(() =>
                this.emitNode(exec.id, a.node, "SUCCEEDED", {
                  cache: reuse.status,
                  source: reuse.source,
                }),
              );
            } else {
              const cacheStatus = !cp.enabled
                ? "DISABLED"
                : exec.overwriteCache
                  ? "SKIPPED"
                  : "MISS";
              queuedNow.push({
                ...node,
                state: "QUEUED",
                inputs: a.inputs,
                cacheKey: cp.enabled ? cp.key : null,
                cacheStatus,
              });
              events.push(() => this.emitNode(exec.id, a.node, "QUEUED", { cache: cacheStatus }));
            }
            break;
          }
          case "abort":
            for (const id of a.nodes) {
              const node = byId.get(id) as NodeRecord;
              if (node.state === "RUNNING") toKill.push(node);
              else {
                await tx.updateNode(id, { state: "ABORTED", finished: true });
                events.push(() => this.emitNode(exec.id, id, "ABORTED"));
              }
            }
            break;
          case "finish":
            await tx.setState(a.state, { outputs: a.outputs, error: a.error });
            events.push(() =>
              this.engine.emit({ type: "execution", executionId: exec.id, state: a.state }),
            );
            break;
          case "launch":
            break;
        }
      }
      // Every node that became ready in this pass, in one statement (a fan-out readies thousands).
      await tx.queueNodes(
        queuedNow.map((n) => ({
          nodeId: n.nodeId,
          inputs: n.inputs ?? {},
          cacheKey: n.cacheKey,
          cacheStatus: n.cacheStatus ?? "DISABLED",
        })),
      );
    });
    for (const e of events) e();
    for (const node of toKill) {
      await this.engine.executor.abort(attemptName(exec.id, node.nodeId, node.attempts));
      if (!this.watchers.has(node.nodeId)) this.attach(exec, node, tasks);
    }
    if (exec.state === "ABORTING") return;

    // Launch what is queued (including nodes queued just now), and re-attach what runs. Only
    // this driver writes the execution while it holds the lease, so what it just wrote is known
    // without reading every node again.
    for (const node of nodes) {
      if (node.state === "RUNNING" && !this.watchers.has(node.nodeId))
        this.attach(exec, node, tasks);
    }
    const queued = [...nodes.filter((n) => n.state === "QUEUED"), ...queuedNow].filter(
      (n) => !this.watchers.has(n.nodeId),
    );
    // As many at once as there are free slots; the rest wait for a slot to free up (it wakes us).
    await Promise.all(
      queued
        .slice(0, this.engine.availableSlots())
        .map((node) => this.launch(exec, node, tasks[node.taskName] as TaskSpec)),
    );
  }

  private async recoverIndex(exec: ExecutionRecord) {
    if (this.recoverable) return this.recoverable;
    const index = new Map<string, Reuse>();
    if (exec.parentId) {
      for (const n of await this.store.executions.nodes(exec.parentId)) {
        if (n.state !== "SUCCEEDED" || !n.inputs || !n.outputs) continue;
        // Lineage points at the node that computed the value, through any chain of reuse.
        const source = n.source ?? { execution: n.executionId, node: n.nodeId };
        index.set(recoverKey(n.taskDigest, n.inputs), { outputs: n.outputs, source });
      }
    }
    this.recoverable = index;
    return index;
  }

  private async launch(exec: ExecutionRecord, node: NodeRecord, task: TaskSpec): Promise<void> {
    const inputs = node.inputs ?? {};
    const cp = cachePlan(exec.repo, task, node.taskDigest as Digest, inputs, exec.overwriteCache);
    const attempt = node.attempts + 1;
    if (cp.enabled) {
      // Another execution may have populated the entry while this node waited.
      if (
        cp.lookup &&
        (await this.serveFromCache(exec, node.nodeId, inputs, cp.key, cp.ttlSeconds))
      )
        return;
      const owner = `${exec.id}/${node.nodeId}/${attempt}`;
      const r = await this.store.cache.reserve(cp.key, exec.repo, owner, this.engine.reservationMs);
      if (!r.acquired) {
        if (this.waitingOn.get(node.nodeId) !== r.owner) {
          this.waitingOn.set(node.nodeId, r.owner);
          this.engine.emit({
            type: "waiting",
            executionId: exec.id,
            nodeId: node.nodeId,
            holder: r.owner,
          });
        }
        return;
      }
      this.waitingOn.delete(node.nodeId);
      // The holder may have finished between our lookup and our reservation (it writes the entry
      // and releases in one statement): look again now that nobody else can be computing it.
      if (
        cp.lookup &&
        (await this.serveFromCache(exec, node.nodeId, inputs, cp.key, cp.ttlSeconds))
      ) {
        await this.store.cache.release(cp.key, owner);
        return;
      }
      this.holdReservation(node.nodeId, cp.key, owner);
    }
    if (!this.engine.takeSlot()) {
      this.dropReservation(node.nodeId, true);
      return;
    }
    const handle = attemptName(exec.id, node.nodeId, attempt);
    try {
      // Persisted before launched: a crash in between leaves a handle with nothing behind it,
      // which the executor reports as lost (a system failure, retried).
      await this.writes.write(
        (tx) => tx.startAttempt(node.nodeId, attempt, handle),
        () => this.store.executions.startAttempt(this.lease, node.nodeId, attempt, handle),
      );
    } catch (e) {
      this.engine.releaseSlot();
      this.dropReservation(node.nodeId, true);
      throw e;
    }
    this.emitNode(exec.id, node.nodeId, "RUNNING", { attempt });
    const spec = this.launchSpec(exec, { ...node, attempts: attempt }, task, handle);
    this.watch(exec, node.nodeId, attempt, task, spec, async () => {
      await this.engine.executor.launch(spec);
    });
  }

  private emitNode(
    executionId: string,
    nodeId: string,
    state: NodeState,
    extra: Partial<Extract<EngineEvent, { type: "node" }>> = {},
  ): void {
    this.engine.emit({ type: "node", executionId, nodeId, state, ...extra });
  }

  /** Resolves the node from the cache entry of `key` if there is one; false on a miss. */
  private async serveFromCache(
    exec: ExecutionRecord,
    nodeId: string,
    inputs: Record<string, JsonValue>,
    key: string,
    ttlSeconds: number | null,
  ): Promise<boolean> {
    const hit = await this.store.cache.lookup(key, ttlSeconds);
    if (!hit) return false;
    await this.fenced((tx) =>
      tx.resolveNodeFrom(nodeId, {
        status: "HIT",
        cacheKey: key,
        inputs,
        outputs: hit.outputs,
        source: hit.source,
      }),
    );
    this.emitNode(exec.id, nodeId, "SUCCEEDED", { cache: "HIT", source: hit.source });
    this.wake();
    return true;
  }

  /** A RUNNING node this driver does not watch yet (after a restart, or a lost lease regained). */
  private attach(exec: ExecutionRecord, node: NodeRecord, tasks: Record<string, TaskSpec>): void {
    const task = tasks[node.taskName] as TaskSpec;
    // The snapshot may predate an outcome this driver has just recorded: never record it twice.
    if (this.recorded.has(`${node.nodeId}/${node.attempts}`)) return;
    if (!this.engine.takeSlot()) return; // attach on a later pass, when a slot is free
    if (node.cacheKey)
      this.holdReservation(
        node.nodeId,
        node.cacheKey,
        `${exec.id}/${node.nodeId}/${node.attempts}`,
      );
    const handle = attemptName(exec.id, node.nodeId, node.attempts);
    this.watch(
      exec,
      node.nodeId,
      node.attempts,
      task,
      this.launchSpec(exec, node, task, handle),
      async () => undefined,
    );
  }

  private launchSpec(
    exec: ExecutionRecord,
    node: NodeRecord,
    task: TaskSpec,
    handle: string,
  ): LaunchSpec {
    return {
      handle,
      repo: exec.repo,
      sha: exec.sha,
      executionId: exec.id,
      nodeId: node.nodeId,
      attempt: node.attempts,
      taskName: task.name,
      taskDigest: node.taskDigest,
      image: task.image,
      command: task.command,
      env: task.env,
      workdir: task.workdir,
      inputs: node.inputs ?? {},
      outputs: task.outputs,
      timeoutSeconds: task.timeoutSeconds,
      secrets: {},
    };
  }

  private watch(
    exec: ExecutionRecord,
    nodeId: string,
    attempt: number,
    task: TaskSpec,
    spec: LaunchSpec,
    start: () => Promise<void>,
  ): void {
    const p = (async () => {
      try {
        let outcome: AttemptOutcome;
        try {
          await start();
          outcome = await this.engine.executor.wait(spec);
        } catch (e) {
          outcome = {
            ok: false,
            error: { kind: "system", reason: "executor", message: (e as Error).message },
            logRef: null,
          };
        }
        await this.record(exec, nodeId, attempt, task, spec, outcome);
        this.recorded.add(`${nodeId}/${attempt}`);
      } catch (e) {
        if (e instanceof LeaseLostError) this.lost = true;
        // Anything else (the database went away): the node stays RUNNING and is re-attached.
      } finally {
        this.engine.releaseSlot();
        this.watchers.delete(nodeId);
        this.wake();
      }
    })();
    this.watchers.set(nodeId, p);
  }

  private async record(
    exec: ExecutionRecord,
    nodeId: string,
    attempt: number,
    task: TaskSpec,
    spec: LaunchSpec,
    outcome: AttemptOutcome,
  ): Promise<void> {
    const held = this.reservations.get(nodeId);
    if (outcome.ok) {
      const cp = cachePlan(
        exec.repo,
        task,
        spec.taskDigest as Digest,
        spec.inputs,
        exec.overwriteCache,
      );
      // One fenced statement (attempt, node, cache entry, reservation release), group-committed
      // with the other completions that arrive meanwhile.
      const done = {
        attempt,
        outputs: outcome.outputs,
        logRef: outcome.logRef,
        ...(cp.enabled
          ? {
              cache: {
                key: cp.key,
                repo: exec.repo,
                taskName: task.name,
                taskDigest: spec.taskDigest,
                identity: cp.identity,
                overwrite: exec.overwriteCache,
              },
              ...(held ? { reservationOwner: held.owner } : {}),
            }
          : {}),
      };
      await this.writes.write(
        async (tx) => {
          await tx.completeNode(nodeId, done);
        },
        async () => {
          await this.store.executions.completeNode(this.lease, nodeId, done);
        },
      );
      this.dropReservation(nodeId, false);
      this.emitNode(exec.id, nodeId, "SUCCEEDED", { attempt });
      return;
    }
    const error = outcome.error;
    let final: "QUEUED" | "FAILED" | "ABORTED" = "FAILED";
    await this.fenced(async (tx) => {
      const aborted = error.reason === "aborted";
      await tx.finishAttempt(nodeId, attempt, {
        state: aborted ? "ABORTED" : "FAILED",
        error,
        logRef: outcome.logRef,
      });
      const node = await tx.node(nodeId);
      const d = afterFailure(task, node, error);
      final = aborted ? "ABORTED" : d.retry ? "QUEUED" : "FAILED";
      await tx.updateNode(nodeId, {
        state: final,
        error,
        userFailures: d.userFailures,
        systemFailures: d.systemFailures,
        finished: final !== "QUEUED",
      });
      if (held) await tx.releaseReservation(held.key, held.owner);
    });
    this.dropReservation(nodeId, false);
    this.emitNode(exec.id, nodeId, final, { attempt, error });
  }

  private holdReservation(nodeId: string, key: string, owner: string): void {
    this.dropReservation(nodeId, false);
    const timer = setInterval(() => {
      void this.store.cache.heartbeat(key, owner, this.engine.reservationMs).catch(() => undefined);
    }, this.engine.heartbeatMs);
    timer.unref();
    this.reservations.set(nodeId, { key, owner, timer });
  }

  private dropReservation(nodeId: string, release: boolean): void {
    const r = this.reservations.get(nodeId);
    if (!r) return;
    clearInterval(r.timer);
    this.reservations.delete(nodeId);
    if (release) void this.store.cache.release(r.key, r.owner).catch(() => undefined);
  }
}
