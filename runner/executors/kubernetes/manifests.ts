/**
 * The Kubernetes objects of one attempt (docs/design.md sections 3 and 7), built from its launch spec:
 * pure data, so what a cluster receives is tested without one.
 *
 * - a batch/v1 Job named by the attempt's handle: one pod, `backoffLimit: 0` (the engine owns
 *   retries), `activeDeadlineSeconds` from the task's timeout, `ttlSecondsAfterFinished`, a
 *   podFailurePolicy that ignores `DisruptionTarget`; its pod's `workspace` emptyDir (the code and
 *   what the task writes) has the task's `resources.disk` as its `sizeLimit`;
 * - a ConfigMap with the inputs, mounted where $REPRISE_INPUTS points;
 * - a Secret, only when there is something secret: the credentials the init container fetches
 *   the code with, and the task's secret values.
 * The ConfigMap and the Secret are owned by the Job, so deleting the Job deletes them.
 */
import { createHash } from "node:crypto";
import { posix } from "node:path";
import type {
  V1ConfigMap,
  V1EnvVar,
  V1Job,
  V1OwnerReference,
  V1ResourceRequirements,
  V1Secret,
  V1Volume,
} from "@kubernetes/client-node";
import { inputEnvName } from "../../../core/spec/names.js";
import type { LaunchSpec } from "../types.js";
import type { CodeLocation } from "./code-source.js";

export const MANAGED_BY = "app.kubernetes.io/managed-by";
export const MANAGER = "reprise";
export const LABELS = {
  handle: "reprise.dev/attempt-name",
  repository: "reprise.dev/repository",
  execution: "reprise.dev/execution",
  node: "reprise.dev/node",
  attempt: "reprise.dev/attempt",
  task: "reprise.dev/task",
  taskDigest: "reprise.dev/task-digest",
  cacheKey: "reprise.dev/cache-key",
} as const;
export const ANNOTATIONS = {
  repository: "reprise.dev/repository",
  sha: "reprise.dev/git-sha",
  taskDigest: "reprise.dev/task-digest",
  cacheKey: "reprise.dev/cache-key",
} as const;

/** Where things are inside the task's container. */
export const PATHS = {
  workspace: "/workspace",
  inputsDir: "/reprise/inputs",
  inputs: "/reprise/inputs/inputs.json",
  /** The termination message file: what the task writes there becomes its outputs. */
  outputs: "/reprise/outputs.json",
  credentials: "/reprise/credentials",
} as const;

export const CONTAINERS = { fetch: "fetch-code", task: "task" } as const;
const SECRET_ENV_PREFIX = "env.";
const TOKEN_KEY = "fetch-token";

/**
 * Fetches the code at the SHA into the workspace: the tarball of the commit (a GitHub tarball has
 * one top-level directory, hence --strip-components=1), with the token when there is one.
 */
export const FETCH_SCRIPT = `set -eu
if [ -f ${PATHS.credentials}/token ]; then
  curl -fsSL --retry 3 -H "Authorization: Bearer $(cat ${PATHS.credentials}/token)" -o /tmp/code.tar.gz "$REPRISE_SOURCE_URL"
else
  curl -fsSL --retry 3 -o /tmp/code.tar.gz "$REPRISE_SOURCE_URL"
fi
tar -xzf /tmp/code.tar.gz --strip-components=1 -C ${PATHS.workspace}
rm -f /tmp/code.tar.gz
`;

export interface ManifestOptions {
  namespace: string;
  /** Image of the init container that runs FETCH_SCRIPT (needs sh, curl, tar). */
  fetchImage: string;
  /** Kept after the Job finishes, so a runner that was down can still collect the outcome. */
  ttlSecondsAfterFinished: number;
  /** The default for tasks that declare no resources of their own. */
  resources?: { cpu?: string; memory?: string };
  /** Pods run as this service account; none by default (no API token in the pod). */
  serviceAccountName?: string;
  terminationGracePeriodSeconds: number;
}

export interface AttemptObjects {
  job: V1Job;
  configMap: V1ConfigMap;
  /** Null when the attempt has nothing secret. */
  secret: V1Secret | null;
}

/**
 * The Job is created first (the ConfigMap and the Secret name it as their owner, which takes its
 * uid); `owned` stamps that owner on them once the Job exists.
 */
