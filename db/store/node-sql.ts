/**
 * The engine's hot-path writes as one statement: node launches and node successes, any number
 * of each, in data-modifying CTEs chained in one query over JSON record sets. One round trip and
 * one commit for a whole reconcile pass (a chain hop: the finished node and the next one's launch;
 * a fan-out: every completion and launch since the last pass), atomic on its own. With a lease,
 * every write is conditioned on the lease still being held, so a runner that lost it writes
 * nothing and learns so from `leased = 0`.
 */
import { type SQL, sql } from "drizzle-orm";
import type { JsonValue } from "../../core/spec/types.js";
import type { CacheStatus, Lease } from "../types.js";

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
  /** The artifacts among the outputs, recorded for the repository with this node as producer. */
  artifacts?: ReadonlyArray<{ digest: string; type: string; size: number; files: number | null }>;
}

/** An attempt launched: its row, and the node RUNNING. */
export interface Start {
  nodeId: string;
  attempt: number;
  handle: string;
  /** A node launched straight from ready (never QUEUED) also gets its inputs and cache key. */
  node?: {
    inputs: Record<string, JsonValue>;
    cacheKey: string | null;
    cacheStatus: CacheStatus;
    cacheReason?: string | null;
  };
}

export interface NodeWrites {
  completions?: ReadonlyArray<Completion & { nodeId: string }>;
  starts?: readonly Start[];
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

type Columns = ReadonlyArray<readonly [name: string, type: "text" | "int" | "boolean" | "jsonb"]>;

const COMPLETION_COLUMNS: Columns = [
  ["node_id", "text"],
  ["attempt", "int"],
  ["outputs", "jsonb"],
  ["log_ref", "text"],
  ["cache_key", "text"],
  ["repo", "text"],
  ["task_name", "text"],
  ["task_digest", "text"],
  ["identity", "jsonb"],
  ["reservation_owner", "text"],
  ["artifacts", "jsonb"],
];

const START_COLUMNS: Columns = [
  ["node_id", "text"],
  ["attempt", "int"],
  ["handle", "text"],
  ["set_node", "boolean"],
  ["inputs", "jsonb"],
  ["cache_key", "text"],
  ["cache_status", "text"],
  ["cache_reason", "text"],
];

/**
 * The rows a CTE writes from: one row (a chain hop, a lone completion) as plain parameters, which
 * Postgres plans best; several as one JSON record set, so a pass is one statement however large.
 */
function rowSource(
  alias: string,
  columns: Columns,
  rows: ReadonlyArray<Record<string, unknown>>,
): SQL {
  const [one] = rows;
  if (rows.length === 1 && one) {
    const values = columns.map(([name, type]) => {
      const v = one[name] ?? null;
      const param = type === "jsonb" && v !== null ? JSON.stringify(v) : v;
      return sql`${param}::${sql.raw(type)} as ${sql.raw(name)}`;
    });
    return sql`select ${sql.join(values, sql`, `)}`;
  }
  const shape = columns.map(([name, type]) => `${name} ${type}`).join(", ");
  return sql`select * from jsonb_to_recordset(${JSON.stringify(rows)}::jsonb) as ${sql.raw(alias)}(${sql.raw(shape)})`;
}

/**
 * docs/design.md section 5 for each completion, all at once: the attempt SUCCEEDED, the node
 * SUCCEEDED with its outputs, the cache entry (first writer wins, or replaced when overwriting)
 * and the reservation released; then each start. Returns one row `{ leased, cached }`: cached
 * counts the cache entries this statement wrote.
 */
export function nodeWritesSql(executionId: string, writes: NodeWrites, lease: Lease | null): SQL {
  const parts: SQL[] = [leaseCte(executionId, lease)];
  let cached = sql`0`;
  const completions = writes.completions ?? [];
  if (completions.length > 0) {
    const set = completions.map((c) => ({
      node_id: c.nodeId,
      attempt: c.attempt,
      outputs: c.outputs,
      log_ref: c.logRef ?? null,
      cache_key: c.cache?.key ?? null,
      repo: c.cache?.repo ?? null,
      task_name: c.cache?.taskName ?? null,
      task_digest: c.cache?.taskDigest ?? null,
      identity: c.cache?.identity ?? null,
      reservation_owner: c.cache ? (c.reservationOwner ?? null) : null,
      artifacts: c.artifacts?.length ? c.artifacts : null,
    }));
    parts.push(
      sql`c as (${rowSource("c", COMPLETION_COLUMNS, set)})`,
      sql`c_att as (
        update attempts a
           set state = 'SUCCEEDED', error_kind = null, error_reason = null, error_message = null, exit_code = null,
               log_ref = c.log_ref, finished_at = now()
          from c
         where a.execution_id = ${executionId} and a.node_id = c.node_id and a.attempt = c.attempt and ${held}
        returning 1)`,
    );
    if (completions.some((c) => c.artifacts?.length)) {
      // First producer wins: an artifact's lineage is where its bytes were first computed.
      parts.push(sql`c_art as (
        insert into artifacts (repo, digest, type, size, files, execution_id, node_id, task_digest)
        select distinct on (a.digest) e.repo, a.digest, a.type, a.size, a.files, ${executionId}, c.node_id, n.task_digest
          from c
          cross join lateral jsonb_to_recordset(c.artifacts) as a(digest text, type text, size bigint, files int)
          join executions e on e.id = ${executionId}
          join node_executions n on n.execution_id = ${executionId} and n.node_id = c.node_id
         where c.artifacts is not null and ${held}
         order by a.digest, c.node_id
        on conflict (repo, digest) do nothing
        returning 1)`);
    }
    const caching = completions.filter((c) => c.cache);
    // An execution overwrites the cache or does not, for all its nodes.
    const overwrite = caching.some((c) => c.cache?.overwrite);
    if (caching.length > 0) {
      const conflict = overwrite
        ? sql`on conflict (key) do update
               set repo = excluded.repo, task_name = excluded.task_name, task_digest = excluded.task_digest,
                   identity = excluded.identity, outputs = excluded.outputs,
                   source_execution_id = excluded.source_execution_id, source_node_id = excluded.source_node_id,
                   created_at = now(), last_hit_at = null, hit_count = 0`
        : sql`on conflict (key) do nothing`;
      // distinct on: one row per key (an update may not touch a row twice in one statement).
      parts.push(
        sql`c_ins as (
          insert into cache_entries (key, repo, task_name, task_digest, identity, outputs, source_execution_id, source_node_id)
          select distinct on (c.cache_key) c.cache_key, c.repo, c.task_name, c.task_digest, c.identity, c.outputs,
                 ${executionId}, c.node_id
            from c where c.cache_key is not null and ${held}
           order by c.cache_key, c.node_id
          ${conflict}
          returning source_node_id)`,
        sql`c_rel as (
          delete from cache_reservations r using c
           where r.key = c.cache_key and r.owner = c.reservation_owner and ${held}
          returning 1)`,
      );
      cached = sql`(select count(*) from c_ins)::int`;
    }
    const status =
      caching.length === 0
        ? sql`n.cache_status`
        : overwrite
          ? sql`case when c.cache_key is null then n.cache_status else 'SKIPPED' end`
          : sql`case when c.cache_key is null then n.cache_status
                     when exists (select 1 from c_ins i where i.source_node_id = c.node_id) then 'POPULATED'
                     else 'MISS' end`;
    parts.push(sql`c_node as (
      update node_executions n
         set state = 'SUCCEEDED', outputs = c.outputs, error = null, cache_status = ${status},
             finished_at = now(), updated_at = now()
        from c
       where n.execution_id = ${executionId} and n.node_id = c.node_id and ${held}
      returning 1)`);
  }
  const starts = writes.starts ?? [];
  if (starts.length > 0) {
    const set = starts.map((s) => ({
      node_id: s.nodeId,
      attempt: s.attempt,
      handle: s.handle,
      set_node: s.node !== undefined,
      inputs: s.node?.inputs ?? null,
      cache_key: s.node?.cacheKey ?? null,
      cache_status: s.node?.cacheStatus ?? null,
      cache_reason: s.node?.cacheReason ?? null,
    }));
    parts.push(
      sql`s as (${rowSource("s", START_COLUMNS, set)})`,
      sql`s_att as (
        insert into attempts (execution_id, node_id, attempt, handle, state)
        select ${executionId}, s.node_id, s.attempt, s.handle, 'RUNNING' from s where ${held}
        on conflict do nothing returning 1)`,
      sql`s_node as (
        update node_executions n
           set state = 'RUNNING', attempts = s.attempt,
               inputs = case when s.set_node then s.inputs else n.inputs end,
               cache_key = case when s.set_node then s.cache_key else n.cache_key end,
               cache_status = case when s.set_node then s.cache_status else n.cache_status end,
               cache_reason = case when s.set_node then s.cache_reason else n.cache_reason end,
               started_at = coalesce(n.started_at, now()), updated_at = now()
          from s
         where n.execution_id = ${executionId} and n.node_id = s.node_id and ${held}
        returning 1)`,
    );
  }
  return sql`with ${sql.join(parts, sql`, `)}
    select (select count(*) from lease)::int as leased, ${cached} as cached`;
}
