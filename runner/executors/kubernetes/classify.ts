/**
 * How an attempt stands, from what the cluster says about its Job and pod (docs/design.md section 3):
 * pure and level-triggered, so the runner that launched the attempt and one that re-attached
 * after a restart read the same objects the same way.
 *
 * | what the cluster says                                   | outcome                              |
 * | ------------------------------------------------------- | ------------------------------------ |
 * | this runner deleted the Job (abort)                     | user, `aborted`                      |
 * | Job Complete, outputs valid                             | success                              |
 * | Job Complete, outputs invalid                           | user, `outputs`                      |
 * | Job Failed: DeadlineExceeded, the task had started      | user, `timeout`                      |
 * | Job Failed: DeadlineExceeded, the pod never started     | system, `pending`, with the reason   |
 * | Job Failed, container OOMKilled                         | user, `oom`                          |
 * | pod Evicted: an emptyDir over its sizeLimit             | user, `disk`                         |
 * | Job Failed, container exited non-zero                   | user, `exit`, with the log's end     |
 * | Job Failed, the init container (code fetch) failed      | system, `fetch`                      |
 * | a pod with DisruptionTarget (eviction, preemption,      | system, `evicted` / `preempted` /    |
 * | node loss), or Evicted otherwise, while the Job runs    | `node-lost` / `disrupted`            |
 * | the pod deleted by someone else while the Job runs      | system, `pod-deleted`                |
 * | the pod Pending past the pending timeout (image pull,   | system, `pending`, with the reason   |
 * | unschedulable, missing Secret)                          |                                      |
 * | no Job (never launched, or deleted, not by this runner) | system, `lost`                       |
 */
import type {
  V1ContainerStatus,
  V1Job,
  V1JobCondition,
  V1Pod,
  V1PodCondition,
} from "@kubernetes/client-node";
import { checkOutputs, MAX_OUTPUTS_BYTES } from "../../../core/engine/outputs.js";
import type { NodeError } from "../../../core/engine/vocabulary.js";
import type { OutputDecl } from "../../../core/spec/types.js";
import { CONTAINERS } from "./manifests.js";

export interface AttemptFacts {
  handle: string;
  namespace: string;
  /** The Job as last seen; null when there is none. */
  job: V1Job | null;
  /** Why there is no Job: never found, or seen deleted. */
  jobGone: "never" | "deleted" | null;
  abortedHere: boolean;
  /** The Job's pods as last seen, deleted ones included (with `deleted`). */
  pods: Array<{ pod: V1Pod; deleted: boolean }>;
  declared: Readonly<Record<string, OutputDecl>>;
  timeoutSeconds: number;
  pendingTimeoutMs: number;
  now: number;
}

export type Verdict =
  | {
      done: false /** When to look again though nothing changed (a pending deadline). */;
      recheckAt: number | null;
    }
  | {
      done: true;
      ok: true;
      outputs: Record<string, import("../../../core/spec/types.js").JsonValue>;
      pod: V1Pod;
    }
  | {
      done: true;
      ok: false;
      error: NodeError;
      /** The pod whose log tells more. */
      pod: V1Pod | null;
      /** Quote the end of the log in the message. */
      quoteLog: boolean;
      /** The Job still runs something that must stop (a replacement pod, a stuck one). */
      deleteJob: boolean;
    };