export function attemptObjects(
  spec: LaunchSpec,
  code: CodeLocation,
  o: ManifestOptions,
): AttemptObjects {
  const labels = attemptLabels(spec);
  const annotations = {
    [ANNOTATIONS.repository]: spec.repo,
    [ANNOTATIONS.sha]: spec.sha,
    [ANNOTATIONS.taskDigest]: spec.taskDigest,
    ...(spec.cacheKey ? { [ANNOTATIONS.cacheKey]: spec.cacheKey } : {}),
  };
  const meta = { name: spec.handle, namespace: o.namespace, labels, annotations };
  const secretData: Record<string, string> = {};
  if (code.token) secretData[TOKEN_KEY] = code.token;
  for (const [name, value] of Object.entries(spec.secrets))
    secretData[SECRET_ENV_PREFIX + name] = value;
  const hasSecret = Object.keys(secretData).length > 0;

  // The attempt's data lives in the workspace emptyDir (the code, and whatever the task writes
  // under it): `resources.disk` is its sizeLimit, enforced by the kubelet's eviction manager
  // (classify.ts reports that eviction as a user failure `disk`). No ephemeral-storage request or
  // limit: the sizeLimit needs none to be enforced (see the README).
  const disk = spec.resources?.disk ?? null;
  const volumes: V1Volume[] = [
    { name: "workspace", emptyDir: disk ? { sizeLimit: disk } : {} },
    { name: "inputs", configMap: { name: spec.handle } },
  ];
  if (code.token) {
    volumes.push({
      name: "credentials",
      secret: { secretName: spec.handle, items: [{ key: TOKEN_KEY, path: "token" }] },
    });
  }
  // The task's own resources, else the executor's default. Memory is limited as requested (a
  // task over it is OOMKilled); CPU is not, so it may burst.
  const wanted = {
    cpu: spec.resources?.cpu ?? o.resources?.cpu,
    memory: spec.resources?.memory ?? o.resources?.memory,
  };
  const resources: V1ResourceRequirements | undefined =
    wanted.cpu || wanted.memory
      ? {
          requests: Object.fromEntries(
            Object.entries(wanted).filter(([, v]) => v !== undefined && v !== null),
          ) as Record<string, string>,
          limits: wanted.memory ? { memory: wanted.memory } : {},
        }
      : undefined;

  const job: V1Job = {
    apiVersion: "batch/v1",
    kind: "Job",
    metadata: meta,
    spec: {
      backoffLimit: 0,
      activeDeadlineSeconds: spec.timeoutSeconds,
      ttlSecondsAfterFinished: o.ttlSecondsAfterFinished,
      // A disrupted pod (eviction, preemption, node loss) is no failure of the task's: it does not
      // count against backoffLimit. The executor reports it to the engine as a system failure.
      podFailurePolicy: {
        rules: [
          { action: "Ignore", onPodConditions: [{ type: "DisruptionTarget", status: "True" }] },
        ],
      },
      template: {
        metadata: { labels, annotations },
        spec: {
          restartPolicy: "Never",
          automountServiceAccountToken: false,
          enableServiceLinks: false,
          terminationGracePeriodSeconds: o.terminationGracePeriodSeconds,
          ...(o.serviceAccountName ? { serviceAccountName: o.serviceAccountName } : {}),
          initContainers: [
            {
              name: CONTAINERS.fetch,
              image: o.fetchImage,
              command: ["sh", "-c", FETCH_SCRIPT],
              env: [
                { name: "REPRISE_SOURCE_URL", value: code.url },
                { name: "REPRISE_GIT_SHA", value: spec.sha },
              ],
              volumeMounts: [
                { name: "workspace", mountPath: PATHS.workspace },
                ...(code.token
                  ? [{ name: "credentials", mountPath: PATHS.credentials, readOnly: true }]
                  : []),
              ],
              resources: { requests: { cpu: "50m", memory: "64Mi" }, limits: { memory: "256Mi" } },
              // The script writes no termination message: on a failure the kubelet takes the log's
              // tail instead, so the attempt's error carries curl's or tar's own words.
              terminationMessagePolicy: "FallbackToLogsOnError",
            },
          ],
          containers: [
            {
              name: CONTAINERS.task,
              image: spec.image,
              command: spec.command,
              workingDir: workingDir(spec.workdir),
              env: taskEnv(spec),
              volumeMounts: [
                { name: "workspace", mountPath: PATHS.workspace },
                { name: "inputs", mountPath: PATHS.inputsDir, readOnly: true },
              ],
              terminationMessagePath: PATHS.outputs,
              terminationMessagePolicy: "File",
              ...(resources ? { resources } : {}),
            },
          ],
          volumes,
        },
      },
    },
  };
  const configMap: V1ConfigMap = {
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: { ...meta },
    data: { "inputs.json": JSON.stringify(spec.inputs) },
  };
  const secret: V1Secret | null = hasSecret
    ? {
        apiVersion: "v1",
        kind: "Secret",
        type: "Opaque",
        metadata: { ...meta },
        stringData: secretData,
      }
    : null;
  return { job, configMap, secret };
}

