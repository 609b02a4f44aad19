/**
 * One measurement of bench/engine.ts, in a process of its own so that its peak RSS is that of a
 * runner doing only this (a fresh process, not one that has run the other benchmarks first).
 * Started by bench/engine.ts with `fork` (the same tsx loader); it gets its job as a JSON
 * argument, sends back one result message and exits.
 *
 * Each kind imports only its own side (Reprise's store and engine, or Graphile Worker), so neither
 * pays for the other's modules in its RSS. Every `pg` query of the process is counted (Reprise's
 * store and Graphile Worker both use the `pg` package), so the result also says how many round
 * trips a node or a job cost.
 */
import { EventEmitter } from "node:events";
import type { Runner, TaskList } from "graphile-worker";
import pg from "pg";

export type ChildJob =
  | {
      kind: "reprise";
      url: string;
      /** An execution driven first, unmeasured: connections, JIT. */
      warm: string;
      runs: { id: string; nodes: number }[];
      maxParallel: number;
      tickMs: number;
      /** A run still going after this long is stopped and reported as such. */
      limitMs: number;
    }
  | { kind: "graphile-chain"; url: string; jobs: number; runs: number; concurrency: number }
  | { kind: "graphile-fanout"; url: string; sizes: number[]; concurrency: number };

export interface RunResult {
  ms: number;
  /** Nodes succeeded or jobs completed by the end of the run (all of them unless stopped). */
  done: number;
  total: number;
  stopped: boolean;
  /** `pg` queries issued during the run. */
  queries: number;
  /** Peak of process.memoryUsage.rss(), sampled every 20 ms during the run, in MB. */
  rssPeakMb: number;
}

export interface ChildResult {
  runs: RunResult[];
  /** RSS once the modules are loaded and the warm-up is done, before the first run, in MB. */
  idleRssMb: number;
  /** The process's own peak RSS (getrusage), in MB, for comparison with the sampled one. */
  maxRssMb: number;
}

const MB = 1024 * 1024;

let queries = 0;
{
  const proto = pg.Client.prototype as unknown as { query: (...args: unknown[]) => unknown };
  const query = proto.query;
  proto.query = function (this: unknown, ...args: unknown[]) {
    queries++;
    return query.apply(this, args);
  };
}

/** Runs `fn` while sampling RSS; the run's time, queries and RSS peak. */
async function measured(
  fn: () => Promise<{ done: number; total: number; stopped: boolean }>,
): Promise<RunResult> {
  let peak = process.memoryUsage.rss();
  const sampler = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage.rss());
  }, 20);
  const q0 = queries;
  const t0 = performance.now();
  try {
    const r = await fn();
    const ms = performance.now() - t0;
    peak = Math.max(peak, process.memoryUsage.rss());
    return { ms, ...r, queries: queries - q0, rssPeakMb: peak / MB };
  } finally {
    clearInterval(sampler);
  }
}

let idleRssMb = 0;

async function reprise(job: Extract<ChildJob, { kind: "reprise" }>): Promise<RunResult[]> {
  const { openStore } = await import("../db/store.js");
  const { Engine } = await import("../runner/engine/engine.js");
  const { NoopExecutor } = await import("./noop-executor.js");
  const opened = await openStore({ databaseUrl: job.url });
  const { store } = opened;
  let stoppedAt: string | null = null;
  try {
    const engine = new Engine({
      store,
      executor: new NoopExecutor(),
      owner: "bench",
      maxParallel: job.maxParallel,
      tickMs: job.tickMs,
    });
    const warm = await engine.drive(job.warm);
    if (warm.state !== "SUCCEEDED") throw new Error(`warm-up execution ended ${warm.state}`);
    idleRssMb = process.memoryUsage.rss() / MB;
    const results: RunResult[] = [];
    for (const r of job.runs) {
      // A stopped run's driver is still going (it checks the signal only between reconciles,
      // and one reconcile can launch a whole fan-out): measuring more would measure both.
      if (stoppedAt !== null) {
        results.push({
          ms: job.limitMs,
          done: 0,
          total: r.nodes,
          stopped: true,
          queries: 0,
          rssPeakMb: 0,
        });
        continue;
      }
      results.push(
        await measured(async () => {
          const signal = AbortSignal.timeout(job.limitMs);
          const driving = engine.drive(r.id, signal);
          // Left behind when the limit passes; the process exits without waiting for it.
          driving.catch(() => undefined);
          const limit = new Promise<null>((resolve) =>
            signal.addEventListener("abort", () => resolve(null), { once: true }),
          );
          const exec = await Promise.race([driving, limit]);
          if (exec === null || exec.state !== "SUCCEEDED") {
            if (!signal.aborted)
              throw new Error(`execution ${r.id} ended ${exec?.state}: ${exec?.error?.message}`);
            stoppedAt = r.id;
            const nodes = await store.executions.nodes(r.id);
            const done = nodes.filter((n) => n.state === "SUCCEEDED").length;
            return { done, total: r.nodes, stopped: true };
          }
          return { done: r.nodes, total: r.nodes, stopped: false };
        }),
      );
    }
    return results;
  } finally {
    // After a stop the driver still uses the pool; the process exits instead.
    if (stoppedAt === null) await opened.close();
  }
}

