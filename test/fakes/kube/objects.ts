/**
 * The shapes the fake kube-apiserver stores: plain JSON objects as they travel on the wire, typed
 * only as far as the fake reads them. The executor's side uses @kubernetes/client-node's models.
 */

export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller?: boolean;
  blockOwnerDeletion?: boolean;
}

export interface Meta {
  name: string;
  namespace: string;
  uid: string;
  resourceVersion: string;
  creationTimestamp: string;
  generateName?: string;
  deletionTimestamp?: string;
  deletionGracePeriodSeconds?: number;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  ownerReferences?: OwnerReference[];
  finalizers?: string[];
}

/** Any stored object; `spec`, `status` and `data` are read through the helpers below. */
export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: Meta;
  // biome-ignore lint/suspicious/noExplicitAny: wire JSON; each reader narrows what it uses
  spec?: any;
  // biome-ignore lint/suspicious/noExplicitAny: wire JSON; each reader narrows what it uses
  status?: any;
  data?: Record<string, string>;
  stringData?: Record<string, string>;
  type?: string;
}

/** The four resources the executor uses, with what the REST paths and Status bodies call them. */
export interface Resource {
  plural: "jobs" | "pods" | "configmaps" | "secrets";
  group: "" | "batch";
  kind: string;
  apiVersion: string;
}

export const RESOURCES: Record<Resource["plural"], Resource> = {
  jobs: { plural: "jobs", group: "batch", kind: "Job", apiVersion: "batch/v1" },
  pods: { plural: "pods", group: "", kind: "Pod", apiVersion: "v1" },
  configmaps: { plural: "configmaps", group: "", kind: "ConfigMap", apiVersion: "v1" },
  secrets: { plural: "secrets", group: "", kind: "Secret", apiVersion: "v1" },
};

export function qualified(r: Resource): string {
  return r.group === "" ? r.plural : `${r.plural}.${r.group}`;
}

/** A metav1.Status body, as the apiserver sends with every error and in watch ERROR events. */
export function status(code: number, reason: string, message: string, details?: object) {
  return {
    kind: "Status",
    apiVersion: "v1",
    metadata: {},
    status: code < 400 ? "Success" : "Failure",
    message,
    reason,
    ...(details ? { details } : {}),
    code,
  };
}

export function clone<T>(value: T): T {
  return structuredClone(value);
}

type Requirement =
  | { op: "=" | "!="; key: string; value: string }
  | { op: "exists" | "!exists"; key: string };

/**
 * Equality-based label selectors (`a=b`, `a==b`, `a!=b`, `a`, `!a`, comma-separated): what the
 * executor sends. Set-based ones (`in`, `notin`) are refused, so a client using them notices.
 */
export function parseSelector(selector: string): Requirement[] | Error {
  const out: Requirement[] = [];
  for (const raw of selector.split(",")) {
    const part = raw.trim();
    if (part === "") continue;
    if (/\s(in|notin)\s/.test(part)) return new Error(`set-based selector "${part}" unsupported`);
    const m = /^([^!=]+?)\s*(==|=|!=)\s*(.*)$/.exec(part);
    if (m) {
      out.push({ op: m[2] === "!=" ? "!=" : "=", key: m[1] as string, value: m[3] as string });
    } else if (part.startsWith("!")) out.push({ op: "!exists", key: part.slice(1) });
    else out.push({ op: "exists", key: part });
  }
  return out;
}

export function matches(labels: Record<string, string> | undefined, reqs: Requirement[]): boolean {
  const l = labels ?? {};
  return reqs.every((r) => {
    if (r.op === "=") return l[r.key] === r.value;
    if (r.op === "!=") return l[r.key] !== r.value;
    return r.op === "exists" ? r.key in l : !(r.key in l);
  });
}

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

