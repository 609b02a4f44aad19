/**
 * Drives one execution while this runner holds its lease, in passes: record the attempts that
 * finished since the last pass, plan from the state, read the cache, persist every transition
 * of the pass in one fenced write, then launch. Between passes it sleeps until an attempt
 * finishes, a slot frees up, a notification, or the tick. Losing the lease stops the driver
 * without writing anything more.
 *
 * While it holds the lease this driver is the only writer of the execution's nodes, so it reads
 * them once and keeps them in memory, changing them as it writes. A write that fails ends the
 * driver (a lost lease, or an error it throws), so memory never outlives a write that did not
 * land; the next driver starts again from the database.
 */

import { artifactsOf } from "../../core/artifacts/ref.js";
import { attemptName } from "../../core/engine/attempt-name.js";
import { type CachePlan, cachePlan, recoverKey } from "../../core/engine/cache-plan.js";
import { afterFailure, type NodeView, plan } from "../../core/engine/plan.js";
import { storableText } from "../../core/engine/storable.js";
import type { Digest } from "../../core/hash/digest.js";
import type { JsonValue, TaskSpec } from "../../core/spec/types.js";
import { LeaseLostError } from "../../db/errors.js";
import type { Completion, ExecutionTx, Start } from "../../db/store/executions.js";
import type {
  CacheStatus,
  ExecutionRecord,
  Lease,
  NodeRecord,
  NodeState,
  ResolvedWorkflow,
} from "../../db/types.js";
import { TERMINAL_EXECUTION_STATES } from "../../db/types.js";
import { AttemptError, type AttemptOutcome, type LaunchSpec } from "../executors/types.js";
import type { DriverHost, EngineEvent } from "./host.js";

/** A result reused instead of computed: its outputs and the node that computed them. */
type Reuse = { outputs: Record<string, JsonValue>; source: { execution: string; node: string } };

/** An attempt that ended, waiting for the next pass to record it. */
interface Finished {
  nodeId: string;
  attempt: number;
  task: TaskSpec;
  spec: LaunchSpec;
  outcome: AttemptOutcome;
  /**
   * An input artifact was gone: the upstream nodes whose outputs the store lost (each with its
   * result's lineage), to compute again before this node runs again.
   */
  lost?: Array<{ nodeId: string; source: { execution: string; node: string } | null }>;
}

/** How often one node may send its producers back for lost inputs before it fails as usual. */
const MAX_INPUT_REPAIRS = 3;

/** One pass's writes, and what to do once they are committed (or if they are not). */
class Pass {
  readonly completions: Array<Completion & { nodeId: string }> = [];
  readonly starts: Start[] = [];
  /** Nodes that became ready and are not launched in this pass, by id. */
  readonly queued = new Map<
    string,
    {
      nodeId: string;
      inputs: Record<string, JsonValue>;
      cacheKey: string | null;
      cacheStatus: CacheStatus;
      cacheReason: string | null;
    }
  >();
  /** Writes with no single-statement form: they make the pass a transaction. */
  readonly other: Array<(tx: ExecutionTx) => Promise<void>> = [];
  /** After the commit: events, launches, kills. */
  readonly afterCommit: Array<() => void | Promise<void>> = [];
  /** If the write fails: give back the slots and reservations taken for launches. */
  readonly undo: Array<() => void> = [];

  get empty(): boolean {
    return (
      this.completions.length + this.starts.length + this.queued.size + this.other.length === 0
    );
  }
}

export class Driver {
  private lease: Lease;
  private workflow: ResolvedWorkflow | null = null;
  private tasks: Record<string, TaskSpec> = {};
  /** The execution's nodes as persisted (loaded once, then kept up to date by this driver). */
  private nodes: Map<string, NodeRecord> | null = null;
  private readonly views: Record<string, NodeView> = {};
  /** Nodes RUNNING when loaded, which this driver has not attached to yet (no free slot). */
  private readonly unattached = new Set<string>();
  private recoverable: Map<string, Reuse> | null = null;
  private readonly watchers = new Map<string, Promise<void>>();
  private readonly finished: Finished[] = [];
  /** Handles already asked to stop. */
  private readonly killed = new Set<string>();
  private readonly reservations = new Map<
    string,
    { key: string; owner: string; timer: NodeJS.Timeout }
  >();
  private readonly waitingOn = new Map<string, string>();
  /** Times each node sent its producers back to compute a lost input again. */
  private readonly repairs = new Map<string, number>();
  private wakeUp: (() => void) | null = null;
  private readonly onSlot = () => this.wake();
  private woken = false;
  /** When the execution row was last read (ms); 0: read it at the next pass. */
  private execReadAt = 0;
  private lost = false;
  /** A write of this driver landed: a failure after it is not one more in a row (engine.ts). */
  progressed = false;

