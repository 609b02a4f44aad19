/**
 * The kubernetes executor (docs/design.md section 7): each attempt is a batch/v1 Job named by its
 * handle, with the code fetched by an init container, inputs in a ConfigMap and outputs through
 * the termination message (manifests.ts). How an attempt stands is read from two informers shared
 * by every attempt (cluster-watch.ts) and decided by a pure function of the Job and its pods
 * (classify.ts), so a runner that restarts re-attaches by name and reads the same verdict.
 *
 * API requests per attempt: create Job, create ConfigMap (create Secret when the attempt has
 * secrets or a fetch token), read the log once it ends. Nothing polls; a pending pod is looked at
 * again when its pending timeout falls due.
 */
import { mkdir, open, rename, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import {
  BatchV1Api,
  CoreV1Api,
  type KubeConfig,
  type V1Job,
  type V1Pod,
} from "@kubernetes/client-node";
import { usesArtifacts } from "../artifact-io.js";
import { mask } from "../mask.js";
import { lastBytes } from "../tail.js";
import { AttemptError, type AttemptOutcome, type Executor, type LaunchSpec } from "../types.js";
import { type Agents, keepAliveClient } from "./api-client.js";
import { type AttemptFacts, classify, type Verdict } from "./classify.js";
import { ClusterWatch, wasDeleted } from "./cluster-watch.js";
import type { CodeSource } from "./code-source.js";
import {
  attemptObjects,
  CONTAINERS,
  type ManifestOptions,
  owned,
  sameAttempt,
} from "./manifests.js";
import { kubeSecretsProblem } from "./secrets.js";

export interface KubernetesExecutorOptions {
  kubeConfig: KubeConfig;
  namespace: string;
  codeSource: CodeSource;
  /** Where the end of each attempt's log is kept once it finishes (pods do not live forever). */
  logDir: string;
  fetchImage?: string;
  ttlSecondsAfterFinished?: number;
  /** How long a pod may stay Pending (image pull, unschedulable...) before a system failure. */
  pendingTimeoutSeconds?: number;
  resources?: ManifestOptions["resources"];
  serviceAccountName?: string;
  terminationGracePeriodSeconds?: number;
  /**
   * The Secrets tasks may name, by name, with the repositories whose tasks may
   * (REPRISE_KUBE_SECRETS, secrets.ts); absent: none, a task that names one is refused.
   */
  secrets?: ReadonlyMap<string, readonly string[]>;
  /** Where the executor reports trouble it works around (a watch that broke and restarts). */
  warn?: (message: string, fields: Record<string, unknown>) => void;
}

/** An image with sh, curl and tar, for the init container; pin it by digest in production. */
export const DEFAULT_FETCH_IMAGE = "curlimages/curl:8.11.1";
/** A day: long enough for a runner to come back and collect what finished meanwhile. */
const DEFAULT_TTL_SECONDS = 86_400;
const DEFAULT_PENDING_TIMEOUT_SECONDS = 600;
const DEFAULT_GRACE_SECONDS = 30;
/** How much of a finished attempt's log is kept on the runner's disk. */
const KEPT_LOG_BYTES = 1024 * 1024;
/** Lines asked of the pod log API (the API takes lines, not bytes, from the end). */
const LOG_TAIL_LINES = 20_000;
const MESSAGE_LOG_BYTES = 2_048;
const MESSAGE_LOG_LINES = 20;
const READ_RETRIES_MS = [200, 1_000, 3_000] as const;

const NONE: ReadonlyMap<string, readonly string[]> = new Map();

const LOG_REF =
  /^kubernetes:\/\/([a-z0-9]([-a-z0-9]*[a-z0-9])?)\/([a-z0-9]([-a-z0-9.]*[a-z0-9])?)$/;

export class KubernetesExecutor implements Executor {
  readonly name = "kubernetes";
  readonly namespace: string;
  readonly #batch: BatchV1Api;
  readonly #core: CoreV1Api;
  readonly #watch: ClusterWatch;
  readonly #options: KubernetesExecutorOptions;
  readonly #manifest: ManifestOptions;
  readonly #pendingTimeoutMs: number;
  readonly #launches = new Map<string, Promise<void>>();
  /** Jobs this process created or read, until the informer's cache has them. */
  readonly #known = new Map<string, V1Job>();
  /** Attempts this process aborted: their Job's disappearance is the abort, not a loss. */
  readonly #aborted = new Set<string>();
  readonly #waits = new Map<string, Promise<AttemptOutcome>>();
  readonly #wakers = new Map<string, () => void>();
  readonly #agents: Agents = new Map();
  #closed = false;

  constructor(options: KubernetesExecutorOptions) {
    this.#options = options;
    this.namespace = options.namespace;
    this.#batch = keepAliveClient(options.kubeConfig, BatchV1Api, this.#agents);
    this.#core = keepAliveClient(options.kubeConfig, CoreV1Api, this.#agents);
    this.#watch = new ClusterWatch(options.kubeConfig, this.#batch, this.#core, options.namespace);
    this.#watch.onError = (what, e) =>
      options.warn?.(`kubernetes executor: ${what} failed; restarting it`, { error: String(e) });
    this.#manifest = {
      namespace: options.namespace,
      fetchImage: options.fetchImage ?? DEFAULT_FETCH_IMAGE,
      ttlSecondsAfterFinished: options.ttlSecondsAfterFinished ?? DEFAULT_TTL_SECONDS,
      terminationGracePeriodSeconds: options.terminationGracePeriodSeconds ?? DEFAULT_GRACE_SECONDS,
      ...(options.resources ? { resources: options.resources } : {}),
      ...(options.serviceAccountName ? { serviceAccountName: options.serviceAccountName } : {}),
    };
    this.#pendingTimeoutMs =
      (options.pendingTimeoutSeconds ?? DEFAULT_PENDING_TIMEOUT_SECONDS) * 1000;
  }

  launch(spec: LaunchSpec): Promise<void> {
    this.#assertOpen();
    if (this.#aborted.has(spec.handle) || this.#known.has(spec.handle)) return Promise.resolve();
    let launching = this.#launches.get(spec.handle);
    if (!launching) {
      launching = this.#launch(spec).finally(() => this.#launches.delete(spec.handle));
      this.#launches.set(spec.handle, launching);
    }
    return launching;
  }

  wait(spec: LaunchSpec): Promise<AttemptOutcome> {
    if (this.#closed) return Promise.reject(closedError());
    let waiting = this.#waits.get(spec.handle);
    if (!waiting) {
      waiting = this.#follow(spec).finally(() => this.#waits.delete(spec.handle));
      this.#waits.set(spec.handle, waiting);
    }
    return waiting;
  }

  async abort(handle: string): Promise<void> {
    this.#assertOpen();
    const job = this.#watch.job(handle) ?? this.#known.get(handle) ?? (await this.#readJob(handle));
    if (job && finished(job)) return;
    this.#aborted.add(handle);
    this.#wakers.get(handle)?.();
    await this.#deleteJob(handle);
  }

  async logTail(logRef: string, maxBytes: number): Promise<string | null> {
    const m = LOG_REF.exec(logRef);
    if (!m) return null;
    const [namespace, pod] = [m[1] as string, m[3] as string];
    const kept = await readTail(this.#keptLog(namespace, pod), maxBytes);
    if (kept !== null) return kept;
    const log = await this.#readLog(namespace, pod);
    return log === null ? null : lastBytes(log, maxBytes);
  }

  /** Stops watching; Jobs keep running, and a later runner re-attaches to them by name. */
  async close(): Promise<void> {
    this.#closed = true;
    for (const wake of this.#wakers.values()) wake();
    await this.#watch.stop();
    for (const agent of this.#agents.values()) agent.destroy();
  }

  async #launch(spec: LaunchSpec): Promise<void> {
    if (spec.command.length === 0) {
      throw new Error(`task "${spec.taskName}" has an empty command; give it a command to run`);
    }
    // Every Job runs in one namespace, where any Secret could be named: only what
    // REPRISE_KUBE_SECRETS allows for the repository, refused before anything is created.
    const refused = kubeSecretsProblem(spec, spec.secretRefs ?? [], this.#options.secrets ?? NONE);
    if (refused) throw new AttemptError({ kind: "user", reason: "secrets", message: refused });
    if (usesArtifacts(spec))
      // Pods have no filesystem in common with the runner: artifacts reach them through the
      // store, which this executor does not do yet. Refused, never run with missing data.
      throw new AttemptError({
        kind: "user",
        reason: "unsupported",
        message: `task "${spec.taskName}" has file or directory inputs or outputs, which the kubernetes executor does not support yet: run it with REPRISE_EXECUTOR=local`,
      });
    const code = await this.#options.codeSource(spec.repo, spec.sha);
    const objects = attemptObjects(spec, code, this.#manifest);
    const namespace = this.namespace;
    let job: V1Job;
    let adopted = false;
    try {
      job = await this.#batch.createNamespacedJob({ namespace, body: objects.job });
    } catch (e) {
      if (statusOf(e) !== 409)
        throw apiError(`could not create Job ${namespace}/${spec.handle}`, e);
      job = await this.#batch.readNamespacedJob({ name: spec.handle, namespace });
      const mismatch = sameAttempt(job, spec);
      if (mismatch) {
        throw new Error(
          `a Job named "${spec.handle}" already exists in namespace "${namespace}" and is not this attempt's (${mismatch}); Reprise will not adopt it: delete it (kubectl -n ${namespace} delete job ${spec.handle}) if it is stale`,
        );
      }
      adopted = true;
    }
    this.#known.set(spec.handle, job);
    try {
      // After the Job, because they name it as their owner; its pod waits for them to mount.
      await this.#createOwned("ConfigMap", () =>
        this.#core.createNamespacedConfigMap({ namespace, body: owned(objects.configMap, job) }),
      );
      const secret = objects.secret;
      if (secret) {
        await this.#createOwned("Secret", () =>
          this.#core.createNamespacedSecret({ namespace, body: owned(secret, job) }),
        );
      }
    } catch (e) {
      this.#known.delete(spec.handle);
      if (!adopted) await this.#deleteJob(spec.handle).catch(() => {});
      throw e;
    }
    // Aborted while the Job was being created: the abort's delete may have come first.
    if (this.#aborted.has(spec.handle)) await this.#deleteJob(spec.handle);
  }

  async #follow(spec: LaunchSpec): Promise<AttemptOutcome> {
    const handle = spec.handle;
    let jobGone: AttemptFacts["jobGone"] = null;
    let changed: (() => void) | null = null;
    const wake = () => changed?.();
    this.#wakers.set(handle, wake);
    const unsubscribe = this.#watch.subscribe(handle, (c) => {
      if (c.kind === "job") jobGone = c.deleted ? "deleted" : null;
      wake();
    });
    const release = this.#watch.hold(handle);
    let timer: NodeJS.Timeout | undefined;
    try {
      await this.#watch.start();
      let fetched = this.#known.get(handle) ?? null;
      if (!fetched && !this.#watch.job(handle) && !this.#aborted.has(handle)) {
        fetched = await this.#readJob(handle);
        if (!fetched && !this.#watch.job(handle) && jobGone === null) jobGone = "never";
      }
      for (;;) {
        if (this.#closed) {
          throw new Error(
            `the kubernetes executor was closed while waiting for attempt "${handle}"`,
          );
        }
        const cached = this.#watch.job(handle);
        if (cached) this.#known.delete(handle);
        const job = cached ?? (jobGone === null ? fetched : null);
        const verdict = classify({
          handle,
          namespace: this.namespace,
          job: job ?? null,
          jobGone: job ? null : (jobGone ?? "deleted"),
          abortedHere: this.#aborted.has(handle),
          pods: this.#watch.pods(handle).map((pod) => ({ pod, deleted: wasDeleted(pod) })),
          declared: spec.outputs,
          timeoutSeconds: spec.timeoutSeconds,
          pendingTimeoutMs: this.#pendingTimeoutMs,
          now: Date.now(),
        });
        if (verdict.done) return await this.#settle(spec, verdict);
        await new Promise<void>((resolve) => {
          changed = resolve;
          if (verdict.recheckAt !== null)
            timer = setTimeout(resolve, Math.max(0, verdict.recheckAt - Date.now()) + 10);
        });
        changed = null;
        if (timer) clearTimeout(timer);
      }
    } finally {
      if (timer) clearTimeout(timer);
      unsubscribe();
      release();
      this.#wakers.delete(handle);
    }
  }

  async #settle(
    spec: LaunchSpec,
    verdict: Exclude<Verdict, { done: false }>,
  ): Promise<AttemptOutcome> {
    if (!verdict.ok && verdict.deleteJob) await this.#deleteJob(spec.handle);
    const pod = verdict.pod;
    const log = pod ? await this.#keepLog(pod, spec) : null;
    const logRef = pod?.metadata?.name
      ? `kubernetes://${this.namespace}/${pod.metadata.name}`
      : null;
    if (verdict.ok)
      return {
        ok: true,
        outputs: verdict.outputs,
        logRef: logRef ?? `kubernetes://${this.namespace}/${spec.handle}`,
      };
    let message = verdict.error.message;
    if (verdict.quoteLog && log) {
      const tail = lastBytes(log, MESSAGE_LOG_BYTES)
        .trimEnd()
        .split("\n")
        .slice(-MESSAGE_LOG_LINES)
        .join("\n");
      if (tail) message = `${message}; last lines of the log:\n${tail}`;
    }
    return {
      ok: false,
      error: { ...verdict.error, message },
      logRef: log === null ? null : logRef,
    };
  }

  /** Reads the pod's log once, masks the attempt's secrets, and keeps its end on disk. */
  async #keepLog(pod: V1Pod, spec: LaunchSpec): Promise<string | null> {
    const name = pod.metadata?.name;
    if (!name) return null;
    const raw = await this.#readLog(this.namespace, name);
    if (raw === null) return null;
    const log = lastBytes(mask(raw, Object.values(spec.secrets)), KEPT_LOG_BYTES);
    const path = this.#keptLog(this.namespace, name);
    await mkdir(dirname(path), { recursive: true });
    const temp = `${path}.${process.pid}.tmp`;
    await writeFile(temp, log);
    await rename(temp, path);
    return log;
  }

  #keptLog(namespace: string, pod: string): string {
    return join(this.#options.logDir, namespace, `${pod}.log`);
  }

  async #readLog(namespace: string, pod: string): Promise<string | null> {
    try {
      return await this.#core.readNamespacedPodLog({
        name: pod,
        namespace,
        container: CONTAINERS.task,
        tailLines: LOG_TAIL_LINES,
      });
    } catch (e) {
      // Gone (404), or never started (400: waiting to start).
      if (statusOf(e) === 404 || statusOf(e) === 400) return null;
      throw apiError(`could not read the log of pod ${namespace}/${pod}`, e);
    }
  }

  async #readJob(name: string): Promise<V1Job | null> {
    for (let i = 0; ; i++) {
      try {
        return await this.#batch.readNamespacedJob({ name, namespace: this.namespace });
      } catch (e) {
        if (statusOf(e) === 404) return null;
        const pause = READ_RETRIES_MS[i];
        if (pause === undefined || (statusOf(e) ?? 500) < 500)
          throw apiError(`could not read Job ${this.namespace}/${name}`, e);
        await new Promise((r) => setTimeout(r, pause));
      }
    }
  }

  /** Background propagation: the API's default for Jobs orphans their pods, which keep running. */
  async #deleteJob(name: string): Promise<void> {
    try {
      await this.#batch.deleteNamespacedJob({
        name,
        namespace: this.namespace,
        propagationPolicy: "Background",
      });
    } catch (e) {
      if (statusOf(e) !== 404) throw apiError(`could not delete Job ${this.namespace}/${name}`, e);
    }
  }

  async #createOwned(kind: string, create: () => Promise<unknown>): Promise<void> {
    try {
      await create();
    } catch (e) {
      // 409: an earlier launch of this attempt (another runner, or before a restart) made it.
      if (statusOf(e) !== 409) throw apiError(`could not create the attempt's ${kind}`, e);
    }
  }

  #assertOpen(): void {
    if (this.#closed) throw closedError();
  }
}