/** A copy of `obj` owned by the Job: the garbage collector deletes it with the Job. */
export function owned<T extends V1ConfigMap | V1Secret>(obj: T, job: V1Job): T {
  const owner: V1OwnerReference = {
    apiVersion: "batch/v1",
    kind: "Job",
    name: job.metadata?.name ?? "",
    uid: job.metadata?.uid ?? "",
    blockOwnerDeletion: false,
    controller: false,
  };
  return { ...obj, metadata: { ...obj.metadata, ownerReferences: [owner] } };
}

export function attemptLabels(spec: LaunchSpec): Record<string, string> {
  return {
    [MANAGED_BY]: MANAGER,
    [LABELS.handle]: spec.handle,
    [LABELS.repository]: labelValue(spec.repo),
    [LABELS.execution]: labelValue(spec.executionId),
    [LABELS.node]: labelValue(spec.nodeId),
    [LABELS.attempt]: String(spec.attempt),
    [LABELS.task]: labelValue(spec.taskName),
    // 63 of the 64 hex digits: a label value holds no more; the annotation has the whole digest.
    [LABELS.taskDigest]: spec.taskDigest.replace(/^sha256:/, "").slice(0, 63),
    ...(spec.cacheKey
      ? { [LABELS.cacheKey]: spec.cacheKey.replace(/^sha256:/, "").slice(0, 63) }
      : {}),
  };
}

/** Whether an existing Job is this attempt's (409 on create): its identifying labels match. */
export function sameAttempt(existing: V1Job, spec: LaunchSpec): string | null {
  const want = attemptLabels(spec);
  const have = existing.metadata?.labels ?? {};
  const differ = [
    MANAGED_BY,
    LABELS.handle,
    LABELS.execution,
    LABELS.node,
    LABELS.attempt,
    LABELS.taskDigest,
  ]
    .filter((k) => have[k] !== want[k])
    .map((k) => `${k}=${JSON.stringify(have[k] ?? null)} (expected ${JSON.stringify(want[k])})`);
  return differ.length === 0 ? null : differ.join(", ");
}

/**
 * A label value: at most 63 characters of [A-Za-z0-9._-], alphanumeric at both ends. A value that
 * does not fit (a repository URL) keeps a readable prefix and gets a hash of the whole.
 */
export function labelValue(value: string): string {
  if (/^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/.test(value) && value.length <= 63)
    return value;
  const hash = createHash("sha256").update(value).digest("hex").slice(0, 10);
  const readable = value
    .replace(/^[a-z]+:\/\//, "")
    .replace(/[^A-Za-z0-9._-]+/g, "-")
    .slice(-(63 - hash.length - 1))
    .replace(/^[^A-Za-z0-9]+/, "");
  return readable ? `${readable}-${hash}` : hash;
}

function workingDir(workdir: string): string {
  const normal = posix.normalize(`/${workdir}`);
  return normal === "/" ? PATHS.workspace : posix.join(PATHS.workspace, normal);
}

/**
 * The task's environment (docs/design.md section 3), layered as for every executor: task env, then
 * secrets, then inputs, then the REPRISE_* contract, which nothing overrides. What the image sets
 * (PATH, HOME...) is the base, as the container runtime does.
 */
function taskEnv(spec: LaunchSpec): V1EnvVar[] {
  const env = new Map<string, V1EnvVar>();
  for (const [name, value] of Object.entries(spec.env)) env.set(name, { name, value });
  for (const name of Object.keys(spec.secrets)) {
    env.set(name, {
      name,
      valueFrom: { secretKeyRef: { name: spec.handle, key: SECRET_ENV_PREFIX + name } },
    });
  }
  // The task's named Secrets: resolved by the kubelet, never seen by Reprise.
  for (const ref of spec.secretRefs ?? [])
    env.set(ref.env, {
      name: ref.env,
      valueFrom: { secretKeyRef: { name: ref.secret, key: ref.key } },
    });
  for (const [name, value] of Object.entries(spec.inputs)) {
    const env_ = inputEnvName(name);
    env.set(env_, { name: env_, value: typeof value === "string" ? value : JSON.stringify(value) });
  }
  const contract: Record<string, string> = {
    REPRISE_INPUTS: PATHS.inputs,
    REPRISE_OUTPUTS: PATHS.outputs,
    REPRISE_EXECUTION_ID: spec.executionId,
    REPRISE_NODE_ID: spec.nodeId,
    REPRISE_ATTEMPT: String(spec.attempt),
    REPRISE_GIT_SHA: spec.sha,
    REPRISE_TASK_DIGEST: spec.taskDigest,
  };
  for (const [name, value] of Object.entries(contract)) env.set(name, { name, value });
  return [...env.values()];
}
