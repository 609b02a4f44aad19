/**
 * Executions, their nodes and attempts, and the leases that say which runner drives each.
 *
 * Every write of an execution's state goes through `withLease`: one transaction that first
 * locks the execution row *and* checks the caller still holds the lease (owner, token, not
 * expired). A runner that lost its lease — it stalled past expiry and another claimed the
 * execution, bumping the token — gets LeaseLostError and writes nothing (fencing).
 */
import { and, asc, desc, eq, inArray, type SQL, sql } from "drizzle-orm";
import type { JsonValue } from "../../core/spec/types.js";
import type { Db } from "../connect.js";
import { LeaseLostError, NotFoundError } from "../errors.js";
import { newExecutionId } from "../ids.js";
import { type Queryable, rows, transaction } from "../query.js";
import {
  attempts,
  cacheEntries,
  cacheReservations,
  deliveries,
  executions,
  nodeExecutions,
} from "../schema.js";
import {
  type AttemptRecord,
  type AttemptState,
  type CacheStatus,
  type ExecutionError,
  type ExecutionMode,
  type ExecutionRecord,
  type ExecutionState,
  isTerminalExecutionState,
  type Lease,
  type NodeError,
  type NodeRecord,
  type NodeState,
  type Trigger,
} from "../types.js";
import {
  type CacheWrite,
  type Completion,
  type NodeWrites,
  nodeWritesSql,
  type Start,
} from "./node-sql.js";
import { VersionStore } from "./versions.js";

export type { CacheWrite, Completion, NodeWrites, Start };

/** NOTIFY channel: an execution was created or asked to stop (payload: its id). */
export const EXECUTIONS_CHANNEL = "reprise_executions";

export interface CreateExecution {
  repo: string;
  sha: string;
  workflow: string;
  /** Resolved: workflow defaults already applied by the caller. */
  inputs: Record<string, JsonValue>;
  trigger: Trigger;
  parentId?: string | null;
  mode?: ExecutionMode;
  overwriteCache?: boolean;
}

export interface ExecutionFilter {
  repo?: string;
  workflow?: string;
  state?: ExecutionState;
  sha?: string;
  pr?: number;
  limit?: number;
}

export class ExecutionStore {
  private readonly versions: VersionStore;

  constructor(private readonly db: Db) {
    this.versions = new VersionStore(db);
  }

  /** Creates the execution QUEUED with every node PENDING, pinned to the version's workflow. */
  async create(input: CreateExecution): Promise<ExecutionRecord> {
    return (await this.#create(input, null)) as ExecutionRecord;
  }

  /**
   * Creates the execution unless `claim` was taken before, by anyone: the claim is a row of the
   * inbox (`deliveries`, insert-once on its id), stored already processed with the execution as
   * its outcome, and it commits with the execution. Across replicas exactly one creates it, and a
   * crash leaves neither. Null when the claim was taken.
   */
  createOnce(
    input: CreateExecution,
    claim: { id: string; event: string; payload: unknown },
  ): Promise<ExecutionRecord | null> {
    return this.#create(input, claim);
  }

  async #create(
    input: CreateExecution,
    claim: { id: string; event: string; payload: unknown } | null,
  ): Promise<ExecutionRecord | null> {
    const id = newExecutionId();
    const created = await transaction(this.db, async (tx) => {
      if (claim) {
        // A concurrent claim of the same id waits here for the other transaction, then finds it.
        const taken = await tx
          .insert(deliveries)
          .values({
            id: claim.id,
            event: claim.event,
            action: null,
            payload: claim.payload,
            processedAt: sql`now()`,
            outcome: `started ${id}`,
          })
          .onConflictDoNothing()
          .returning({ id: deliveries.id });
        if (taken.length === 0) return false;
      }
      const wf = await this.versions.resolveWorkflow(input.repo, input.sha, input.workflow, tx);
      await tx.insert(executions).values({
        id,
        repo: input.repo,
        sha: input.sha,
        workflow: input.workflow,
        workflowDigest: wf.digest,
        inputs: input.inputs,
        trigger: input.trigger,
        parentId: input.parentId ?? null,
        mode: input.mode ?? "normal",
        overwriteCache: input.overwriteCache ?? false,
        state: "QUEUED",
      });
      const nodes = Object.values(wf.spec.nodes).map((n) => ({
        executionId: id,
        nodeId: n.id,
        taskName: n.task,
        taskDigest: wf.tasks[n.task]?.digest ?? "",
        state: "PENDING" as const,
      }));
      // Delivered on commit: idle workers claim it at once instead of on their next tick.
      await tx.execute(sql`select pg_notify(${EXECUTIONS_CHANNEL}, ${id})`);
      for (let i = 0; i < nodes.length; i += 1_000)
        await tx.insert(nodeExecutions).values(nodes.slice(i, i + 1_000));
      return true;
    });
    return created ? this.get(id) : null;
  }

