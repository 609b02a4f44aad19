/**
 * Prometheus metrics (docs/design.md section 9), with prom-client: what the engine reports as it
 * goes (node durations, cache hits and misses, reconcile passes) and what the database says at
 * scrape time (executions by state, queue depth, GitHub deliveries waiting).
 */
import { sql } from "drizzle-orm";
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import { rows } from "../../db/query.js";
import type { Store } from "../../db/store.js";
import type { EngineEvent } from "../engine/engine.js";

export class Metrics {
  readonly registry = new Registry();
  private readonly executions = new Gauge({
    name: "reprise_executions",
    help: "Executions by state",
    labelNames: ["state"],
    registers: [this.registry],
  });
  private readonly queueDepth = new Gauge({
    name: "reprise_queue_depth",
    help: "Nodes QUEUED (ready, waiting for a slot or a reservation) across executions",
    registers: [this.registry],
  });
  private readonly deliveries = new Gauge({
    name: "reprise_github_deliveries_pending",
    help: "GitHub webhook deliveries stored and not yet processed",
    registers: [this.registry],
  });
  private readonly deliveriesTotal = new Counter({
    name: "reprise_github_deliveries_total",
    help: "GitHub webhook deliveries received, by outcome",
    labelNames: ["outcome"],
    registers: [this.registry],
  });
  private readonly nodeSeconds = new Histogram({
    name: "reprise_node_duration_seconds",
    help: "Wall time of node attempts run by this process, by final state",
    labelNames: ["state"],
    buckets: [0.1, 0.5, 1, 5, 15, 60, 300, 1800, 7200],
    registers: [this.registry],
  });
  private readonly cache = new Counter({
    name: "reprise_cache_lookups_total",
    help: "Memo cache lookups of nodes driven by this process: hit or miss",
    labelNames: ["result"],
    registers: [this.registry],
  });
  private readonly passes = new Histogram({
    name: "reprise_engine_pass_seconds",
    help: "Engine loop latency: one reconcile pass (plan, cache reads, one write, launches)",
    buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5],
    registers: [this.registry],
  });
  private readonly started = new Map<string, number>();

  get contentType(): string {
    return this.registry.contentType;
  }

  /** Engine events as they happen (EngineOptions.onEvent). */
  onEvent = (e: EngineEvent): void => {
    if (e.type !== "node") return;
    const key = `${e.executionId}/${e.nodeId}`;
    if (e.state === "RUNNING") {
      this.started.set(key, performance.now());
      if (e.cache === "MISS") this.cache.inc({ result: "miss" });
      return;
    }
    if (e.cache === "HIT") this.cache.inc({ result: "hit" });
    const t = this.started.get(key);
    if (t !== undefined && e.state !== "QUEUED") {
      this.started.delete(key);
      this.nodeSeconds.observe({ state: e.state }, (performance.now() - t) / 1000);
    }
  };

  onPass = (ms: number): void => {
    this.passes.observe(ms / 1000);
  };

  delivery(outcome: string): void {
    this.deliveriesTotal.inc({ outcome });
  }

  async render(store: Store): Promise<string> {
    const byState = await rows<{ state: string; n: number | string }>(
      store.db,
      sql`select state, count(*) as n from executions group by state`,
    );
    this.executions.reset();
    for (const r of byState) this.executions.set({ state: r.state }, Number(r.n));
    const [queued] = await rows<{ n: number | string }>(
      store.db,
      sql`select count(*) as n from node_executions where state = 'QUEUED'`,
    );
    this.queueDepth.set(Number(queued?.n ?? 0));
    this.deliveries.set(await store.deliveries.pendingCount());
    return this.registry.metrics();
  }
}
