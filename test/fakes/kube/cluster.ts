/**
 * What the fake cluster does behind the apiserver: creation and deletion with owner-reference
 * garbage collection (Background, Foreground treated alike, Orphan), the Job controller
 * (one pod per Job, backoffLimit, podFailurePolicy, activeDeadlineSeconds, ttlSecondsAfterFinished)
 * and the simulated kubelet (kubelet.ts) that runs pods as local processes.
 */
import { randomBytes } from "node:crypto";
import { Kubelet, type KubeletOptions } from "./kubelet.js";
import { clone, type KubeObject, RESOURCES, type Resource } from "./objects.js";
import { ObjectStore } from "./store.js";

export type Propagation = "Background" | "Foreground" | "Orphan";

interface JobBook {
  /** Pods whose failure was already counted or ignored. */
  settled: Set<string>;
  timers: NodeJS.Timeout[];
}

export class Cluster {
  readonly store = new ObjectStore();
  readonly kubelet: Kubelet;
  readonly #jobs = new Map<string, JobBook>();
  readonly #pending = new Set<string>();
  #closed = false;

  constructor(kubelet: KubeletOptions) {
    this.kubelet = new Kubelet(this.store, kubelet);
    this.store.subscribe((e) => {
      if (e.resource !== "pods") return;
      const owner = e.object.metadata.ownerReferences?.find((o) => o.kind === "Job");
      if (owner) this.#queueJob(e.namespace, owner.name);
    });
  }

  /** Returns the stored object, or null when one of that name exists (409). */
  create(resource: Resource["plural"], body: KubeObject): KubeObject | null {
    const meta = body.metadata;
    if (!meta.name && meta.generateName) meta.name = meta.generateName + suffix();
    if (this.store.get(resource, meta.namespace, meta.name)) return null;
    if (resource === "jobs") defaultJob(body);
    if (resource === "secrets" && body.stringData) {
      body.data = { ...body.data };
      for (const [k, v] of Object.entries(body.stringData)) {
        body.data[k] = Buffer.from(v).toString("base64");
      }
      delete body.stringData;
    }
    const created = this.store.create(resource, body);
    if (resource === "jobs") this.#queueJob(meta.namespace, meta.name);
    if (resource === "pods") this.kubelet.admit(created);
    return created;
  }