  async get(id: string, db: Queryable = this.db): Promise<ExecutionRecord | null> {
    const [row] = await db.select().from(executions).where(eq(executions.id, id));
    return row ? toExecution(row) : null;
  }

  async nodes(executionId: string, db: Queryable = this.db): Promise<NodeRecord[]> {
    const rs = await db
      .select()
      .from(nodeExecutions)
      .where(eq(nodeExecutions.executionId, executionId))
      .orderBy(asc(nodeExecutions.nodeId));
    return rs.map(toNode);
  }

  async attempts(executionId: string, nodeId?: string): Promise<AttemptRecord[]> {
    const rs = await this.db
      .select()
      .from(attempts)
      .where(
        and(
          eq(attempts.executionId, executionId),
          nodeId ? eq(attempts.nodeId, nodeId) : undefined,
        ),
      )
      .orderBy(asc(attempts.nodeId), asc(attempts.attempt));
    return rs.map(toAttempt);
  }

  /** Newest first. */
  async list(filter: ExecutionFilter = {}): Promise<ExecutionRecord[]> {
    const where: SQL[] = [];
    if (filter.repo) where.push(eq(executions.repo, filter.repo));
    if (filter.workflow) where.push(eq(executions.workflow, filter.workflow));
    if (filter.state) where.push(eq(executions.state, filter.state));
    if (filter.sha) where.push(eq(executions.sha, filter.sha));
    if (filter.pr !== undefined)
      where.push(sql`(${executions.trigger} ->> 'pr')::int = ${filter.pr}`);
    const rs = await this.db
      .select()
      .from(executions)
      .where(and(...where))
      .orderBy(desc(executions.createdAt), desc(executions.id))
      .limit(filter.limit ?? 50);
    return rs.map(toExecution);
  }

  /** The workflows `repo` has executions of, with how many and the newest's time, by name. */
  async workflowSummary(
    repo: string,
  ): Promise<Array<{ workflow: string; executions: number; lastAt: Date }>> {
    const rs = await this.db
      .select({
        workflow: executions.workflow,
        executions: sql<number>`count(*)::int`,
        lastAt: sql<Date>`max(${executions.createdAt})`.mapWith(executions.createdAt),
      })
      .from(executions)
      .where(eq(executions.repo, repo))
      .groupBy(executions.workflow)
      .orderBy(asc(executions.workflow));
    return rs;
  }

  /**
   * Nodes of `repo`'s executions whose task has one of `digests`, newest execution first, at most
   * `limit`: which runs computed (or reused) a task at a given digest.
   */
  async nodesByTaskDigest(
    repo: string,
    digests: readonly string[],
    limit = 500,
  ): Promise<Array<{ execution: ExecutionRecord; node: NodeRecord }>> {
    if (digests.length === 0) return [];
    const rs = await this.db
      .select({ e: executions, n: nodeExecutions })
      .from(nodeExecutions)
      .innerJoin(executions, eq(executions.id, nodeExecutions.executionId))
      .where(and(eq(executions.repo, repo), inArray(nodeExecutions.taskDigest, [...digests])))
      .orderBy(desc(executions.createdAt), desc(executions.id), asc(nodeExecutions.nodeId))
      .limit(limit);
    return rs.map((r) => ({ execution: toExecution(r.e), node: toNode(r.n) }));
  }