/** The checks the real apiserver makes that a client could get wrong; each returns a cause. */
export function validate(resource: Resource, obj: KubeObject): string[] {
  const problems: string[] = [];
  const name = obj.metadata.name;
  // A Job's name becomes the job-name label of its pods, so it must be a DNS-1123 label.
  const nameOk =
    resource.plural === "jobs"
      ? DNS1123_LABEL.test(name) && name.length <= 63
      : DNS1123_SUBDOMAIN.test(name) && name.length <= 253;
  if (!nameOk) problems.push(`metadata.name: Invalid value: "${name}"`);
  for (const [k, v] of Object.entries(obj.metadata.labels ?? {})) {
    if (typeof v !== "string" || v.length > 63 || !LABEL_VALUE.test(v)) {
      problems.push(`metadata.labels: Invalid value: "${String(v)}" (label ${k})`);
    }
  }
  if (resource.plural === "configmaps" || resource.plural === "secrets") {
    const size =
      JSON.stringify(obj.data ?? {}).length + JSON.stringify(obj.stringData ?? {}).length;
    // etcd's request limit; the apiserver refuses a ConfigMap or Secret over 1 MiB.
    if (size > 1024 * 1024) problems.push("data: Too long: must have at most 1048576 bytes");
  }
  if (resource.plural === "jobs") {
    const tpl = obj.spec?.template;
    const restart = tpl?.spec?.restartPolicy;
    if (restart !== "Never" && restart !== "OnFailure") {
      problems.push(
        `spec.template.spec.restartPolicy: Required value: valid values: "OnFailure", "Never"`,
      );
    }
    if (obj.spec?.podFailurePolicy && restart !== "Never") {
      problems.push(
        "spec.podFailurePolicy: Invalid value: only allowed when restartPolicy is Never",
      );
    }
    if (!Array.isArray(tpl?.spec?.containers) || tpl.spec.containers.length === 0) {
      problems.push("spec.template.spec.containers: Required value");
    } else problems.push(...validateMounts(tpl.spec, "spec.template.spec"));
  }
  if (resource.plural === "pods" && Array.isArray(obj.spec?.containers)) {
    problems.push(...validateMounts(obj.spec, "spec"));
  }
  return problems;
}

interface MountSpec {
  name: string;
  mountPath?: string;
  subPath?: string;
  subPathExpr?: string;
}

/**
 * The apiserver's validateVolumeMounts, as far as a client could get it wrong: a mount names a
 * volume of the pod, and its `subPath` (or `subPathExpr`) stays inside it (validateLocalDescendingPath).
 */
function validateMounts(
  spec: { containers: unknown[]; initContainers?: unknown[]; volumes?: Array<{ name: string }> },
  at: string,
): string[] {
  const problems: string[] = [];
  const volumes = new Set((spec.volumes ?? []).map((v) => v.name));
  const lists = [
    ["initContainers", spec.initContainers ?? []],
    ["containers", spec.containers],
  ] as const;
  for (const [list, containers] of lists) {
    containers.forEach((c, i) => {
      const mounts = ((c as { volumeMounts?: MountSpec[] }).volumeMounts ?? []) as MountSpec[];
      mounts.forEach((m, j) => {
        const field = `${at}.${list}[${i}].volumeMounts[${j}]`;
        if (!volumes.has(m.name))
          problems.push(`${field}.name: Not found: ${JSON.stringify(m.name)}`);
        if (!m.mountPath) problems.push(`${field}.mountPath: Required value`);
        if (m.subPath) problems.push(...descendingPath(m.subPath, `${field}.subPath`));
        if (m.subPathExpr) {
          if (m.subPath) {
            problems.push(
              `${field}.subPathExpr: Invalid value: ${JSON.stringify(m.subPathExpr)}: subPathExpr and subPath are mutually exclusive`,
            );
          }
          problems.push(...descendingPath(m.subPathExpr, `${field}.subPathExpr`));
        }
      });
    });
  }
  return problems;
}

/** validateLocalDescendingPath: relative, and no `..` element. */
export function descendingPath(path: string, field: string): string[] {
  const problems: string[] = [];
  const value = JSON.stringify(path);
  if (path.startsWith("/"))
    problems.push(`${field}: Invalid value: ${value}: must be a relative path`);
  if (path.split("/").includes("..")) {
    problems.push(`${field}: Invalid value: ${value}: must not contain '..'`);
  }
  return problems;
}