export function classify(f: AttemptFacts): Verdict {
  const fail = (
    error: NodeError,
    pod: V1Pod | null,
    more: { quoteLog?: boolean; deleteJob?: boolean } = {},
  ): Verdict => ({
    done: true,
    ok: false,
    error,
    pod,
    quoteLog: more.quoteLog ?? false,
    deleteJob: more.deleteJob ?? false,
  });
  const latest = f.pods[f.pods.length - 1]?.pod ?? null;
  if (f.abortedHere) return fail({ kind: "user", reason: "aborted", message: "aborted" }, latest);
  const job = f.job;
  if (!job) {
    const message =
      f.jobGone === "deleted"
        ? `Job ${f.namespace}/${f.handle} was deleted while it ran, not by Reprise: the attempt is lost`
        : `no Job ${f.namespace}/${f.handle}: it was never launched, or it is gone (deleted, or removed after its ttlSecondsAfterFinished)`;
    return fail({ kind: "system", reason: "lost", message }, latest);
  }
  const complete = condition(job, "Complete");
  const failed = condition(job, "Failed") ?? condition(job, "FailureTarget");

  if (complete) {
    const winner = f.pods.find((p) => p.pod.status?.phase === "Succeeded")?.pod ?? null;
    if (!winner) {
      if (Object.keys(f.declared).length === 0)
        return { done: true, ok: true, outputs: {}, pod: latest as V1Pod };
      const message = `Job ${f.handle} completed but its pod is gone, and its outputs with it`;
      return fail({ kind: "system", reason: "lost", message }, null);
    }
    const message = terminated(winner)?.message ?? "";
    const raw = message === "" ? null : new TextEncoder().encode(message);
    const checked = checkOutputs(raw, f.declared);
    if (checked.ok) return { done: true, ok: true, outputs: checked.outputs, pod: winner };
    // The kubelet keeps only the last 4,096 bytes of the termination message file.
    const reason =
      raw !== null && raw.byteLength >= MAX_OUTPUTS_BYTES
        ? `outputs are over the ${MAX_OUTPUTS_BYTES}-byte limit (Kubernetes keeps the last ${MAX_OUTPUTS_BYTES} bytes of a termination message): write large data to storage and output its URI`
        : checked.reason;
    return fail({ kind: "user", reason: "outputs", message: reason }, winner);
  }

  // A disruption, a deletion or a stuck pending while the Job has not failed on its own.
  for (const { pod, deleted } of f.pods) {
    const disk = diskEviction(pod);
    if (disk) return fail(disk, pod, { quoteLog: true });
    const disruption = disruptionOf(pod);
    if (disruption) return fail(disruption, pod, { deleteJob: true });
    if (!failed && (deleted || pod.metadata?.deletionTimestamp) && !isFinished(pod)) {
      const message = `pod ${pod.metadata?.name} was deleted while the task ran, not by Reprise`;
      return fail({ kind: "system", reason: "pod-deleted", message }, pod, { deleteJob: true });
    }
  }

  if (failed) {
    const pod = f.pods.find((p) => p.pod.status?.phase === "Failed")?.pod ?? latest;
    if (failed.reason === "DeadlineExceeded") {
      if (pod && !started(pod)) {
        return fail(
          {
            kind: "system",
            reason: "pending",
            message: `the pod never started within the ${f.timeoutSeconds}s deadline: ${pendingReason(pod)}`,
          },
          pod,
        );
      }
      return fail(
        { kind: "user", reason: "timeout", message: `timed out after ${f.timeoutSeconds}s` },
        pod,
      );
    }
    const fetch = pod?.status?.initContainerStatuses?.find((s) => s.name === CONTAINERS.fetch)
      ?.state?.terminated;
    if (fetch && fetch.exitCode !== 0) {
      const message = `could not fetch the code: init container ${CONTAINERS.fetch} exited with code ${fetch.exitCode}${fetch.message ? `: ${fetch.message.trim()}` : ""}`;
      return fail({ kind: "system", reason: "fetch", message }, pod);
    }
    const end = pod ? terminated(pod) : undefined;
    if (!end) {
      const message = `Job ${f.handle} failed (${failed.reason}: ${failed.message}) and its pod is gone`;
      return fail({ kind: "system", reason: "lost", message }, pod);
    }
    if (end.reason === "OOMKilled") {
      const limit = pod?.spec?.containers.find((c) => c.name === CONTAINERS.task)?.resources?.limits
        ?.memory;
      const message = `OOMKilled: the task ran out of memory${limit ? ` (limit ${limit})` : ""} and was killed (exit code ${end.exitCode})`;
      return fail({ kind: "user", reason: "oom", message, exitCode: end.exitCode }, pod, {
        quoteLog: true,
      });
    }
    if (end.exitCode !== 0) {
      const why =
        end.reason && end.reason !== "Error"
          ? ` (${end.reason}${end.message ? `: ${end.message.trim()}` : ""})`
          : "";
      return fail(
        {
          kind: "user",
          reason: "exit",
          message: `exited with code ${end.exitCode}${why}`,
          exitCode: end.exitCode,
        },
        pod,
        { quoteLog: true },
      );
    }
    const message = `Job ${f.handle} failed (${failed.reason}: ${failed.message}) though its task exited 0`;
    return fail({ kind: "system", reason: "lost", message }, pod);
  }

  // Still running, or pending: pending too long is a system failure. When every pod has ended
  // but the Job has no verdict yet, the Job controller is about to give one (or a new pod).
  const live = f.pods.filter((p) => !p.deleted && !isFinished(p.pod)).map((p) => p.pod);
  if (live.length === 0 && f.pods.length > 0) return { done: false, recheckAt: null };
  if (live.length === 0 || live.every((p) => !started(p))) {
    const since =
      live.length > 0
        ? Math.max(...live.map((p) => time(p.metadata?.creationTimestamp)))
        : time(job.metadata?.creationTimestamp);
    const deadline = since + f.pendingTimeoutMs;
    if (f.now >= deadline) {
      const pod = live[live.length - 1] ?? null;
      const seconds = Math.round(f.pendingTimeoutMs / 1000);
      const what = pod
        ? `pod ${pod.metadata?.name} pending for more than ${seconds}s: ${pendingReason(pod)}`
        : `no pod was created for Job ${f.handle} within ${seconds}s (a ResourceQuota or an admission webhook may refuse it)`;
      return fail({ kind: "system", reason: "pending", message: what }, pod, { deleteJob: true });
    }
    return { done: false, recheckAt: deadline };
  }
  return { done: false, recheckAt: null };
}