  /**
   * Deletes an object and, as the garbage collector would, what it owns. Returns the deleted
   * object's uid, or null when there was none. Jobs default to Orphan, as batch/v1 does.
   */
  delete(
    resource: Resource["plural"],
    namespace: string,
    name: string,
    propagation?: Propagation,
  ): string | null {
    const obj = this.store.get(resource, namespace, name);
    if (!obj) return null;
    if (resource === "pods") {
      this.kubelet.deletePod(namespace, name);
    } else {
      this.store.remove(resource, namespace, name);
    }
    if (resource === "jobs") this.#forgetJob(obj.metadata.uid);
    const policy = propagation ?? (resource === "jobs" ? "Orphan" : "Background");
    setImmediate(() => this.#collect(obj.metadata.uid, policy));
    return obj.metadata.uid;
  }

  close(): void {
    this.#closed = true;
    for (const book of this.#jobs.values()) for (const t of book.timers) clearTimeout(t);
    this.#jobs.clear();
    this.kubelet.close();
  }

  #collect(uid: string, policy: Propagation): void {
    if (this.#closed) return;
    for (const { resource, object } of this.store.dependentsOf(uid)) {
      const m = object.metadata;
      if (policy === "Orphan") {
        this.store.update(resource, m.namespace, m.name, (o) => {
          o.metadata.ownerReferences = o.metadata.ownerReferences?.filter((r) => r.uid !== uid);
        });
      } else {
        this.delete(resource, m.namespace, m.name, "Background");
      }
    }
  }

  #queueJob(namespace: string, name: string): void {
    const key = `${namespace}/${name}`;
    if (this.#pending.has(key) || this.#closed) return;
    this.#pending.add(key);
    setImmediate(() => {
      this.#pending.delete(key);
      if (!this.#closed) this.#reconcileJob(namespace, name);
    });
  }

  #book(uid: string): JobBook {
    let book = this.#jobs.get(uid);
    if (!book) {
      book = { settled: new Set(), timers: [] };
      this.#jobs.set(uid, book);
    }
    return book;
  }

  #forgetJob(uid: string): void {
    const book = this.#jobs.get(uid);
    if (!book) return;
    for (const t of book.timers) clearTimeout(t);
    this.#jobs.delete(uid);
  }

  #after(uid: string, at: number, namespace: string, name: string): void {
    const book = this.#book(uid);
    const timer = setTimeout(() => this.#queueJob(namespace, name), Math.max(0, at - Date.now()));
    book.timers.push(timer);
  }

  /** The Job controller's sync of one Job, level-triggered from what the store holds now. */
  #reconcileJob(namespace: string, name: string): void {
    const job = this.store.get("jobs", namespace, name);
    if (!job) return;
    const uid = job.metadata.uid;
    const book = this.#book(uid);
    const finished = finishedAt(job);
    if (finished !== null) {
      const ttl = job.spec.ttlSecondsAfterFinished;
      if (typeof ttl === "number") {
        if (Date.now() >= finished + ttl * 1000) this.delete("jobs", namespace, name, "Background");
        else this.#after(uid, finished + ttl * 1000, namespace, name);
      }
      return;
    }
    const now = new Date();
    if (!job.status?.startTime) {
      this.store.update("jobs", namespace, name, (j) => {
        j.status = { ...j.status, startTime: now.toISOString(), active: 0 };
      });
      this.#queueJob(namespace, name);
      return;
    }
    const pods = this.store
      .dependentsOf(uid)
      .filter((d) => d.resource === "pods")
      .map((d) => d.object);
    const deadline = job.spec.activeDeadlineSeconds;
    if (typeof deadline === "number") {
      const end = Date.parse(job.status.startTime) + deadline * 1000;
      if (now.getTime() >= end) {
        this.#fail(job, pods, "DeadlineExceeded", "Job was active longer than specified deadline");
        return;
      }
      if (!book.timers.length) this.#after(uid, end, namespace, name);
    }
    const succeeded = pods.find((p) => p.status?.phase === "Succeeded");
    if (succeeded) {
      this.store.update("jobs", namespace, name, (j) => {
        j.status = {
          ...j.status,
          active: 0,
          succeeded: 1,
          completionTime: now.toISOString(),
          conditions: [
            condition(
              "SuccessCriteriaMet",
              "CompletionsReached",
              "Reached expected number of succeeded pods",
            ),
            condition(
              "Complete",
              "CompletionsReached",
              "Reached expected number of succeeded pods",
            ),
          ],
        };
      });
      this.#queueJob(namespace, name);
      return;
    }
    let failed = job.status.failed ?? 0;
    for (const pod of pods) {
      if (pod.status?.phase !== "Failed" || book.settled.has(pod.metadata.uid)) continue;
      book.settled.add(pod.metadata.uid);
      const action = failurePolicyAction(job, pod);
      if (action === "Ignore") continue;
      if (action === "FailJob") {
        this.#fail(
          job,
          pods,
          "PodFailurePolicy",
          `Pod ${namespace}/${pod.metadata.name} matched a FailJob rule`,
        );
        return;
      }
      failed += 1;
    }
    if (failed > (job.spec.backoffLimit ?? 6)) {
      this.store.update("jobs", namespace, name, (j) => {
        j.status = { ...j.status, failed };
      });
      this.#fail(job, pods, "BackoffLimitExceeded", "Job has reached the specified backoff limit");
      return;
    }
    const active = pods.filter(
      (p) =>
        !p.metadata.deletionTimestamp &&
        p.status?.phase !== "Failed" &&
        p.status?.phase !== "Succeeded",
    );
    if (active.length === 0) this.create("pods", podFor(job));
    if (job.status.active !== 1 || (job.status.failed ?? 0) !== failed) {
      this.store.update("jobs", namespace, name, (j) => {
        j.status = { ...j.status, active: 1, ...(failed ? { failed } : {}) };
      });
    }
  }

  /** Marks the Job failed first (FailureTarget), then terminates what still runs, as the controller does. */
  #fail(job: KubeObject, pods: KubeObject[], reason: string, message: string): void {
    const { namespace, name } = job.metadata;
    this.store.update("jobs", namespace, name, (j) => {
      j.status = {
        ...j.status,
        active: 0,
        conditions: [
          condition("FailureTarget", reason, message),
          condition("Failed", reason, message),
        ],
      };
    });
    for (const pod of pods) {
      const phase = pod.status?.phase;
      if (phase !== "Succeeded" && phase !== "Failed")
        this.delete("pods", namespace, pod.metadata.name);
    }
    this.#queueJob(namespace, name);
  }
}