  constructor(
    private readonly engine: DriverHost,
    lease: Lease,
    private readonly signal?: AbortSignal,
  ) {
    this.lease = lease;
  }

  private get store() {
    return this.engine.store;
  }

  /**
   * Wakes the driver. `changed` (a notification: the execution was asked to stop) makes the
   * next pass read the execution row again; otherwise it is read again once per tick, so a
   * missed notification costs at most a tick even while the driver never sleeps.
   */
  wake(changed = false): void {
    if (changed) this.execReadAt = 0;
    this.woken = true;
    this.wakeUp?.();
  }

  async run(): Promise<ExecutionRecord | null> {
    const renew = setInterval(
      () => void this.renew(),
      Math.max(50, Math.floor(this.engine.leaseMs / 3)),
    );
    try {
      let exec: ExecutionRecord | null = null;
      for (;;) {
        // Only the lease holder changes the state, but for a request to stop (ABORTING).
        if (!exec || Date.now() - this.execReadAt >= this.engine.tickMs) {
          this.execReadAt = Date.now();
          exec = await this.store.executions.get(this.lease.executionId);
        }
        if (!exec || TERMINAL_EXECUTION_STATES.includes(exec.state)) break;
        this.woken = false;
        const ended = await this.reconcile(exec);
        if (ended || this.lost || this.signal?.aborted) break;
        // The pass started it: the row says RUNNING now.
        if (exec.state === "QUEUED") exec = { ...exec, state: "RUNNING" };
        if (!this.woken) await this.nap();
      }
    } catch (e) {
      if (!(e instanceof LeaseLostError)) throw e;
      this.lost = true;
    } finally {
      clearInterval(renew);
      this.engine.cancelSlotWait(this.onSlot);
      // Attempts still running keep running (they outlive the runner): the next driver
      // re-attaches to them by handle and records their outcomes.
      if (!this.lost) await this.store.executions.release(this.lease).catch(() => undefined);
      for (const r of this.reservations.values()) clearInterval(r.timer);
    }
    return this.store.executions.get(this.lease.executionId);
  }