function condition(job: V1Job, type: string): V1JobCondition | undefined {
  return job.status?.conditions?.find((c) => c.type === type && c.status === "True");
}

function podCondition(pod: V1Pod, type: string): V1PodCondition | undefined {
  return pod.status?.conditions?.find((c) => c.type === type);
}

function taskStatus(pod: V1Pod): V1ContainerStatus | undefined {
  return pod.status?.containerStatuses?.find((s) => s.name === CONTAINERS.task);
}

function terminated(pod: V1Pod) {
  return taskStatus(pod)?.state?.terminated;
}

function isFinished(pod: V1Pod): boolean {
  return pod.status?.phase === "Succeeded" || pod.status?.phase === "Failed";
}

/** Whether the task's container ever ran. */
function started(pod: V1Pod): boolean {
  const state = taskStatus(pod)?.state;
  return Boolean(state?.running || state?.terminated);
}

const DISRUPTIONS: Record<string, string> = {
  TerminationByKubelet: "evicted",
  EvictionByEvictionAPI: "evicted",
  PreemptionByScheduler: "preempted",
  PreemptionByKubeScheduler: "preempted",
  DeletionByTaintManager: "node-lost",
  DeletionByPodGC: "node-lost",
};

function disruptionOf(pod: V1Pod): NodeError | null {
  const c = podCondition(pod, "DisruptionTarget");
  const name = pod.metadata?.name;
  if (c?.status === "True") {
    const reason = DISRUPTIONS[c.reason ?? ""] ?? "disrupted";
    return {
      kind: "system",
      reason,
      message: `pod ${name}: DisruptionTarget: ${c.reason}${c.message ? `: ${c.message}` : ""}`,
    };
  }
  // Clusters before DisruptionTarget: an evicted pod says so in its status.
  if (pod.status?.reason === "Evicted") {
    return {
      kind: "system",
      reason: "evicted",
      message: `pod ${name}: Evicted: ${pod.status.message ?? ""}`,
    };
  }
  return null;
}

// The kubelet's emptyDirMessageFmt (pkg/kubelet/eviction/helpers.go): "Usage of EmptyDir volume
// %q exceeds the limit %q. ".
const EMPTY_DIR_EVICTION = /^Usage of EmptyDir volume "([^"]*)" exceeds the limit "([^"]*)"\.\s*$/;

/**
 * An eviction for an emptyDir over its sizeLimit: the task wrote more than its `resources.disk`,
 * which a retry on another node does not change. The eviction manager sets no DisruptionTarget
 * for it, so the pod counts against the Job's backoffLimit of 0 and the Job fails by itself: no
 * replacement pod, nothing to delete. Other evictions (node pressure) are the node's, not the
 * task's, and stay system failures.
 */
function diskEviction(pod: V1Pod): NodeError | null {
  if (pod.status?.reason !== "Evicted") return null;
  const m = EMPTY_DIR_EVICTION.exec(pod.status.message ?? "");
  if (!m) return null;
  const [, volume, limit] = m;
  const mount = pod.spec?.containers
    .find((c) => c.name === CONTAINERS.task)
    ?.volumeMounts?.find((v) => v.name === volume)?.mountPath;
  const under = mount ? ` (what the code and the task put under ${mount})` : "";
  return {
    kind: "user",
    reason: "disk",
    message: `evicted: the emptyDir volume "${volume}"${under} exceeded its limit of ${limit}, the task's resources.disk; raise resources.disk, or write less there`,
  };
}

/** What keeps a pod pending: unschedulable, an image that does not pull, a missing Secret... */
function pendingReason(pod: V1Pod): string {
  const scheduled = podCondition(pod, "PodScheduled");
  if (scheduled?.status === "False")
    return `${scheduled.reason ?? "Unschedulable"}: ${scheduled.message ?? ""}`.trim();
  const statuses = [
    ...(pod.status?.initContainerStatuses ?? []),
    ...(pod.status?.containerStatuses ?? []),
  ];
  for (const s of statuses) {
    const w = s.state?.waiting;
    if (w && w.reason !== "PodInitializing")
      return `${s.name}: ${w.reason}${w.message ? `: ${w.message}` : ""}`;
  }
  return `phase ${pod.status?.phase ?? "Pending"}`;
}

/** Timestamps are Date objects from a list (deserialized) and strings from a watch event. */
export function time(t: Date | string | undefined): number {
  if (t === undefined) return 0;
  return typeof t === "string" ? Date.parse(t) : t.getTime();
}