/** What the apiserver's admission and defaulting add to a Job. */
function defaultJob(job: KubeObject): void {
  job.spec.backoffLimit ??= 6;
  job.spec.completions ??= 1;
  job.spec.parallelism ??= 1;
  job.status = {};
  const tpl = job.spec.template;
  tpl.metadata ??= {};
  tpl.metadata.labels = {
    ...tpl.metadata.labels,
    "batch.kubernetes.io/job-name": job.metadata.name,
    "job-name": job.metadata.name,
  };
}

function podFor(job: KubeObject): KubeObject {
  const tpl = clone(job.spec.template);
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      name: "",
      generateName: `${job.metadata.name}-`,
      namespace: job.metadata.namespace,
      uid: "",
      resourceVersion: "",
      creationTimestamp: "",
      labels: { ...tpl.metadata?.labels, "batch.kubernetes.io/controller-uid": job.metadata.uid },
      annotations: { ...tpl.metadata?.annotations },
      ownerReferences: [
        {
          apiVersion: RESOURCES.jobs.apiVersion,
          kind: "Job",
          name: job.metadata.name,
          uid: job.metadata.uid,
          controller: true,
          blockOwnerDeletion: true,
        },
      ],
    },
    spec: tpl.spec,
    status: { phase: "Pending" },
  };
}

/** The first podFailurePolicy rule the failed pod matches (conditions and exit codes). */
function failurePolicyAction(job: KubeObject, pod: KubeObject): string | null {
  const rules: Array<{
    action: string;
    onPodConditions?: Array<{ type: string; status?: string }>;
    onExitCodes?: { containerName?: string; operator: "In" | "NotIn"; values: number[] };
  }> = job.spec.podFailurePolicy?.rules ?? [];
  for (const rule of rules) {
    if (rule.onPodConditions) {
      const hit = rule.onPodConditions.some((want) =>
        (pod.status?.conditions ?? []).some(
          (c: { type: string; status: string }) =>
            c.type === want.type && c.status === (want.status ?? "True"),
        ),
      );
      if (hit) return rule.action;
    }
    if (rule.onExitCodes) {
      const { containerName, operator, values } = rule.onExitCodes;
      const codes = (pod.status?.containerStatuses ?? [])
        .filter((s: { name: string }) => !containerName || s.name === containerName)
        .map(
          (s: { state?: { terminated?: { exitCode: number } } }) => s.state?.terminated?.exitCode,
        )
        .filter((c: number | undefined) => c !== undefined && c !== 0);
      const hit = codes.some((c: number) =>
        operator === "In" ? values.includes(c) : !values.includes(c),
      );
      if (hit) return rule.action;
    }
  }
  return null;
}

function finishedAt(job: KubeObject): number | null {
  const done = (job.status?.conditions ?? []).find(
    (c: { type: string; status: string }) =>
      (c.type === "Complete" || c.type === "Failed") && c.status === "True",
  );
  return done ? Date.parse(done.lastTransitionTime) : null;
}

function condition(type: string, reason: string, message: string) {
  const now = new Date().toISOString();
  return { type, status: "True", reason, message, lastProbeTime: now, lastTransitionTime: now };
}

function suffix(): string {
  const alphabet = "bcdfghjklmnpqrstvwxz2456789";
  return [...randomBytes(5)].map((b) => alphabet[b % alphabet.length]).join("");
}