  /**
   * Claims up to `limit` executions that need driving (queued, running or aborting) and whose
   * lease is free or expired, oldest first. Rows another runner is claiming right now are
   * skipped, not waited for.
   */
  async claim(
    owner: string,
    opts: {
      limit?: number;
      leaseMs: number;
      ids?: string[];
      /**
       * Also claim leases `owner` still holds, but for these executions it is driving: a
       * driver of this runner that stopped on an error left its lease behind; it need not expire.
       */
      reclaim?: string[];
    },
  ): Promise<Lease[]> {
    const only = opts.ids
      ? sql`and id in (${sql.join(
          opts.ids.map((i) => sql`${i}`),
          sql`, `,
        )})`
      : sql``;
    const driving = opts.reclaim ?? null;
    const mine =
      driving === null
        ? sql``
        : driving.length === 0
          ? sql`or lease_owner = ${owner}`
          : sql`or (lease_owner = ${owner} and id not in (${sql.join(
              driving.map((i) => sql`${i}`),
              sql`, `,
            )}))`;
    const claimed = await rows<{
      id: string;
      lease_token: string | number;
      lease_expires_at: Date | string;
    }>(
      this.db,
      sql`
        with candidates as (
          select id from executions
          where state in ('QUEUED', 'RUNNING', 'ABORTING')
            and (lease_owner is null or lease_expires_at < now() ${mine})
            ${only}
          order by created_at, id
          limit ${opts.limit ?? 10}
          for update skip locked
        )
        update executions e
           set lease_owner = ${owner},
               lease_token = e.lease_token + 1,
               lease_expires_at = now() + make_interval(secs => ${opts.leaseMs / 1000}),
               updated_at = now()
          from candidates c
         where e.id = c.id
        returning e.id, e.lease_token, e.lease_expires_at`,
    );
    return claimed.map((r) => ({
      executionId: r.id,
      owner,
      token: Number(r.lease_token),
      expiresAt: new Date(r.lease_expires_at),
    }));
  }

  /** Extends a held lease; false when it was lost (expired and taken, or released). */
  async renew(lease: Lease, leaseMs: number): Promise<Lease | null> {
    const [r] = await rows<{ lease_expires_at: Date | string }>(
      this.db,
      sql`update executions
             set lease_expires_at = now() + make_interval(secs => ${leaseMs / 1000})
           where id = ${lease.executionId} and lease_owner = ${lease.owner} and lease_token = ${lease.token}
             and lease_expires_at > now()
       returning lease_expires_at`,
    );
    return r ? { ...lease, expiresAt: new Date(r.lease_expires_at) } : null;
  }

  async release(lease: Lease): Promise<boolean> {
    const r = await this.db
      .update(executions)
      .set({ leaseOwner: null, leaseExpiresAt: null })
      .where(
        and(
          eq(executions.id, lease.executionId),
          eq(executions.leaseOwner, lease.owner),
          eq(executions.leaseToken, lease.token),
        ),
      )
      .returning({ id: executions.id });
    return r.length > 0;
  }

  /**
   * Frees every lease. Only for the embedded database: its directory lock proves no other
   * process is alive to hold one, so leases left by a killed process need not wait to expire.
   */
  async releaseAllLeases(): Promise<number> {
    const r = await this.db
      .update(executions)
      .set({ leaseOwner: null, leaseExpiresAt: null })
      .where(sql`lease_owner is not null`)
      .returning({ id: executions.id });
    return r.length;
  }

  /**
   * Asks for an execution to stop. Any process may ask; the lease holder carries it out
   * (ABORTING -> ABORTED). Returns false when the execution had already finished.
   */
  async requestAbort(id: string): Promise<boolean> {
    const r = await this.db
      .update(executions)
      .set({ state: "ABORTING", updatedAt: sql`now()` })
      .where(and(eq(executions.id, id), inArray(executions.state, ["QUEUED", "RUNNING"])))
      .returning({ id: executions.id });
    if (r.length > 0) await this.db.execute(sql`select pg_notify(${EXECUTIONS_CHANNEL}, ${id})`);
    return r.length > 0;
  }

