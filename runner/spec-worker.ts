/**
 * Reading a spec off the event loop (issue 14): parsing a reprise.yaml and hashing its tasks is
 * pure core code that takes seconds for a 1,000-task spec, so the server, the GitHub App and the
 * CLI's register hand it to a small pool of worker threads (spec-worker-thread.ts) and keep
 * answering meanwhile. `buildVersion` itself stays synchronous for pure callers.
 *
 * A worker that dies (out of memory on a hostile spec, a bug) fails only the request it was
 * reading, with SpecWorkerError, and is replaced for the next one; that request is not retried,
 * so a spec that kills its worker cannot take the pool down in a loop. Idle workers do not keep
 * the process alive.
 */
import { availableParallelism } from "node:os";
import { type ResourceLimits, Worker } from "node:worker_threads";
import type { TreeEntry } from "../core/hash/sources.js";
import type { BuildResult } from "../core/version/build-version.js";

export type SpecRequest =
  | { id: number; op: "build"; spec: string | Uint8Array; tree: readonly TreeEntry[] }
  | { id: number; op: "globs"; spec: string | Uint8Array };

export type SpecReply = { id: number; threadId: number } & (
  | { result: BuildResult }
  | { globs: string[] | null }
  | { error: { message: string; stack: string } }
);

/** A worker stopped while reading a spec, or the build threw; `cause` says which. */
export class SpecWorkerError extends Error {
  override readonly name = "SpecWorkerError";
}

export interface SpecWorkerOptions {
  /** Threads (default: one fewer than the cores, at least 1, at most 2). */
  size?: number;
  /** Per worker; the default bounds the heap one spec can take. */
  resourceLimits?: ResourceLimits;
}

/** What the pool has done, for tests and diagnostics. */
export interface SpecWorkerStats {
  /** Requests answered by a worker. */
  answered: number;
  /** The thread ids that answered them (never 0, the main thread's). */
  threadIds: Set<number>;
  /** Workers that stopped unexpectedly and were replaced. */
  crashed: number;
}

/** Old-generation heap of one worker: far above what a valid 1 MiB spec needs. */
const HEAP_MB = 512;

interface Job {
  req: SpecRequest;
  resolve: (reply: SpecReply) => void;
  reject: (e: Error) => void;
}

interface Slot {
  worker: Worker;
  job: Job | null;
}

export class SpecWorkers {
  readonly stats: SpecWorkerStats = { answered: 0, threadIds: new Set(), crashed: 0 };
  private readonly size: number;
  private readonly limits: ResourceLimits;
  private readonly slots: Slot[] = [];
  private readonly queue: Job[] = [];
  private nextId = 1;
  private closed = false;

  constructor(opts: SpecWorkerOptions = {}) {
    this.size = opts.size ?? Math.max(1, Math.min(2, availableParallelism() - 1));
    this.limits = opts.resourceLimits ?? { maxOldGenerationSizeMb: HEAP_MB };
  }

  /** core's buildVersion, on a worker thread. */
  async build(spec: string | Uint8Array, tree: readonly TreeEntry[]): Promise<BuildResult> {
    const reply = await this.run({ id: this.nextId++, op: "build", spec, tree });
    if (!("result" in reply)) throw new SpecWorkerError("spec worker answered without a result");
    return reply.result;
  }

  /** Every task's `sources` globs of a spec that parses, else null (GitHub's truncated trees). */
  async sourceGlobs(spec: string | Uint8Array): Promise<string[] | null> {
    const reply = await this.run({ id: this.nextId++, op: "globs", spec });
    if (!("globs" in reply)) throw new SpecWorkerError("spec worker answered without globs");
    return reply.globs;
  }

  /** Stops every worker; requests still waiting fail. */
  async close(): Promise<void> {
    this.closed = true;
    if (shared === this) shared = null;
    for (const job of this.queue.splice(0))
      job.reject(new SpecWorkerError("the spec workers were closed"));
    await Promise.all(this.slots.splice(0).map((s) => s.worker.terminate()));
  }

  private run(req: SpecRequest): Promise<SpecReply> {
    if (this.closed) return Promise.reject(new SpecWorkerError("the spec workers were closed"));
    return new Promise<SpecReply>((resolve, reject) => {
      this.queue.push({ req, resolve, reject });
      this.dispatch();
    }).then((reply) => {
      if ("error" in reply) {
        const e = new SpecWorkerError(`reading the spec failed: ${reply.error.message}`);
        e.stack = reply.error.stack || e.stack;
        throw e;
      }
      return reply;
    });
  }

  private dispatch(): void {
    while (this.queue.length > 0) {
      let slot = this.slots.find((s) => s.job === null);
      if (!slot && this.slots.length < this.size) slot = this.spawn();
      if (!slot) return;
      const job = this.queue.shift() as Job;
      slot.job = job;
      slot.worker.ref();
      slot.worker.postMessage(job.req);
    }
  }

  private spawn(): Slot {
    const worker = startWorker(this.limits);
    const slot: Slot = { worker, job: null };
    this.slots.push(slot);
    worker.unref();
    worker.on("message", (reply: SpecReply) => {
      const job = slot.job;
      if (!job || reply.id !== job.req.id) return;
      slot.job = null;
      worker.unref();
      this.stats.answered++;
      this.stats.threadIds.add(reply.threadId);
      job.resolve(reply);
      this.dispatch();
    });
    // A worker that throws outside a request, runs out of memory or exits is gone: its request
    // fails, and the next request starts a fresh one.
    let gone = false;
    const lost = (why: string, cause?: unknown) => {
      if (gone) return;
      gone = true;
      const i = this.slots.indexOf(slot);
      if (i >= 0) this.slots.splice(i, 1);
      if (this.closed) return;
      this.stats.crashed++;
      const job = slot.job;
      slot.job = null;
      job?.reject(
        new SpecWorkerError(`the spec worker stopped (${why}) while reading this spec`, { cause }),
      );
      this.dispatch();
    };
    worker.on("error", (e) => lost(e.message, e));
    worker.on("exit", (code) => lost(`exit code ${code}`));
    return slot;
  }
}

/**
 * The thread entry beside this file: the built `.js` as is (dist/, or the tests' esbuild bundle,
 * test/setup/cli-bundle.ts, which emits it as a second entry point beside the code of this file);
 * from the sources (tsx, vitest) a `.ts` file, which a worker can only load after registering
 * tsx's loader itself.
 */
function startWorker(resourceLimits: ResourceLimits): Worker {
  const fromSources = import.meta.url.endsWith(".ts");
  const entry = new URL(`./spec-worker-thread.${fromSources ? "ts" : "js"}`, import.meta.url);
  if (!fromSources) return new Worker(entry, { resourceLimits });
  // Node 20 gives a worker none of the main thread's loaders (neither `--import tsx` in its
  // execArgv): the worker registers tsx's ESM loader, through its API, before the first import.
  const tsx = import.meta.resolve("tsx/esm/api");
  const boot = `import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(entry.href)}); });`;
  return new Worker(boot, { eval: true, resourceLimits });
}

let shared: SpecWorkers | null = null;

/** The process's pool, started on first use. */
export function specWorkers(): SpecWorkers {
  shared ??= new SpecWorkers();
  return shared;
}