  /** Sleeps until woken or the tick; the timer is cleared on wake so nothing outlives the run. */
  private nap(): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => this.wake(true), this.engine.tickMs);
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

  /** Pinning: the graph comes from the execution's own version, read once; versions are immutable. */
  private async load(exec: ExecutionRecord): Promise<Map<string, NodeRecord>> {
    if (!this.workflow) {
      const wf = await this.store.versions.resolveWorkflow(exec.repo, exec.sha, exec.workflow);
      this.tasks = Object.fromEntries(Object.entries(wf.tasks).map(([n, t]) => [n, t.spec]));
      this.workflow = wf;
    }
    if (!this.nodes) {
      this.nodes = new Map();
      for (const n of await this.store.executions.nodes(exec.id)) this.set(n);
      for (const n of this.nodes.values()) if (n.state === "RUNNING") this.unattached.add(n.nodeId);
    }
    return this.nodes;
  }

  private set(node: NodeRecord): void {
    this.nodes?.set(node.nodeId, node);
    this.views[node.nodeId] = { state: node.state, outputs: node.outputs, error: node.error };
  }

  private node(id: string): NodeRecord {
    return this.nodes?.get(id) as NodeRecord;
  }

  /** One pass; true when it ended the execution. */
  private async reconcile(exec: ExecutionRecord): Promise<boolean> {
    await this.load(exec);
    const wf = this.workflow as ResolvedWorkflow;
    const pass = new Pass();
    for (const f of this.finished.splice(0)) this.recordOutcome(exec, pass, f);

    const actions = plan({
      state: exec.state,
      workflow: wf.spec,
      tasks: this.tasks,
      inputs: exec.inputs,
      nodes: this.views,
    });
    const ready: Array<{ node: NodeRecord; inputs: Record<string, JsonValue>; cp: CachePlan }> = [];
    for (const a of actions) {
      switch (a.kind) {
        case "start":
          pass.other.push((tx) => tx.setState("RUNNING"));
          pass.afterCommit.push(() =>
            this.engine.emit({ type: "execution", executionId: exec.id, state: "RUNNING" }),
          );
          break;
        case "skip": {
          const error = {
            kind: "user" as const,
            reason: "upstream",
            message: `upstream node "${a.upstream}" did not succeed`,
          };
          this.settle(exec, pass, a.node, { state: "SKIPPED", error });
          break;
        }
        case "fail": {
          const error = { kind: "user" as const, reason: "inputs", message: a.reason };
          this.settle(exec, pass, a.node, { state: "FAILED", error });
          break;
        }
        case "ready": {
          const node = this.node(a.node);
          const task = this.tasks[node.taskName] as TaskSpec;
          const cp = cachePlan(
            exec.repo,
            task,
            node.taskDigest as Digest,
            a.inputs,
            exec.overwriteCache,
          );
          ready.push({ node, inputs: a.inputs, cp });
          break;
        }
        case "abort":
          for (const id of a.nodes) {
            const node = this.node(id);
            if (node.state === "RUNNING") this.kill(exec, node);
            else this.settle(exec, pass, id, { state: "ABORTED", error: null });
          }
          break;
        case "finish":
          pass.other.push((tx) => tx.setState(a.state, { outputs: a.outputs, error: a.error }));
          pass.afterCommit.push(() =>
            this.engine.emit({ type: "execution", executionId: exec.id, state: a.state }),
          );
          break;
        case "launch":
          break;
      }
    }

    if (exec.state !== "ABORTING") {
      await this.resolveReady(exec, pass, ready);
      this.attachRunning(exec);
      // QUEUED nodes (retries, waiters, nodes that found no free slot), then those ready now.
      const candidates: NodeRecord[] = [];
      for (const n of this.nodes?.values() ?? [])
        if (n.state === "QUEUED" && !this.watchers.has(n.nodeId)) candidates.push(n);
      await this.launchable(exec, pass, candidates);
    }
    await this.write(pass);
    return actions.some((a) => a.kind === "finish");
  }

  /** Ready nodes: served from the parent (recover) or the cache, or QUEUED to be launched. */
  private async resolveReady(
    exec: ExecutionRecord,
    pass: Pass,
    ready: Array<{ node: NodeRecord; inputs: Record<string, JsonValue>; cp: CachePlan }>,
  ): Promise<void> {
    // Reads first: the parent's results for recover, then the cache, all before the write.
    const hits = await this.store.cache.lookupMany(
      ready.flatMap(({ cp }) =>
        cp.enabled && cp.lookup ? [{ key: cp.key, ttlSeconds: cp.ttlSeconds }] : [],
      ),
    );
    const decided = await Promise.all(
      ready.map(async ({ node, inputs, cp }) => {
        const task = this.tasks[node.taskName] as TaskSpec;
        let reason: string | null = null;
        const recovered =
          exec.mode === "recover"
            ? (await this.recoverIndex(exec)).get(recoverKey(node.taskDigest, inputs))
            : undefined;
        if (recovered) {
          reason = await this.missingArtifact(task, recovered.outputs, "the recovered result");
          if (!reason)
            return { node, inputs, cp, reuse: { ...recovered, status: "RECOVERED" as const } };
        }
        const hit = cp.enabled && cp.lookup ? hits.get(cp.key) : undefined;
        if (hit) {
          reason = await this.missingArtifact(task, hit.outputs, "the cached result");
          if (!reason) {
            const reuse = { outputs: hit.outputs, source: hit.source, status: "HIT" as const };
            return { node, inputs, cp, reuse };
          }
          this.dropBrokenEntry(pass, hit.key, hit.source);
        }
        return { node, inputs, cp, reuse: null, reason };
      }),
    );
    for (const d of decided) {
      const { node, inputs, cp } = d;
      if (d.reuse) {
        this.reuse(exec, pass, node.nodeId, inputs, cp, d.reuse);
        continue;
      }
      const cacheStatus: CacheStatus = !cp.enabled
        ? "DISABLED"
        : exec.overwriteCache
          ? "SKIPPED"
          : "MISS";
      const row = {
        nodeId: node.nodeId,
        inputs,
        cacheKey: cp.enabled ? cp.key : null,
        cacheStatus,
        cacheReason: d.reason ?? null,
      };
      pass.queued.set(node.nodeId, row);
      this.set({ ...node, ...row, state: "QUEUED" });
    }
  }

  /**
   * Self-repair: a result whose artifacts are not all in the store is not served (the node runs
   * again and stores them anew). One presence check per artifact (a stat, a HEAD), no hashing:
   * bytes are verified when they are read. Says which artifact is missing, or null.
   */
  private async missingArtifact(
    task: TaskSpec,
    outputs: Record<string, JsonValue>,
    what: string,
  ): Promise<string | null> {
    const store = this.engine.artifacts;
    const refs = artifactsOf(task.outputs, outputs);
    if (!store || refs.length === 0) return null;
    const present = await Promise.all(refs.map((r) => store.has(r.ref.artifact)));
    const i = present.indexOf(false);
    if (i < 0) return null;
    const missing = refs[i] as (typeof refs)[number];
    return `${what}'s artifact ${missing.ref.artifact} (output "${missing.name}") is missing from the store ${store.location}: running the task again`;
  }

  /** A cache entry whose artifacts are gone is removed, so the node's new result can take its key. */
  private dropBrokenEntry(
    pass: Pass,
    key: string,
    source: { execution: string; node: string },
  ): void {
    pass.other.push((tx) => tx.dropCacheEntry(key, source));
  }

  /**
   * Launches QUEUED nodes while slots are free: a slot, then (cacheable) the reservation and a
   * last cache look, then the start, written with the pass. A node launched in the pass it became
   * ready in goes straight to RUNNING: its QUEUED write is folded into the start.
   */
  private async launchable(exec: ExecutionRecord, pass: Pass, nodes: NodeRecord[]): Promise<void> {
    const taken: NodeRecord[] = [];
    for (const n of nodes) {
      if (!this.engine.takeSlot()) {
        this.engine.waitForSlot(this.onSlot);
        break;
      }
      taken.push(n);
    }
    await Promise.all(taken.map((n) => this.launchOne(exec, pass, n)));
  }

  private async launchOne(exec: ExecutionRecord, pass: Pass, node: NodeRecord): Promise<void> {
    const task = this.tasks[node.taskName] as TaskSpec;
    const inputs = node.inputs ?? {};
    const cp = cachePlan(exec.repo, task, node.taskDigest as Digest, inputs, exec.overwriteCache);
    const attempt = node.attempts + 1;
    const queuedNow = pass.queued.get(node.nodeId);
    if (cp.enabled) {
      const owner = `${exec.id}/${node.nodeId}/${attempt}`;
      const r = await this.store.cache.reserve(cp.key, exec.repo, owner, this.engine.reservationMs);
      if (!r.acquired) {
        this.engine.releaseSlot(false);
        if (this.waitingOn.get(node.nodeId) !== r.owner) {
          this.waitingOn.set(node.nodeId, r.owner);
          pass.afterCommit.push(() =>
            this.engine.emit({
              type: "waiting",
              executionId: exec.id,
              nodeId: node.nodeId,
              holder: r.owner,
            }),
          );
        }
        return;
      }
      this.waitingOn.delete(node.nodeId);
      // The holder may have finished between our lookup and our reservation (it writes the entry
      // and releases in one statement): look again now that nobody else can be computing it.
      const found = cp.lookup ? await this.store.cache.lookup(cp.key, cp.ttlSeconds) : null;
      const broken =
        found && (await this.missingArtifact(task, found.outputs, "the cached result"));
      if (found && broken) {
        this.dropBrokenEntry(pass, found.key, found.source);
        if (queuedNow) queuedNow.cacheReason = broken;
      }
      const hit = broken ? null : found;
      if (hit) {
        this.engine.releaseSlot(false);
        pass.queued.delete(node.nodeId);
        this.reuse(exec, pass, node.nodeId, inputs, cp, {
          outputs: hit.outputs,
          source: hit.source,
          status: "HIT",
        });
        pass.other.push((tx) => tx.releaseReservation(cp.key, owner).then(() => undefined));
        pass.undo.push(() => void this.store.cache.release(cp.key, owner).catch(() => undefined));
        return;
      }
      this.holdReservation(node.nodeId, cp.key, owner);
      pass.undo.push(() => this.dropReservation(node.nodeId, true));
    }
    const handle = attemptName(exec.id, node.nodeId, attempt);
    // Persisted before launched: a crash in between leaves a handle with nothing behind it,
    // which the executor reports as lost (a system failure, retried).
    pass.queued.delete(node.nodeId);
    pass.starts.push({
      nodeId: node.nodeId,
      attempt,
      handle,
      ...(queuedNow ? { node: queuedNow } : {}),
    });
    const running: NodeRecord = { ...node, state: "RUNNING", attempts: attempt };
    this.set(running);
    pass.undo.push(() => this.engine.releaseSlot(false));
    pass.afterCommit.push(() => {
      this.emitNode(exec.id, node.nodeId, "RUNNING", { attempt, cache: node.cacheStatus });
      const spec = this.launchSpec(exec, running, task, handle);
      this.watch(node.nodeId, attempt, task, spec, () => this.engine.executor.launch(spec));
    });
  }

  /** A node SUCCEEDED from the cache or the parent, with lineage; no attempt runs. */
  private reuse(
    exec: ExecutionRecord,
    pass: Pass,
    nodeId: string,
    inputs: Record<string, JsonValue>,
    cp: CachePlan,
    reuse: Reuse & { status: "HIT" | "RECOVERED" },
  ): void {
    const cacheKey = cp.enabled ? cp.key : null;
    pass.other.push((tx) =>
      tx.resolveNodeFrom(nodeId, {
        status: reuse.status,
        cacheKey,
        inputs,
        outputs: reuse.outputs,
        source: reuse.source,
      }),
    );
    this.set({
      ...this.node(nodeId),
      state: "SUCCEEDED",
      cacheStatus: reuse.status,
      cacheKey,
      inputs,
      outputs: reuse.outputs,
      source: reuse.source,
      error: null,
    });
    pass.afterCommit.push(() => {
      this.emitNode(exec.id, nodeId, "SUCCEEDED", { cache: reuse.status, source: reuse.source });
      // No attempt will end to wake the driver: what depends on this node is ready now.
      this.woken = true;
    });
  }

  /** A node that ends without running (skipped, unresolvable inputs, aborted before launch). */
  private settle(
    exec: ExecutionRecord,
    pass: Pass,
    nodeId: string,
    to: { state: "SKIPPED" | "FAILED" | "ABORTED"; error: NodeRecord["error"] },
  ): void {
    pass.other.push((tx) =>
      tx.updateNode(nodeId, { state: to.state, error: to.error, finished: true }),
    );
    this.set({ ...this.node(nodeId), state: to.state, error: to.error });
    pass.afterCommit.push(() => {
      this.emitNode(exec.id, nodeId, to.state, to.error ? { error: to.error } : {});
      this.woken = true;
    });
  }

  /** An attempt's outcome as this pass's transitions: success (with its cache entry) or failure. */
  private recordOutcome(exec: ExecutionRecord, pass: Pass, f: Finished): void {
    const { nodeId, attempt, task, spec, outcome } = f;
    const node = this.node(nodeId);
    const held = this.reservations.get(nodeId);
    // The reservation ends with the node's write; the heartbeat stops now either way.
    this.dropReservation(nodeId, false);
    if (!outcome.ok && f.lost?.length && (this.repairs.get(nodeId) ?? 0) < MAX_INPUT_REPAIRS) {
      this.repairInputs(exec, pass, f, held);
      return;
    }
    if (outcome.ok) {
      const cp = cachePlan(
        exec.repo,
        task,
        spec.taskDigest as Digest,
        spec.inputs,
        exec.overwriteCache,
      );
      const artifacts = artifactsOf(task.outputs, outcome.outputs).map(({ ref }) => ({
        digest: ref.artifact,
        type: ref.type,
        size: ref.size,
        files: ref.files ?? null,
      }));
      pass.completions.push({
        nodeId,
        attempt,
        outputs: outcome.outputs,
        logRef: outcome.logRef,
        ...(artifacts.length > 0 ? { artifacts } : {}),
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
      });
      this.set({ ...node, state: "SUCCEEDED", outputs: outcome.outputs, error: null });
      pass.afterCommit.push(() => this.emitNode(exec.id, nodeId, "SUCCEEDED", { attempt }));
      return;
    }
    // An executor's message may quote what a task wrote; the database must be able to store it.
    const error = { ...outcome.error, message: storableText(outcome.error.message) };
    const aborted = error.reason === "aborted";
    const d = afterFailure(task, node, error);
    const final: NodeState = aborted ? "ABORTED" : d.retry ? "QUEUED" : "FAILED";
    pass.other.push(async (tx) => {
      await tx.finishAttempt(nodeId, attempt, {
        state: aborted ? "ABORTED" : "FAILED",
        error,
        logRef: outcome.logRef,
      });
      await tx.updateNode(nodeId, {
        state: final,
        error,
        userFailures: d.userFailures,
        systemFailures: d.systemFailures,
        finished: final !== "QUEUED",
      });
      if (held) await tx.releaseReservation(held.key, held.owner);
    });
    this.set({
      ...node,
      state: final,
      error,
      userFailures: d.userFailures,
      systemFailures: d.systemFailures,
    });
    pass.afterCommit.push(() => this.emitNode(exec.id, nodeId, final, { attempt, error }));
  }

  /**
   * Self-repair within an execution: the store lost an artifact an upstream node produced (or
   * served from the cache) before this node could read it. The producers go back to PENDING,
   * their broken cache entries are removed, and this node waits for them again: the planner
   * then runs them (their results are not in the cache any more) and this node after them.
   * Neither failure counts against retries; a node that keeps losing inputs fails as usual.
   */
  private repairInputs(
    exec: ExecutionRecord,
    pass: Pass,
    f: Finished,
    held: { key: string; owner: string } | undefined,
  ): void {
    const { nodeId, attempt, outcome } = f;
    const error = (outcome as Extract<AttemptOutcome, { ok: false }>).error;
    this.repairs.set(nodeId, (this.repairs.get(nodeId) ?? 0) + 1);
    const lost = f.lost ?? [];
    pass.other.push(async (tx) => {
      await tx.finishAttempt(nodeId, attempt, { state: "FAILED", error, logRef: outcome.logRef });
      const reset = { state: "PENDING" as const, outputs: null, source: null, error: null };
      await tx.updateNodes([nodeId, ...lost.map((l) => l.nodeId)], {
        ...reset,
        cacheStatus: null,
        cacheReason: null,
      });
      for (const l of lost) {
        const n = this.node(l.nodeId);
        if (n.cacheKey && l.source) await tx.dropCacheEntry(n.cacheKey, l.source);
      }
      if (held) await tx.releaseReservation(held.key, held.owner);
    });
    for (const id of [nodeId, ...lost.map((l) => l.nodeId)])
      this.set({ ...this.node(id), state: "PENDING", outputs: null, source: null, error: null });
    pass.afterCommit.push(() =>
      this.emitNode(exec.id, nodeId, "PENDING", {
        attempt,
        error: {
          ...error,
          message: `${error.message}; computing ${lost.map((l) => `"${l.nodeId}"`).join(", ")} again`,
        },
      }),
    );
  }

  /**
   * The upstream nodes of `nodeId` whose artifact outputs are not (all) in the store any more,
   * after an attempt found one of its inputs gone.
   */
  private async lostProducers(nodeId: string): Promise<NonNullable<Finished["lost"]>> {
    const store = this.engine.artifacts;
    const wf = this.workflow;
    if (!store || !wf) return [];
    const upstream = new Set<string>();
    for (const b of Object.values(wf.spec.nodes[nodeId]?.inputs ?? {}))
      if (b.kind === "output") upstream.add(b.node);
    const lost: NonNullable<Finished["lost"]> = [];
    for (const id of upstream) {
      const n = this.node(id);
      const task = this.tasks[n.taskName] as TaskSpec;
      if (n.state === "SUCCEEDED" && (await this.missingArtifact(task, n.outputs ?? {}, "its")))
        lost.push({
          nodeId: id,
          source: n.source ?? { execution: n.executionId, node: n.nodeId },
        });
    }
    return lost;
  }

  /**
   * Persists the pass: launches and successes alone are one fenced statement; anything else
   * makes it one fenced transaction with the same statements in it.
   */
  private async write(pass: Pass): Promise<void> {
    if (!pass.empty) {
      try {
        const nodes = { completions: pass.completions, starts: pass.starts };
        if (pass.other.length === 0 && pass.queued.size === 0)
          await this.store.executions.writeNodes(this.lease, nodes);
        else
          await this.store.executions.withLease(this.lease, async (tx) => {
            for (const w of pass.other) await w(tx);
            await tx.queueNodes([...pass.queued.values()]);
            await tx.writeNodes(nodes);
          });
      } catch (e) {
        for (const u of pass.undo) u();
        throw e;
      }
      this.progressed = true;
    }
    for (const t of pass.afterCommit) await t();
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

  private emitNode(
    executionId: string,
    nodeId: string,
    state: NodeState,
    extra: Partial<Extract<EngineEvent, { type: "node" }>> = {},
  ): void {
    this.engine.emit({ type: "node", executionId, nodeId, state, ...extra });
  }

  /** Nodes found RUNNING when loaded (a restart, or a lease taken over): watch them, slots allowing. */
  private attachRunning(exec: ExecutionRecord): void {
    for (const id of this.unattached) {
      if (!this.engine.takeSlot()) {
        this.engine.waitForSlot(this.onSlot); // on a later pass, when a slot is free
        return;
      }
      this.unattached.delete(id);
      this.attach(exec, this.node(id));
    }
  }

  private attach(exec: ExecutionRecord, node: NodeRecord): void {
    const task = this.tasks[node.taskName] as TaskSpec;
    if (node.cacheKey)
      this.holdReservation(
        node.nodeId,
        node.cacheKey,
        `${exec.id}/${node.nodeId}/${node.attempts}`,
      );
    const handle = attemptName(exec.id, node.nodeId, node.attempts);
    const spec = this.launchSpec(exec, node, task, handle);
    this.watch(node.nodeId, node.attempts, task, spec, async () => undefined);
  }

  /** Stops a running attempt; its outcome (aborted) arrives through its watcher. */
  private kill(exec: ExecutionRecord, node: NodeRecord): void {
    const handle = attemptName(exec.id, node.nodeId, node.attempts);
    if (this.killed.has(handle)) return;
    this.killed.add(handle);
    void this.engine.executor.abort(handle).catch(() => this.killed.delete(handle));
    if (this.unattached.delete(node.nodeId)) {
      // Watch it even without a free slot: its outcome ends the abort.
      this.engine.takeSlot(true);
      this.attach(exec, node);
    }
  }

  /**
   * What the executor needs for one attempt. Secrets go as references only (each executor
   * resolves them, so their values never pass through the engine or the database), and not at
   * all when the code comes from a fork's pull request: like GitHub Actions, such a run gets no
   * secrets and the task runs without them (docs/design.md section 2); the log says which were withheld.
   */
  private launchSpec(
    exec: ExecutionRecord,
    node: NodeRecord,
    task: TaskSpec,
    handle: string,
  ): LaunchSpec {
    const fromFork = exec.trigger.fork === true;
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
      inputTypes: Object.fromEntries(Object.entries(task.inputs).map(([n, d]) => [n, d.type])),
      outputs: task.outputs,
      timeoutSeconds: task.timeoutSeconds,
      secrets: {},
      secretRefs: fromFork ? [] : task.secrets,
      ...(fromFork && task.secrets.length > 0
        ? { withheldSecrets: task.secrets.map((s) => s.env) }
        : {}),
      ...(fromFork ? { untrusted: true } : {}),
      resources: task.resources,
      cacheKey: node.cacheKey,
    };
  }

  /** Runs `start`, waits for the attempt's outcome, and hands it to the next pass. */
  private watch(
    nodeId: string,
    attempt: number,
    task: TaskSpec,
    spec: LaunchSpec,
    start: () => Promise<void>,
  ): void {
    const p = (async () => {
      let outcome: AttemptOutcome;
      try {
        await start();
        outcome = await this.engine.executor.wait(spec);
      } catch (e) {
        outcome = {
          ok: false,
          error:
            e instanceof AttemptError
              ? e.error
              : { kind: "system", reason: "executor", message: (e as Error).message },
          logRef: null,
        };
      }
      const lost =
        !outcome.ok && outcome.error.reason === "input-missing"
          ? await this.lostProducers(nodeId).catch(() => [])
          : [];
      this.watchers.delete(nodeId);
      this.finished.push({
        nodeId,
        attempt,
        task,
        spec,
        outcome,
        ...(lost.length ? { lost } : {}),
      });
      // The attempt no longer runs: its slot is free for any execution of this runner.
      this.engine.releaseSlot();
      this.wake();
    })();
    this.watchers.set(nodeId, p);
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