  /** `ExecutionTx.writeNodes` as one fenced statement: the engine's hot path, one round trip. */
  async writeNodes(lease: Lease, writes: NodeWrites): Promise<{ cached: number }> {
    const [r] = await rows<{ leased: number; cached: number }>(
      this.db,
      nodeWritesSql(lease.executionId, writes, lease),
    );
    if (!r || r.leased === 0) throw new LeaseLostError(lease.executionId, lease.owner);
    return { cached: r.cached };
  }

  async startAttempt(lease: Lease, nodeId: string, attempt: number, handle: string): Promise<void> {
    await this.writeNodes(lease, { starts: [{ nodeId, attempt, handle }] });
  }

  async completeNode(lease: Lease, nodeId: string, done: Completion): Promise<{ cached: boolean }> {
    const r = await this.writeNodes(lease, { completions: [{ ...done, nodeId }] });
    return { cached: r.cached > 0 };
  }

  /**
   * Runs `fn` in one transaction, fenced by the lease: if the caller no longer holds it, nothing
   * is written and LeaseLostError is thrown.
   */
  async withLease<T>(lease: Lease, fn: (tx: ExecutionTx) => Promise<T>): Promise<T> {
    return transaction(this.db, async (tx) => {
      const held = await rows<{ id: string }>(
        tx,
        sql`select id from executions
             where id = ${lease.executionId} and lease_owner = ${lease.owner} and lease_token = ${lease.token}
               and lease_expires_at > now()
             for update`,
      );
      if (held.length === 0) throw new LeaseLostError(lease.executionId, lease.owner);
      return fn(new ExecutionTx(tx, lease.executionId, this));
    });
  }
}

export interface NodePatch {
  state?: NodeState;
  cacheStatus?: CacheStatus | null;
  cacheKey?: string | null;
  cacheReason?: string | null;
  inputs?: Record<string, JsonValue> | null;
  outputs?: Record<string, JsonValue> | null;
  attempts?: number;
  userFailures?: number;
  systemFailures?: number;
  source?: { execution: string; node: string } | null;
  error?: NodeError | null;
  started?: boolean;
  finished?: boolean;
}

export interface AttemptResult {
  state: Exclude<AttemptState, "RUNNING">;
  error?: NodeError | null;
  logRef?: string | null;
}

/** The writes of one execution inside a fenced transaction. */
export class ExecutionTx {
  constructor(
    readonly tx: Queryable,
    readonly executionId: string,
    private readonly store: ExecutionStore,
  ) {}

  get(): Promise<ExecutionRecord> {
    return this.store.get(this.executionId, this.tx).then((e) => {
      if (!e) throw new NotFoundError(`execution ${this.executionId} not found`);
      return e;
    });
  }

  nodes(): Promise<NodeRecord[]> {
    return this.store.nodes(this.executionId, this.tx);
  }

  async node(nodeId: string): Promise<NodeRecord> {
    const [r] = await this.tx
      .select()
      .from(nodeExecutions)
      .where(
        and(eq(nodeExecutions.executionId, this.executionId), eq(nodeExecutions.nodeId, nodeId)),
      );
    if (!r) throw new NotFoundError(`execution ${this.executionId} has no node ${nodeId}`);
    return toNode(r);
  }

  async setState(
    state: ExecutionState,
    extra: {
      outputs?: Record<string, JsonValue> | null;
      error?: ExecutionError | null;
    } = {},
  ): Promise<void> {
    const terminal = isTerminalExecutionState(state);
    await this.tx
      .update(executions)
      .set({
        state,
        ...(extra.outputs !== undefined ? { outputs: extra.outputs } : {}),
        ...(extra.error !== undefined ? { error: extra.error } : {}),
        startedAt: state === "RUNNING" ? sql`coalesce(${executions.startedAt}, now())` : undefined,
        finishedAt: terminal ? sql`now()` : undefined,
        updatedAt: sql`now()`,
      })
      .where(eq(executions.id, this.executionId));
  }