function finished(job: V1Job): boolean {
  return (job.status?.conditions ?? []).some(
    (c) => (c.type === "Complete" || c.type === "Failed") && c.status === "True",
  );
}

function closedError(): Error {
  return new Error("the kubernetes executor is closed; create a new one");
}

/** The HTTP status of a client-node ApiException (or a Watch error), if any. */
function statusOf(e: unknown): number | undefined {
  const err = e as { code?: unknown; statusCode?: unknown };
  if (typeof err?.code === "number") return err.code;
  if (typeof err?.statusCode === "number") return err.statusCode;
  return undefined;
}

/** The apiserver's own message (from its Status body) where there is one. */
function apiError(what: string, e: unknown): Error {
  const body = (e as { body?: unknown }).body;
  let detail = (e as Error).message ?? String(e);
  if (typeof body === "string") {
    try {
      detail = (JSON.parse(body) as { message?: string }).message ?? detail;
    } catch {
      detail = body;
    }
  } else if (body && typeof body === "object" && "message" in body) {
    detail = String((body as { message: unknown }).message);
  }
  const code = statusOf(e);
  return new Error(`${what}: ${code ? `HTTP ${code}: ` : ""}${detail}`, { cause: e });
}

async function readTail(path: string, max: number): Promise<string | null> {
  const handle = await open(path, "r").catch(() => null);
  if (!handle) return null;
  try {
    const { size } = await handle.stat();
    const length = Math.min(size, max);
    const buf = Buffer.alloc(length);
    await handle.read(buf, 0, length, size - length);
    return buf.toString("utf8");
  } finally {
    await handle.close();
  }
}
