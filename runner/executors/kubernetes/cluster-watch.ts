/**
 * One view of every Reprise Job and pod in the namespace, kept by two informers (list, then watch
 * from the list's resourceVersion; relist on 410 Gone; client-node's ListWatch), shared by all the
 * attempts a runner waits for: status comes from these two watch streams, never from polling each
 * Job or pod. Pods are indexed by their Job's name.
 */
import {
  type BatchV1Api,
  type CoreV1Api,
  type Informer,
  type KubeConfig,
  makeInformer,
  type ObjectCache,
  type V1Job,
  type V1Pod,
} from "@kubernetes/client-node";
import { MANAGED_BY, MANAGER } from "./manifests.js";

/** Waits before restarting an informer that stopped on an error other than 410. */
const RESTART_MS = [200, 1_000, 5_000] as const;

export type Change = { kind: "job" | "pod"; job: string; deleted: boolean };

export class ClusterWatch {
  readonly #jobs: Informer<V1Job> & ObjectCache<V1Job>;
  readonly #pods: Informer<V1Pod> & ObjectCache<V1Pod>;
  readonly #podsByJob = new Map<string, Map<string, V1Pod>>();
  /** By Job name: each change reaches only those waiting for that Job. */
  readonly #listeners = new Map<string, Set<(c: Change) => void>>();
  readonly #interest = new Map<string, number>();
  #started: Promise<void> | null = null;
  #stopped = false;
  readonly #timers = new Set<NodeJS.Timeout>();
  /** Errors in a row per informer, for the restart backoff. */
  readonly #failures = { job: 0, pod: 0 };
  onError: (what: string, e: unknown) => void = () => {};

  constructor(
    kc: KubeConfig,
    batch: BatchV1Api,
    core: CoreV1Api,
    private readonly namespace: string,
  ) {
    const labelSelector = `${MANAGED_BY}=${MANAGER}`;
    this.#jobs = makeInformer(
      kc,
      `/apis/batch/v1/namespaces/${namespace}/jobs`,
      () => batch.listNamespacedJob({ namespace, labelSelector }),
      labelSelector,
    );
    this.#pods = makeInformer(
      kc,
      `/api/v1/namespaces/${namespace}/pods`,
      () => core.listNamespacedPod({ namespace, labelSelector }),
      labelSelector,
    );
    for (const verb of ["add", "update"] as const) {
      this.#jobs.on(verb, (job) =>
        this.#emit({ kind: "job", job: job.metadata?.name ?? "", deleted: false }),
      );
      this.#pods.on(verb, (pod) => this.#indexPod(pod, false));
    }
    this.#jobs.on("delete", (job) => {
      const name = job.metadata?.name ?? "";
      this.#emit({ kind: "job", job: name, deleted: true });
      this.#prune(name);
    });
    this.#pods.on("delete", (pod) => this.#indexPod(pod, true));
    this.#jobs.on("connect", () => {
      this.#failures.job = 0;
    });
    this.#pods.on("connect", () => {
      this.#failures.pod = 0;
    });
    this.#jobs.on("error", (e) => this.#restart("job", this.#jobs, e));
    this.#pods.on("error", (e) => this.#restart("pod", this.#pods, e));
  }

  /** Starts both informers once; resolves when both have listed and are watching. */
  start(): Promise<void> {
    this.#started ??= Promise.all([this.#jobs.start(), this.#pods.start()]).then(() => {});
    return this.#started;
  }

  job(name: string): V1Job | undefined {
    return this.#jobs.get(name, this.namespace);
  }

  /** The Job's pods as last seen, oldest first, and which of them were deleted since. */
  pods(job: string): V1Pod[] {
    return [...(this.#podsByJob.get(job)?.values() ?? [])];
  }

  /** Calls `listener` on every change to the Job or its pods. */
  subscribe(job: string, listener: (c: Change) => void): () => void {
    let set = this.#listeners.get(job);
    if (!set) {
      set = new Set();
      this.#listeners.set(job, set);
    }
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size === 0) this.#listeners.delete(job);
    };
  }

  /**
   * Keeps the Job's pods indexed, deleted ones included, while someone waits for it; released,
   * the index forgets them once the Job is gone too.
   */
  hold(job: string): () => void {
    this.#interest.set(job, (this.#interest.get(job) ?? 0) + 1);
    return () => {
      const n = (this.#interest.get(job) ?? 1) - 1;
      if (n > 0) this.#interest.set(job, n);
      else {
        this.#interest.delete(job);
        this.#prune(job);
      }
    };
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    for (const t of this.#timers) clearTimeout(t);
    await Promise.all([this.#jobs.stop(), this.#pods.stop()]);
  }

  #indexPod(pod: V1Pod, deleted: boolean): void {
    const job =
      pod.metadata?.labels?.["job-name"] ?? pod.metadata?.labels?.["batch.kubernetes.io/job-name"];
    const name = pod.metadata?.name;
    if (!job || !name) return;
    let pods = this.#podsByJob.get(job);
    if (!pods) {
      pods = new Map();
      this.#podsByJob.set(job, pods);
    }
    // A deleted pod stays indexed, marked, until its attempt is decided: it tells what happened.
    pods.set(name, deleted ? markDeleted(pod) : pod);
    this.#emit({ kind: "pod", job, deleted });
    if (deleted) this.#prune(job);
  }

  #prune(job: string): void {
    if (!this.#interest.has(job) && !this.job(job)) this.#podsByJob.delete(job);
  }

  #emit(change: Change): void {
    for (const l of [...(this.#listeners.get(change.job) ?? [])]) l(change);
  }

  /** ListWatch stops on any error but 410 (which it relists on itself): start it again, backing off. */
  #restart(kind: "job" | "pod", informer: Informer<V1Job> | Informer<V1Pod>, e: unknown): void {
    if (this.#stopped) return;
    this.onError(`${kind} watch`, e);
    const n = this.#failures[kind]++;
    const timer = setTimeout(
      () => {
        this.#timers.delete(timer);
        if (!this.#stopped)
          informer.start().catch((err: unknown) => this.onError(`${kind} watch`, err));
      },
      RESTART_MS[Math.min(n, RESTART_MS.length - 1)],
    );
    this.#timers.add(timer);
  }
}

const DELETED = Symbol("deleted");

function markDeleted(pod: V1Pod): V1Pod {
  return { ...pod, [DELETED]: true } as V1Pod;
}

export function wasDeleted(pod: V1Pod): boolean {
  return (pod as unknown as Record<symbol, unknown>)[DELETED] === true;
}