  async updateNodes(nodeIds: readonly string[], patch: NodePatch): Promise<void> {
    if (nodeIds.length === 0) return;
    const set: Partial<typeof nodeExecutions.$inferInsert> & Record<string, unknown> = {
      updatedAt: sql`now()` as never,
    };
    if (patch.state !== undefined) set.state = patch.state;
    if (patch.cacheStatus !== undefined) set.cacheStatus = patch.cacheStatus;
    if (patch.cacheKey !== undefined) set.cacheKey = patch.cacheKey;
    if (patch.cacheReason !== undefined) set.cacheReason = patch.cacheReason;
    if (patch.inputs !== undefined) set.inputs = patch.inputs;
    if (patch.outputs !== undefined) set.outputs = patch.outputs;
    if (patch.attempts !== undefined) set.attempts = patch.attempts;
    if (patch.userFailures !== undefined) set.userFailures = patch.userFailures;
    if (patch.systemFailures !== undefined) set.systemFailures = patch.systemFailures;
    if (patch.source !== undefined) {
      set.sourceExecutionId = patch.source?.execution ?? null;
      set.sourceNodeId = patch.source?.node ?? null;
    }
    if (patch.error !== undefined) set.error = patch.error;
    if (patch.started) set.startedAt = sql`coalesce(${nodeExecutions.startedAt}, now())` as never;
    if (patch.finished) set.finishedAt = sql`now()` as never;
    await this.tx
      .update(nodeExecutions)
      .set(set)
      .where(
        and(
          eq(nodeExecutions.executionId, this.executionId),
          inArray(nodeExecutions.nodeId, [...nodeIds]),
        ),
      );
  }

  /** Many nodes ready at once (a fan-out): QUEUED with their inputs and cache keys, one statement. */
  async queueNodes(
    nodes: ReadonlyArray<{
      nodeId: string;
      inputs: Record<string, JsonValue>;
      cacheKey: string | null;
      cacheStatus: CacheStatus;
      cacheReason?: string | null;
    }>,
  ): Promise<void> {
    if (nodes.length === 0) return;
    const rowsJson = JSON.stringify(
      nodes.map((n) => ({
        node_id: n.nodeId,
        inputs: n.inputs,
        cache_key: n.cacheKey,
        cache_status: n.cacheStatus,
        cache_reason: n.cacheReason ?? null,
      })),
    );
    await this.tx.execute(sql`
      update node_executions n
         set state = 'QUEUED', inputs = v.inputs, cache_key = v.cache_key, cache_status = v.cache_status,
             cache_reason = v.cache_reason, updated_at = now()
        from jsonb_to_recordset(${rowsJson}::jsonb) as v(node_id text, inputs jsonb, cache_key text, cache_status text, cache_reason text)
       where n.execution_id = ${this.executionId} and n.node_id = v.node_id`);
  }

  updateNode(nodeId: string, patch: NodePatch): Promise<void> {
    return this.updateNodes([nodeId], patch);
  }

  /** Launches and successes of any number of nodes, in one statement (node-sql.ts). */
  async writeNodes(writes: NodeWrites): Promise<{ cached: number }> {
    const [r] = await rows<{ cached: number }>(
      this.tx,
      nodeWritesSql(this.executionId, writes, null),
    );
    return { cached: r?.cached ?? 0 };
  }

  /** Records a launched attempt under its deterministic handle, and the node as RUNNING. */
  async startAttempt(nodeId: string, attempt: number, handle: string): Promise<void> {
    await this.writeNodes({ starts: [{ nodeId, attempt, handle }] });
  }

  async finishAttempt(nodeId: string, attempt: number, result: AttemptResult): Promise<void> {
    await this.tx
      .update(attempts)
      .set({
        state: result.state,
        errorKind: result.error?.kind ?? null,
        errorReason: result.error?.reason ?? null,
        errorMessage: result.error?.message ?? null,
        exitCode: result.error?.exitCode ?? null,
        logRef: result.logRef ?? null,
        finishedAt: sql`now()`,
      })
      .where(
        and(
          eq(attempts.executionId, this.executionId),
          eq(attempts.nodeId, nodeId),
          eq(attempts.attempt, attempt),
        ),
      );
  }

