/**
 * The store on real Postgres (docs/design.md section 13), each figure against a floor measured in the
 * same run on the same pool and database:
 * - cache lookup by key among 1,000,000 entries, against a bare `SELECT 1` round trip;
 * - node-completion transactions, against pgbench-style single-row update transactions.
 *
 * It runs in a database of its own, created next to DATABASE_URL's (default: the local test
 * server) and dropped at the end, also on failure or Ctrl-C.
 */
import { createHash } from "node:crypto";
import { sql } from "drizzle-orm";
import { cacheIdentity, cacheKey } from "../core/hash/cache-key.js";
import type { Digest } from "../core/hash/digest.js";
import type { TreeEntry } from "../core/hash/sources.js";
import type { JsonValue } from "../core/spec/types.js";
import { openStore, type Store } from "../db/store.js";
import type { Lease } from "../db/types.js";
import { type Row, registerSpec } from "./lib.js";
import { adminUrl, withScratchDatabases } from "./scratch-db.js";

/** One pool for every figure and its floor: twice the workers, so none waits for a connection. */
const POOL_SIZE = 8;

const ENTRIES = 1_000_000;
/** Rows per INSERT ... SELECT: one statement each, small enough to report progress. */
const LOAD_CHUNK = 100_000;
const REPOS = 10;
const TASKS_PER_REPO = 50;
const LOOKUPS = 5_000;
const LOOKUP_WARMUP = 500;
const TTL_SECONDS = 30 * 24 * 3600;

const COMPLETIONS = 2_000;
const WORKERS = 4;
const COMPLETION_WARMUP_PER_WORKER = 25;
const COMPLETION_BLOCKS = 20;
const COUNTER_ROWS = 1_000;

