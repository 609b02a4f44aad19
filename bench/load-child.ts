/**
 * One measurement of bench/load.ts in a process of its own, so its RSS is a runner's doing only
 * this. Jobs: drive N queued executions to the end with the no-op executor (throughput and node
 * scheduling latency), or hold N executions running at once (memory).
 */
import type { EngineEvent } from "../runner/engine/engine.js";

export type LoadJob =
  | { kind: "throughput"; url: string; ids: string[]; maxParallel: number }
  | { kind: "memory"; url: string; ids: string[] };

export interface LoadResult {
  ms: number;
  succeeded: number;
  /** Per non-root node: its launch minus the end of its last upstream attempt. */
  latencies: number[];
  idleRssMb: number;
  rssMb: number;
  running: number;
}

const MB = 1024 * 1024;

async function main(job: LoadJob): Promise<LoadResult> {
  const { openStore } = await import("../db/store.js");
  const { Engine } = await import("../runner/engine/engine.js");
  const { NoopExecutor } = await import("./noop-executor.js");
  const opened = await openStore({ databaseUrl: job.url, poolSize: 10 });
  const executor = new NoopExecutor();
  const latencies: number[] = [];
  let running = 0;
  let succeeded = 0;
  const deps = new Map<string, string[]>();
  const onEvent = (e: EngineEvent) => {
    const now = performance.now();
    if (e.type === "execution" && e.state === "SUCCEEDED") succeeded++;
    if (e.type !== "node") return;
    if (e.state === "RUNNING") {
      running++;
      // From the end of the last upstream attempt (as the executor reported it) to this launch.
      const ups = deps.get(e.nodeId) ?? [];
      if (ups.length > 0)
        latencies.push(
          now -
            Math.max(...ups.map((u) => executor.finishedAt.get(`${e.executionId}/${u}`) ?? now)),
        );
    } else if (e.state === "SUCCEEDED") {
      running--;
    }
  };
  // The bench's workflow: root -> m1..m8 -> join (bench/load.ts).
  for (let i = 1; i <= 8; i++) deps.set(`m${i}`, ["root"]);
  deps.set(
    "join",
    Array.from({ length: 8 }, (_, i) => `m${i + 1}`),
  );
  const engine = new Engine({
    store: opened.store,
    executor,
    owner: "bench-load",
    maxParallel: job.kind === "memory" ? job.ids.length * 2 : job.maxParallel,
    tickMs: 1_000,
    listen: opened.database.listen,
    onEvent,
  });
  const idleRssMb = process.memoryUsage.rss() / MB;
  const stop = new AbortController();
  if (job.kind === "memory") executor.hold();
  const t0 = performance.now();
  const working = engine.work(stop.signal, { batch: 64 });
  let rssMb = 0;
  if (job.kind === "memory") {
    // Every execution's root running at once: measure, then let them all finish.
    while (running < job.ids.length) await new Promise((r) => setTimeout(r, 50));
    global.gc?.();
    await new Promise((r) => setTimeout(r, 200));
    rssMb = process.memoryUsage.rss() / MB;
    executor.release();
  }
  while (succeeded < job.ids.length) await new Promise((r) => setTimeout(r, 20));
  const ms = performance.now() - t0;
  if (job.kind === "throughput") rssMb = process.memoryUsage.rss() / MB;
  stop.abort();
  await working;
  await opened.close();
  return { ms, succeeded, latencies, idleRssMb, rssMb, running: job.ids.length };
}

const job = JSON.parse(process.argv[2] as string) as LoadJob;
main(job).then(
  (r) => process.send?.(r, () => process.exit(0)),
  (e: Error) => {
    process.stderr.write(`bench/load: ${e.stack ?? e.message}\n`);
    process.exit(1);
  },
);