  /**
   * A node's success, all at once (docs/design.md section 5): the attempt, the node's outputs and
   * state, the cache entry (first writer wins, unless overwriting) and the release of the
   * reservation. Returns whether this node's result became the cache entry.
   */
  async completeNode(nodeId: string, done: Completion): Promise<{ cached: boolean }> {
    const r = await this.writeNodes({ completions: [{ ...done, nodeId }] });
    return { cached: r.cached > 0 };
  }

  /** A node served from the cache (or recovered): SUCCEEDED with its lineage, no attempt run. */
  async resolveNodeFrom(
    nodeId: string,
    from: {
      status: "HIT" | "RECOVERED";
      cacheKey: string | null;
      inputs: Record<string, JsonValue>;
      outputs: Record<string, JsonValue>;
      source: { execution: string; node: string };
    },
  ): Promise<void> {
    if (from.status === "HIT" && from.cacheKey) {
      await this.tx
        .update(cacheEntries)
        .set({ lastHitAt: sql`now()`, hitCount: sql`${cacheEntries.hitCount} + 1` })
        .where(eq(cacheEntries.key, from.cacheKey));
    }
    await this.updateNode(nodeId, {
      state: "SUCCEEDED",
      cacheStatus: from.status,
      cacheKey: from.cacheKey,
      cacheReason: null,
      inputs: from.inputs,
      outputs: from.outputs,
      source: from.source,
      error: null,
      started: true,
      finished: true,
    });
  }

  /**
   * Removes a cache entry found broken (its artifacts are gone), unless another node has
   * replaced it meanwhile: the key is then free for the result computed again.
   */
  async dropCacheEntry(key: string, source: { execution: string; node: string }): Promise<void> {
    await this.tx
      .delete(cacheEntries)
      .where(
        and(
          eq(cacheEntries.key, key),
          eq(cacheEntries.sourceExecutionId, source.execution),
          eq(cacheEntries.sourceNodeId, source.node),
        ),
      );
  }

  /** Releases a reservation this execution holds, on any terminal state of the node. */
  releaseReservation(key: string, owner: string): Promise<boolean> {
    return releaseReservation(this.tx, key, owner);
  }
}

async function releaseReservation(tx: Queryable, key: string, owner: string): Promise<boolean> {
  const r = await tx
    .delete(cacheReservations)
    .where(and(eq(cacheReservations.key, key), eq(cacheReservations.owner, owner)))
    .returning({ key: cacheReservations.key });
  return r.length > 0;
}

function toExecution(r: typeof executions.$inferSelect): ExecutionRecord {
  return {
    id: r.id,
    repo: r.repo,
    sha: r.sha,
    workflow: r.workflow,
    workflowDigest: r.workflowDigest,
    inputs: r.inputs as Record<string, JsonValue>,
    trigger: r.trigger as Trigger,
    parentId: r.parentId,
    mode: r.mode,
    overwriteCache: r.overwriteCache,
    state: r.state,
    outputs: (r.outputs as Record<string, JsonValue> | null) ?? null,
    error: (r.error as ExecutionRecord["error"]) ?? null,
    leaseOwner: r.leaseOwner,
    leaseExpiresAt: r.leaseExpiresAt,
    createdAt: r.createdAt,
    startedAt: r.startedAt,
    finishedAt: r.finishedAt,
  };
}

function toNode(r: typeof nodeExecutions.$inferSelect): NodeRecord {
  return {
    executionId: r.executionId,
    nodeId: r.nodeId,
    taskName: r.taskName,
    taskDigest: r.taskDigest,
    state: r.state,
    cacheStatus: r.cacheStatus,
    cacheKey: r.cacheKey,
    cacheReason: r.cacheReason,
    inputs: (r.inputs as NodeRecord["inputs"]) ?? null,
    outputs: (r.outputs as NodeRecord["outputs"]) ?? null,
    attempts: r.attempts,
    userFailures: r.userFailures,
    systemFailures: r.systemFailures,
    source:
      r.sourceExecutionId && r.sourceNodeId
        ? { execution: r.sourceExecutionId, node: r.sourceNodeId }
        : null,
    error: (r.error as NodeError | null) ?? null,
    startedAt: r.startedAt,
    finishedAt: r.finishedAt,
  };
}

function toAttempt(r: typeof attempts.$inferSelect): AttemptRecord {
  return { ...r };
}