export async function benchStore(): Promise<Row[]> {
  return withScratchDatabases(adminUrl(), [""], "bench/store", async ([url]) => {
    const opened = await openStore({
      databaseUrl: url as string,
      poolSize: POOL_SIZE,
      migrate: true,
    });
    try {
      return [...(await benchLookup(opened.store)), ...(await benchCompletion(opened.store))];
    } finally {
      await opened.close();
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Cache lookup

async function benchLookup(store: Store): Promise<Row[]> {
  await loadCacheEntries(store);
  const { lookup, floor } = await measureLookups(store);
  const p99 = percentile(lookup, 0.99);
  const floorP99 = percentile(floor, 0.99);
  const entries = `${ENTRIES / 1_000_000}M entries`;
  return [
    {
      figure: `cache lookup p50 (${entries})`,
      value: percentile(lookup, 0.5),
      peer: "SELECT 1 round trip p50",
      peerValue: percentile(floor, 0.5),
      target: "reported",
      met: true,
    },
    {
      figure: `cache lookup p99 (${entries})`,
      value: p99,
      peer: "SELECT 1 round trip p99",
      peerValue: floorP99,
      target: "< 2 ms and <= 3x floor",
      met: p99 < 2 && p99 <= 3 * floorP99,
    },
  ];
}

/** Latencies in ms, ascending, of sequential lookups of random existing keys and of the floor. */
async function measureLookups(store: Store): Promise<{ lookup: number[]; floor: number[] }> {
  // Random keys over the whole table, as a cache sees them: digests have no locality.
  const keys = Array.from({ length: LOOKUP_WARMUP + LOOKUPS }, () =>
    entryKey(Math.floor(Math.random() * ENTRIES)),
  );
  const lookupOne = async (key: string) => {
    // A miss would measure a cheaper path (no row to fetch): every key must be found.
    if (!(await store.cache.lookup(key, TTL_SECONDS)))
      throw new Error(`cache entry ${key} missing`);
  };
  const selectOne = () => store.db.execute(sql`select 1`);

  for (const key of keys.slice(0, LOOKUP_WARMUP)) {
    await selectOne();
    await lookupOne(key);
  }
  // Each lookup is paired with a floor round trip right before it, so both see the same moment
  // of a noisy shared machine (the checkpointer, other tenants, the garbage collector).
  const floor: number[] = [];
  const lookup: number[] = [];
  for (const key of keys.slice(LOOKUP_WARMUP)) {
    floor.push(await timed(selectOne));
    lookup.push(await timed(() => lookupOne(key)));
  }
  return { lookup: lookup.sort((a, b) => a - b), floor: floor.sort((a, b) => a - b) };
}

/** The key of the i-th loaded entry, computed exactly as the loading SQL does. */
function entryKey(i: number): string {
  return `sha256:${createHash("sha256").update(String(i)).digest("hex")}`;
}

/**
 * Bulk-loads the entries in SQL, so the load costs seconds rather than a million round trips.
 * Rows look like the ones completeNode writes: 10 repositories, 50 tasks each, the identity of a
 * digest-keyed task, small outputs, 50 nodes per source execution, ages within the TTL.
 */
async function loadCacheEntries(store: Store): Promise<void> {
  const started = performance.now();
  for (let from = 0; from < ENTRIES; from += LOAD_CHUNK) {
    const to = Math.min(from + LOAD_CHUNK, ENTRIES) - 1;
    await store.db.execute(sql`
      with s as (
        select i,
               'github.com/acme/service-' || (i % ${REPOS}) as repo,
               'train-' || (i / ${REPOS} % ${TASKS_PER_REPO}) as task
          from generate_series(${from}::int, ${to}::int) as i
      ), d as (
        select s.*, 'sha256:' || encode(sha256(convert_to(repo || '#' || task, 'UTF8')), 'hex') as digest
          from s
      )
      insert into cache_entries
        (key, repo, task_name, task_digest, identity, outputs,
         source_execution_id, source_node_id, created_at)
      select 'sha256:' || encode(sha256(i::text::bytea), 'hex'),
             repo, task, digest,
             jsonb_build_object('repo', repo, 'taskDigest', digest),
             jsonb_build_object('loss', round((i % 1000) / 1000.0, 3), 'rows', i % 100000,
                                'model', 's3://acme-models/' || task || '/' || i || '.pt'),
             'e' || lpad(to_hex(i / 50), 18, '0'),
             'n' || (i % 50),
             now() - make_interval(secs => i % ${TTL_SECONDS / 2})
        from d`);
    progress(
      `loaded ${(to + 1).toLocaleString("en")} / ${ENTRIES.toLocaleString("en")} cache entries`,
      started,
    );
  }
  // Settle the table as a long-lived one is: statistics, hint bits and visibility map set, and
  // the load's dirty pages written out. Otherwise the lookups would measure the checkpointer
  // flushing half a gigabyte, and every first read of a page writing its hint bits.
  await store.db.execute(sql`vacuum (analyze) cache_entries`);
  try {
    await store.db.execute(sql`checkpoint`);
  } catch (e) {
    // CHECKPOINT needs superuser or pg_checkpoint; without it the lookups still run, noisier.
    if ((e as { code?: string }).code !== "42501") throw e;
    progress("no privilege to CHECKPOINT: the lookup tail may include the load's writes", started);
  }
  progress("vacuumed cache_entries, checkpoint done", started);
}

// ---------------------------------------------------------------------------------------------
// Node completion

const REPO = "github.com/acme/bench";
const SHA = "b".repeat(40);

/**
 * One cached task and a fan-out of independent nodes over it. Each execution gets its own seed,
 * so every node of every execution has a cache key of its own: all completions populate.
 */
function completionSpec(nodes: number): string {
  const lines = [
    "version: 1",
    "tasks:",
    "  train:",
    `    image: registry.example.com/ml/trainer@sha256:${"c".repeat(64)}`,
    "    command: [python, -m, train]",
    "    sources: [src/**]",
    "    inputs: { seed: integer, shard: integer }",
    "    outputs: { loss: number, model: string }",
    "    cache: { ttl: 30d }",
    "workflows:",
    "  fanout:",
    "    inputs: { seed: integer }",
    "    nodes:",
  ];
  for (let i = 0; i < nodes; i++)
    lines.push(
      `      n${i}: { task: train, inputs: { seed: "\${{ inputs.seed }}", shard: ${i} } }`,
    );
  return `${lines.join("\n")}\n`;
}

interface Node {
  lease: Lease;
  nodeId: string;
  /** The attempt's deterministic name, as an executor would launch it. */
  handle: string;
  key: string;
  /** The reservation's fencing owner: execution/node/attempt. */
  owner: string;
  outputs: Record<string, JsonValue>;
}

/**
 * Each node goes through the two fenced statements the engine gives it: the launch
 * (store.executions.startAttempt) and the completion (store.executions.completeNode: the
 * attempt, the node's outputs and state, its cache entry and the reservation's release, in one
 * statement conditioned on the lease). They are measured
 * apart, because the completion is the figure with a target and the two never share a
 * transaction in the engine: an attempt runs for seconds to hours between them.
 */
async function benchCompletion(store: Store): Promise<Row[]> {
  const started = performance.now();
  const perWorker = COMPLETIONS / WORKERS + COMPLETION_WARMUP_PER_WORKER;
  const tree: TreeEntry[] = [{ path: "src/train.py", mode: "100644", sha: "d".repeat(40) }];
  await registerSpec(store, { repo: REPO, sha: SHA }, completionSpec(perWorker), tree);
  const workflow = await store.versions.resolveWorkflow(REPO, SHA, "fanout");
  const task = workflow.tasks.train;
  if (!task) throw new Error("the generated workflow lost its task");
  const identity = cacheIdentity(REPO, task.spec, task.digest as Digest);

  // One execution per worker: writes to one execution serialize on its row lock (the lease
  // fence), and one runner drives each execution, so this is the shape the engine produces.
  const seeds = new Map<string, number>();
  for (let seed = 0; seed < WORKERS; seed++) {
    const e = await store.executions.create({
      repo: REPO,
      sha: SHA,
      workflow: "fanout",
      inputs: { seed },
      trigger: { kind: "cli", actor: "bench" },
    });
    seeds.set(e.id, seed);
  }
  const leases = await store.executions.claim("bench-runner", {
    ids: [...seeds.keys()],
    limit: WORKERS,
    leaseMs: 10 * 60_000,
  });
  if (leases.length !== WORKERS)
    throw new Error(`claimed ${leases.length} of ${WORKERS} executions`);

  // The engine reserves a key on the cache miss that precedes the launch, outside both measured
  // transactions: so the reservations are taken here, unmeasured, and every completion releases
  // one (a completion that skipped the release would be cheaper than the real one).
  const workers = await Promise.all(
    leases.map(async (lease) => {
      const seed = seeds.get(lease.executionId) as number;
      const nodes: Node[] = [];
      for (let n = 0; n < perWorker; n++) {
        const nodeId = `n${n}`;
        const key = cacheKey(identity, { seed, shard: n });
        const owner = `${lease.executionId}/${nodeId}/1`;
        const r = await store.cache.reserve(key, REPO, owner, 10 * 60_000);
        if (!r.acquired) throw new Error(`reservation of ${key} is held by ${r.owner}`);
        nodes.push({
          lease,
          nodeId,
          handle: `${lease.executionId}-${nodeId}-1`,
          key,
          owner,
          outputs: { loss: n / perWorker, model: `s3://acme-models/${key.slice(7, 23)}.pt` },
        });
      }
      return nodes;
    }),
  );
  await store.db.execute(
    sql`create table bench_counter (id int primary key, v bigint not null default 0)`,
  );
  await store.db.execute(
    sql`insert into bench_counter (id) select generate_series(1, ${COUNTER_ROWS}::int)`,
  );
  await store.db.execute(sql`analyze`);
  progress("registered the version, claimed the executions, reserved the keys", started);

  const launch = (n: Node) => store.executions.startAttempt(n.lease, n.nodeId, 1, n.handle);
  const complete = async (n: Node) => {
    const done = await store.executions.completeNode(n.lease, n.nodeId, {
      attempt: 1,
      outputs: n.outputs,
      cache: {
        key: n.key,
        repo: REPO,
        taskName: "train",
        taskDigest: task.digest,
        identity,
        overwrite: false,
      },
      reservationOwner: n.owner,
    });
    if (!done.cached) throw new Error(`${n.nodeId} of ${n.lease.executionId} was not cached`);
  };
  // pgbench's simplest transaction, through the same drizzle pool and transaction path.
  const update = () =>
    store.db.transaction(async (tx) => {
      const id = 1 + Math.floor(Math.random() * COUNTER_ROWS);
      await tx.execute(sql`update bench_counter set v = v + 1 where id = ${id}`);
    });
  /** Wall time in ms of `op` over nodes [from, to) of every worker, the workers in parallel. */
  const phase = (from: number, to: number, op: (n: Node) => Promise<unknown>) =>
    timed(() =>
      Promise.all(
        workers.map(async (nodes) => {
          for (const n of nodes.slice(from, to)) await op(n);
        }),
      ),
    );

  const warm = COMPLETION_WARMUP_PER_WORKER;
  await phase(0, warm, update);
  await phase(0, warm, launch);
  await phase(0, warm, complete);
  // The three alternate in blocks, so drift during the run weighs on each alike.
  const ms = { floor: 0, launch: 0, complete: 0 };
  const perBlock = COMPLETIONS / WORKERS / COMPLETION_BLOCKS;
  for (let from = warm; from < perWorker; from += perBlock) {
    ms.floor += await phase(from, from + perBlock, update);
    ms.launch += await phase(from, from + perBlock, launch);
    ms.complete += await phase(from, from + perBlock, complete);
  }
  progress(`launched and completed ${COMPLETIONS.toLocaleString("en")} nodes`, started);

  const perSecond = (total: number) => COMPLETIONS / (total / 1000);
  const floor = perSecond(ms.floor);
  const completions = perSecond(ms.complete);
  const shape = `${WORKERS} workers, pool ${POOL_SIZE}`;
  return [
    {
      figure: `node completion tx (${shape})`,
      value: completions,
      peer: "single-row update tx (pgbench-style)",
      peerValue: floor,
      target: ">= 0.5x floor",
      met: completions >= 0.5 * floor,
      unit: "tx/s",
    },
    {
      figure: `node launch tx (${shape})`,
      value: perSecond(ms.launch),
      peer: "single-row update tx (pgbench-style)",
      peerValue: floor,
      target: "reported",
      met: true,
      unit: "tx/s",
    },
  ];
}

// ---------------------------------------------------------------------------------------------
// Helpers

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t = performance.now();
  await fn();
  return performance.now() - t;
}

/** Nearest-rank percentile of ascending `sorted`. */
function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.max(0, Math.ceil(p * sorted.length) - 1)] as number;
}

function progress(what: string, since: number): void {
  process.stderr.write(
    `bench/store: ${what} (${((performance.now() - since) / 1000).toFixed(1)} s)\n`,
  );
}
