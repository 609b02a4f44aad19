/**
 * A node's launch and its success as single statements: data-modifying CTEs chained in one
 * query, so each transition is one round trip and atomic on its own (a statement is its own
 * transaction). With a lease, every write is conditioned on the lease still being held, so a
 * runner that lost it writes nothing and learns so from `leased = 0`.
 */
import { type SQL, sql } from "drizzle-orm";
import type { JsonValue } from "../../core/spec/types.js";
import type { Lease } from "../types.js";

export interface CacheWrite {
  key: string;
  repo: string;
  taskName: string;
  taskDigest: string;
  identity: unknown;
  /** Replace an existing entry (--overwrite-cache) instead of first-writer-wins. */
  overwrite: boolean;
}

export interface Completion {
  attempt: number;
  outputs: Record<string, JsonValue>;
  logRef?: string | null;
  cache?: CacheWrite;
  /** The reservation this node holds on `cache.key`, released in the same statement. */
  reservationOwner?: string;
}

function leaseCte(executionId: string, lease: Lease | null): SQL {
  if (!lease) return sql`lease as (select ${executionId}::text as id)`;
  return sql`lease as (
    select id from executions
     where id = ${lease.executionId} and lease_owner = ${lease.owner} and lease_token = ${lease.token}
       and lease_expires_at > now()
     for update)`;
}

const held = sql`exists (select 1 from lease)`;

/** The attempt row and the node RUNNING. Returns rows `{ leased }`. */
export function startAttemptSql(
  executionId: string,
  nodeId: string,
  attempt: number,
  handle: string,
  lease: Lease | null,
): SQL {
  return sql`with ${leaseCte(executionId, lease)},
    att as (
      insert into attempts (execution_id, node_id, attempt, handle, state)
      select ${executionId}, ${nodeId}, ${attempt}, ${handle}, 'RUNNING' where ${held}
      on conflict do nothing returning 1),
    node as (
      update node_executions
         set state = 'RUNNING', attempts = ${attempt}, started_at = coalesce(started_at, now()), updated_at = now()
       where execution_id = ${executionId} and node_id = ${nodeId} and ${held}
      returning 1)
    select (select count(*) from lease)::int as leased, (select count(*) from node)::int as nodes`;
}

/**
 * DESIGN.md section 5, all at once: the attempt SUCCEEDED, the node SUCCEEDED with its outputs,
 * the cache entry (first writer wins, or replaced when overwriting) and the reservation released.
 * Returns rows `{ leased, cached }`.
 */
export function completeNodeSql(
  executionId: string,
  nodeId: string,
  done: Completion,
  lease: Lease | null,
): SQL {
  const outputs = JSON.stringify(done.outputs);
  const parts: SQL[] = [
    leaseCte(executionId, lease),
    sql`att as (
      update attempts
         set state = 'SUCCEEDED', error_kind = null, error_reason = null, error_message = null, exit_code = null,
             log_ref = ${done.logRef ?? null}, finished_at = now()
       where execution_id = ${executionId} and node_id = ${nodeId} and attempt = ${done.attempt} and ${held}
      returning 1)`,
  ];
  let status = sql`cache_status`;
  let cached = sql`0`;
  const c = done.cache;
  if (c) {
    const conflict = c.overwrite
      ? sql`on conflict (key) do update
             set repo = excluded.repo, task_name = excluded.task_name, task_digest = excluded.task_digest,
                 identity = excluded.identity, outputs = excluded.outputs,
                 source_execution_id = excluded.source_execution_id, source_node_id = excluded.source_node_id,
                 created_at = now(), last_hit_at = null, hit_count = 0`
      : sql`on conflict (key) do nothing`;
    parts.push(sql`ins as (
      insert into cache_entries (key, repo, task_name, task_digest, identity, outputs, source_execution_id, source_node_id)
      select ${c.key}, ${c.repo}, ${c.taskName}, ${c.taskDigest}, ${JSON.stringify(c.identity)}::jsonb, ${outputs}::jsonb,
             ${executionId}, ${nodeId}
       where ${held}
      ${conflict}
      returning key)`);
    if (done.reservationOwner) {
      parts.push(sql`rel as (
        delete from cache_reservations where key = ${c.key} and owner = ${done.reservationOwner} and ${held} returning key)`);
    }
    status = c.overwrite
      ? sql`'SKIPPED'`
      : sql`case when exists (select 1 from ins) then 'POPULATED' else 'MISS' end`;
    cached = sql`(select count(*) from ins)::int`;
  }
  parts.push(sql`node as (
    update node_executions
       set state = 'SUCCEEDED', outputs = ${outputs}::jsonb, error = null, cache_status = ${status},
           finished_at = now(), updated_at = now()
     where execution_id = ${executionId} and node_id = ${nodeId} and ${held}
    returning 1)`);
  return sql`with ${sql.join(parts, sql`, `)}
    select (select count(*) from lease)::int as leased, ${cached} as cached`;
}