/** Graphile Worker in this process: `concurrency` workers, LISTEN/NOTIFY, default poll interval. */
async function graphile(
  url: string,
  concurrency: number,
  body: (runner: Runner, completions: (n: number) => Promise<void>) => Promise<RunResult[]>,
  taskList: TaskList,
): Promise<RunResult[]> {
  const { Logger, run } = await import("graphile-worker");
  const events = new EventEmitter();
  let completed = 0;
  let waiter: { target: number; resolve: () => void } | null = null;
  events.on("job:complete", ({ error }: { error: unknown }) => {
    if (error) process.stderr.write(`bench/engine: graphile job failed: ${error}\n`);
    completed++;
    if (waiter && completed >= waiter.target) {
      waiter.resolve();
      waiter = null;
    }
  });
  /** Resolves once `n` more jobs have completed (counted from the call). */
  const completions = (n: number) => {
    const target = completed + n;
    return new Promise<void>((resolve) => {
      waiter = { target, resolve };
    });
  };
  const logger = new Logger(() => (level, message) => {
    if (level === "error") process.stderr.write(`bench/engine: graphile: ${message}\n`);
  });
  const runner = await run({
    connectionString: url,
    concurrency,
    noHandleSignals: true,
    logger,
    events,
    taskList,
  });
  try {
    return await body(runner, completions);
  } finally {
    await runner.stop();
  }
}

function graphileChain(job: Extract<ChildJob, { kind: "graphile-chain" }>): Promise<RunResult[]> {
  // Each job's task adds the next one, as each node of a chain makes the next one ready.
  const taskList: TaskList = {
    hop: async (payload, helpers) => {
      const { i, of } = payload as { i: number; of: number };
      if (i + 1 < of) await helpers.addJob("hop", { i: i + 1, of });
    },
  };
  return graphile(
    job.url,
    job.concurrency,
    async (runner, completions) => {
      const chain = async (jobs: number) => {
        const done = completions(jobs);
        await runner.addJob("hop", { i: 0, of: jobs });
        await done;
        return { done: jobs, total: jobs, stopped: false };
      };
      await chain(10);
      idleRssMb = process.memoryUsage.rss() / MB;
      const results: RunResult[] = [];
      for (let i = 0; i < job.runs; i++) results.push(await measured(() => chain(job.jobs)));
      return results;
    },
    taskList,
  );
}

function graphileFanout(job: Extract<ChildJob, { kind: "graphile-fanout" }>): Promise<RunResult[]> {
  const taskList: TaskList = { leaf: async () => undefined };
  const adder = new pg.Pool({ connectionString: job.url, max: 1 });
  // All of them in one statement (add_jobs, one NOTIFY), as a root node makes all its leaves
  // ready at once. The clock starts when the statement returns: the jobs exist, as the nodes of
  // an execution exist before the engine drives it.
  const add = (n: number) =>
    adder.query(
      `select count(*) from graphile_worker.add_jobs(array(
         select row('leaf', json_build_object('i', i), null, null, null, null, null, null)::graphile_worker.job_spec
           from generate_series(1, $1::int) as i))`,
      [n],
    );
  return graphile(
    job.url,
    job.concurrency,
    async (_runner, completions) => {
      const fanout = async (n: number) => {
        const done = completions(n);
        await add(n);
        return done;
      };
      await fanout(100);
      idleRssMb = process.memoryUsage.rss() / MB;
      const results: RunResult[] = [];
      for (const n of job.sizes) {
        const done = completions(n);
        await add(n);
        results.push(
          await measured(async () => {
            await done;
            return { done: n, total: n, stopped: false };
          }),
        );
      }
      return results;
    },
    taskList,
  ).finally(() => adder.end());
}

const job = JSON.parse(process.argv[2] ?? "null") as ChildJob;
const runs =
  job.kind === "reprise"
    ? await reprise(job)
    : job.kind === "graphile-chain"
      ? await graphileChain(job)
      : await graphileFanout(job);
const result: ChildResult = { runs, idleRssMb, maxRssMb: process.resourceUsage().maxRSS / 1024 };
// Exits at once: a stopped run's driver may still be going.
process.send?.(result, () => process.exit(0));
