/**
 * The simulated kubelet of the fake cluster (one node, "fake-node-1"). It binds every pod it is
 * given, waits for the ConfigMaps and Secrets the pod mounts or references, then runs the pod's
 * containers as Kubernetes does: the init containers one after the other, each to exit 0 before
 * the next, then the regular containers together, each one's end reported as it comes (a
 * sidecar may outlive the task). Each container runs under bubblewrap (container.ts) in a
 * filesystem of its own: the machine's files read-only in place of the image, its own /tmp and
 * HOME, the pod's volumes (or a `subPath` inside one) bound where its `volumeMounts` say. Its stdout
 * and stderr go into one log; its end is reported as the real kubelet reports it: exit code,
 * reason, and the last 4,096 bytes of the file bound at `terminationMessagePath`.
 *
 * Images are not pulled: the command runs with this machine's PATH; `images` says what an
 * image's entrypoint is here, for containers that give no `command`.
 *
 * Faults: `faults(pod)` may give a pod one at admission (unschedulable, image pull failure, a slow
 * pending, OOMKilled); `disrupt()` evicts, preempts, or loses the node under a running pod. An
 * emptyDir over its `sizeLimit` gets the pod evicted, as the eviction manager does.
 */
import { type ChildProcess, spawn } from "node:child_process";
import {
  chmodSync,
  closeSync,
  lstatSync,
  mkdirSync,
  openSync,
  readFileSync,
  realpathSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { open } from "node:fs/promises";
import { constants } from "node:os";
import { dirname, isAbsolute, join, relative } from "node:path";
import { type Bind, BWRAP, containerArgs, findExecutable } from "./container.js";
import { diskUsage, parseQuantity } from "./disk.js";
import type { KubeObject } from "./objects.js";
import type { ObjectStore } from "./store.js";

export type Fault =
  | { kind: "unschedulable" }
  | { kind: "image-pull" }
  | { kind: "slow-pending"; ms: number }
  | { kind: "oom"; afterMs?: number }
  /** An eviction, preemption or node loss once the container has run for `afterMs`. */
  | { kind: "disrupt"; disruption: Disruption; afterMs?: number };

export type Disruption = "evict" | "preempt" | "node-loss";

export interface ContainerSpec {
  name: string;
  image: string;
  command?: string[];
  args?: string[];
  workingDir?: string;
  env?: EnvVar[];
  volumeMounts?: VolumeMount[];
  terminationMessagePath?: string;
  terminationMessagePolicy?: string;
}

export interface VolumeMount {
  name: string;
  mountPath: string;
  readOnly?: boolean;
  /** A path inside the volume, bound instead of the whole volume. */
  subPath?: string;
  /** The same, with `$(VAR)` expanded from the container's environment. */
  subPathExpr?: string;
}

interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: {
    secretKeyRef?: { name: string; key: string; optional?: boolean };
    configMapKeyRef?: { name: string; key: string; optional?: boolean };
    fieldRef?: { fieldPath: string };
  };
}

/** How an image runs here: its ENTRYPOINT and CMD, and what its ENV adds. */
export interface ImageConfig {
  command: string[];
  args?: string[];
  env?: Record<string, string>;
}

/** A directory of this machine every container sees at the same path (KubeletOptions.hostPaths). */
export type HostPath = string | { path: string; readOnly?: boolean };

/** What the fake's owner adds to a container before it starts (see KubeletOptions.prepare). */
export interface Preparation {
  /** Replaces these variables of the container's environment. */
  env?: Record<string, string>;
  binds?: Bind[];
}

export interface KubeletOptions {
  /** A directory the kubelet owns: pod directories, logs, volumes. */
  root: string;
  /** The images' own environment, under the container's (PATH and the like). */
  imageEnv: Record<string, string>;
  /** Entrypoints of images, for containers without a `command`. */
  images?: Record<string, ImageConfig>;
  /**
   * Stands in for what a container would reach outside the cluster (a code host): given the
   * container and its environment, what to change in it, e.g. a `file://` URL to a bound file.
   */
  prepare?(container: ContainerSpec, env: Record<string, string>): Promise<Preparation>;
  /**
   * Directories of this machine bound at the same path in every container: read-write, or
   * read-only for `{ path, readOnly: true }`.
   */
  hostPaths?: readonly HostPath[];
  /** Containers share this machine's pid namespace (as `hostPID: true` would). */
  hostPid?: boolean;
  /** A fault for a new pod, or nothing. */
  faults?: (pod: KubeObject) => Fault | undefined;
  /** Caps terminationGracePeriodSeconds, to keep tests quick. */
  maxGraceSeconds?: number;
  /** How often emptyDir use is compared with `sizeLimit` (default 200 ms). */
  sizeCheckMs?: number;
  /**
   * Containers end at once with exit 0 and no process (benchmarks of the API side, where 500
   * processes on two cores would only measure the machine).
   */
  instant?: boolean;
}

/** The kubelet reads at most this much of a termination message file (its last bytes). */
const MAX_TERMINATION_MESSAGE = 4_096;
/** FallbackToLogsOnError: the kubelet's cap on the log tail it uses (80 lines, 2,048 bytes). */
const FALLBACK_LOG_LINES = 80;
const FALLBACK_LOG_BYTES = 2_048;
const NODE = "fake-node-1";
const DEFAULT_TERMINATION_PATH = "/dev/termination-log";

interface Proc {
  child: ChildProcess;
  /** The host pid of the container's session (its process group), once bwrap has said it. */
  group: Promise<number | undefined>;
}

interface PodRun {
  namespace: string;
  name: string;
  uid: string;
  dir: string;
  /** Running containers, by name. */
  procs: Map<string, Proc>;
  cancelled: boolean;
  deleting: boolean;
  disruption?: Disruption;
  oom: boolean;
  /** Why the eviction manager evicted the pod (the pod's status message). */
  evicted?: string;
  killTimer?: NodeJS.Timeout;
  sizeTimer?: NodeJS.Timeout;
  wake?: () => void;
  /** Containers that cannot start (CreateContainerConfigError), waiting for the pod's end. */
  stuck: Set<() => void>;
}

/** A pod's volumes on this machine. */
type Volumes = Record<string, { dir: string; readOnly: boolean }>;

interface Ended {
  name: string;
  image: string;
  exitCode: number;
  reason: string;
  message?: string;
  startedAt: string;
  finishedAt: string;
}

type StatusList = "initContainerStatuses" | "containerStatuses";

export class Kubelet {
  readonly #runs = new Map<string, PodRun>();
  /** Pods waiting for a ConfigMap or Secret, by `namespace/resource/name`. */
  readonly #waiting = new Map<string, Set<PodRun>>();
  #closed = false;
  faults: ((pod: KubeObject) => Fault | undefined) | undefined;

  constructor(
    private readonly store: ObjectStore,
    private readonly options: KubeletOptions,
  ) {
    this.faults = options.faults;
    // A pod waiting for a ConfigMap or Secret looks again when one appears.
    store.subscribe((e) => {
      if (e.resource !== "configmaps" && e.resource !== "secrets") return;
      const missing = `${e.namespace}/${e.resource}/${e.object.metadata.name}`;
      for (const run of this.#waiting.get(missing) ?? []) run.wake?.();
    });
  }

  /** Pods with a container process still running (for tests that look for leaks). */
  get running(): string[] {
    return [...this.#runs.values()].filter((r) => r.procs.size > 0).map((r) => r.name);
  }

  /** The pod's directory on this machine: `containers/NAME/{tmp,home}`, `volumes/NAME`, `logs`. */
  podDir(pod: KubeObject): string {
    return join(this.options.root, "pods", pod.metadata.uid);
  }

  admit(pod: KubeObject): void {
    const run: PodRun = {
      namespace: pod.metadata.namespace,
      name: pod.metadata.name,
      uid: pod.metadata.uid,
      dir: this.podDir(pod),
      procs: new Map(),
      cancelled: false,
      deleting: false,
      oom: false,
      stuck: new Set(),
    };
    this.#runs.set(key(run.namespace, run.name), run);
    this.#run(run, this.faults?.(pod))
      .catch((e: unknown) => {
        if (!this.#closed) console.error(`fake kubelet: pod ${run.name}: ${(e as Error).stack}`);
      })
      .finally(() => {
        if (run.sizeTimer) clearInterval(run.sizeTimer);
      });
  }

  /** A graceful delete: SIGTERM, SIGKILL after the grace period, then the object goes. */
  deletePod(namespace: string, name: string): void {
    const run = this.#runs.get(key(namespace, name));
    const pod = this.store.get("pods", namespace, name);
    if (!pod) return;
    if (!run || run.procs.size === 0) {
      if (run) {
        this.#cancel(run);
        this.#runs.delete(key(namespace, name));
      }
      this.store.remove("pods", namespace, name);
      return;
    }
    if (run.deleting) return;
    run.deleting = true;
    const grace = Math.min(
      pod.spec.terminationGracePeriodSeconds ?? 30,
      this.options.maxGraceSeconds ?? Number.POSITIVE_INFINITY,
    );
    this.store.update("pods", namespace, name, (p) => {
      p.metadata.deletionTimestamp = new Date(Date.now() + grace * 1000).toISOString();
      p.metadata.deletionGracePeriodSeconds = grace;
    });
    this.#signal(run, "SIGTERM");
    this.#unstick(run);
    run.killTimer = setTimeout(() => this.#signal(run, "SIGKILL"), grace * 1000);
  }

  /** Disrupts the pod as an eviction, a preemption or the loss of its node would. */
  disrupt(namespace: string, name: string, kind: Disruption): void {
    const run = this.#runs.get(key(namespace, name));
    if (!run) throw new Error(`fake kubelet: no pod ${namespace}/${name}`);
    run.disruption = kind;
    if (kind === "preempt") {
      this.#setStatus(run, (s) => {
        s.conditions = [
          ...(s.conditions ?? []),
          condition(
            "DisruptionTarget",
            "True",
            "PreemptionByScheduler",
            `${NODE}: preempting to accommodate a higher priority pod`,
          ),
        ];
      });
      this.deletePod(namespace, name);
      return;
    }
    if (run.procs.size > 0) {
      this.#signal(run, "SIGKILL");
      this.#unstick(run);
      return;
    }
    this.#cancel(run);
    this.#finishDisrupted(run, []);
  }

  /** The container's log so far, or null when it has not started. */
  log(pod: KubeObject, container: string): string | null {
    try {
      return readFileSync(join(this.podDir(pod), "logs", `${container}.log`), "utf8");
    } catch {
      return null;
    }
  }

  close(): void {
    this.#closed = true;
    for (const run of this.#runs.values()) {
      this.#cancel(run);
      this.#signal(run, "SIGKILL");
      if (run.killTimer) clearTimeout(run.killTimer);
      if (run.sizeTimer) clearInterval(run.sizeTimer);
    }
  }

  async #run(run: PodRun, fault: Fault | undefined): Promise<void> {
    const pod = this.store.get("pods", run.namespace, run.name);
    if (!pod) return;
    if (fault?.kind === "unschedulable") {
      this.#setStatus(run, (s) => {
        s.phase = "Pending";
        s.conditions = [
          condition(
            "PodScheduled",
            "False",
            "Unschedulable",
            "0/1 nodes are available: 1 Insufficient memory. preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod.",
          ),
        ];
      });
      return;
    }
    const spec = pod.spec as PodSpec;
    const main = spec.containers[0] as ContainerSpec;
    const inits = spec.initContainers ?? [];
    this.store.update("pods", run.namespace, run.name, (p) => {
      p.spec.nodeName = NODE;
      p.status = {
        phase: "Pending",
        hostIP: "10.0.0.1",
        startTime: new Date().toISOString(),
        conditions: [
          condition("PodScheduled", "True"),
          inits.length > 0
            ? condition("Initialized", "False", "ContainersNotInitialized")
            : condition("Initialized", "True"),
        ],
        initContainerStatuses: inits.map((c) => waiting(c, "PodInitializing")),
        containerStatuses: spec.containers.map((c) =>
          waiting(c, inits.length > 0 ? "PodInitializing" : "ContainerCreating"),
        ),
      };
    });
    if (fault?.kind === "slow-pending") {
      await this.#sleep(run, fault.ms);
      if (run.cancelled) return;
    }

    // Volumes and env references: wait for what is missing, as the kubelet retries mounts.
    mkdirSync(join(run.dir, "logs"), { recursive: true });
    let prepared: { volumes: Volumes; env: Map<string, Record<string, string>> } | null = null;
    for (;;) {
      const problem = this.#prepare(run, spec, (volumes, env) => {
        prepared = { volumes, env };
      });
      if (problem === null) break;
      this.#setStatus(run, (s) => {
        s.containerStatuses = [waiting(main, problem.reason, problem.message)];
      });
      const missing = `${run.namespace}/${problem.missing}`;
      const waiters = this.#waiting.get(missing) ?? new Set();
      this.#waiting.set(missing, waiters.add(run));
      await new Promise<void>((resolve) => {
        run.wake = resolve;
      });
      run.wake = undefined;
      waiters.delete(run);
      if (waiters.size === 0) this.#waiting.delete(missing);
      if (run.cancelled) return;
    }
    const { volumes, env } = prepared as unknown as {
      volumes: Volumes;
      env: Map<string, Record<string, string>>;
    };
    this.#watchSizes(run, spec.volumes ?? [], volumes);

    for (const init of inits) {
      const ended = await this.#exec(run, init, env.get(init.name) ?? {}, volumes, true);
      if (run.cancelled || this.#closed) return;
      this.#setContainer(run, "initContainerStatuses", terminated(ended));
      if (this.#interrupted(run, [])) return;
      if (ended.exitCode !== 0) {
        // restartPolicy Never: a failed init container fails the pod (kubectl: Init:Error).
        this.#setStatus(run, (s) => {
          s.phase = "Failed";
          s.conditions = [
            condition("PodScheduled", "True"),
            condition(
              "Initialized",
              "False",
              "ContainersNotInitialized",
              `containers with incomplete status: [${init.name}]`,
            ),
            condition("Ready", "False", "PodFailed"),
          ];
        });
        return;
      }
    }
    if (fault?.kind === "image-pull") {
      this.#setStatus(run, (s) => {
        s.conditions = [condition("PodScheduled", "True"), condition("Initialized", "True")];
        s.containerStatuses = [
          waiting(main, "ImagePullBackOff", `Back-off pulling image "${main.image}"`),
        ];
      });
      return;
    }
    this.#setStatus(run, (s) => {
      s.conditions = [condition("PodScheduled", "True"), condition("Initialized", "True")];
    });
    // Each container's end is reported when it comes: a sidecar may outlive the others, the pod
    // Running (not Ready) until the last one ends.
    const ends = Promise.all(
      spec.containers.map(async (c) => {
        const e = await this.#exec(run, c, env.get(c.name) ?? {}, volumes, false);
        if (!this.#closed && !run.cancelled) this.#containerEnded(run, e);
        return e;
      }),
    );
    if (fault?.kind === "oom") {
      await this.#sleep(run, fault.afterMs ?? 50);
      const proc = run.procs.get(main.name);
      if (proc) {
        run.oom = true;
        kill(proc, "SIGKILL");
      }
    }
    if (fault?.kind === "disrupt") {
      await this.#sleep(run, fault.afterMs ?? 50);
      if (run.procs.size > 0 && !run.cancelled)
        this.disrupt(run.namespace, run.name, fault.disruption);
    }
    const ended = await ends;
    if (this.#closed) return;
    if (this.#interrupted(run, ended)) return;
    const failed = ended.some((e) => e.exitCode !== 0);
    this.#setStatus(run, (s) => {
      s.phase = failed ? "Failed" : "Succeeded";
      s.conditions = [
        ...((s.conditions ?? []) as Array<{ type: string }>).filter(
          (x) => x.type === "DisruptionTarget",
        ),
        condition("PodScheduled", "True"),
        condition("Initialized", "True"),
        condition("Ready", "False", "PodCompleted"),
      ];
      s.containerStatuses = ended.map(terminated);
    });
    if (run.deleting) this.#remove(run);
  }

  /**
   * After containers ended: whether the pod ended for another reason than its containers (an
   * eviction, a disruption, a delete), having reported it so.
   */
  #interrupted(run: PodRun, ended: Ended[]): boolean {
    if (run.evicted !== undefined) {
      const message = run.evicted;
      this.#setStatus(run, (s) => {
        // The eviction manager's local-storage evictions set no DisruptionTarget condition.
        s.phase = "Failed";
        s.reason = "Evicted";
        s.message = message;
        s.conditions = [
          ...((s.conditions ?? []) as Array<{ type: string }>).filter((x) => x.type !== "Ready"),
          condition("Ready", "False", "PodFailed"),
        ];
        if (ended.length > 0) s.containerStatuses = ended.map(terminated);
      });
      if (run.deleting) this.#remove(run);
      return true;
    }
    if (run.disruption && run.disruption !== "preempt") {
      this.#finishDisrupted(run, ended);
      return true;
    }
    if (run.deleting && ended.length === 0) {
      this.#remove(run);
      return true;
    }
    return false;
  }

  /** Null when every volume and env reference resolves; otherwise why the container waits. */
  #prepare(
    run: PodRun,
    spec: PodSpec,
    ready: (volumes: Volumes, env: Map<string, Record<string, string>>) => void,
  ): { reason: string; message: string; missing: string } | null {
    const volumes: Volumes = {};
    for (const v of spec.volumes ?? []) {
      const dir = join(run.dir, "volumes", v.name);
      mkdirSync(dir, { recursive: true });
      const source = v.configMap
        ? {
            kind: "configmaps" as const,
            name: v.configMap.name,
            items: v.configMap.items,
            decode: false,
          }
        : v.secret
          ? {
              kind: "secrets" as const,
              name: v.secret.secretName,
              items: v.secret.items,
              decode: true,
            }
          : null;
      // ConfigMap and Secret volumes are always read-only in the container.
      volumes[v.name] = { dir, readOnly: source !== null };
      if (!source) {
        if (!v.emptyDir) {
          throw new Error(
            `fake kubelet: volume "${v.name}" of pod ${run.name} is of a kind the fake does not mount (it mounts emptyDir, configMap, secret)`,
          );
        }
        continue;
      }
      const obj = this.store.get(source.kind, run.namespace, source.name);
      if (!obj) {
        const what = source.kind === "configmaps" ? "configmap" : "secret";
        return {
          missing: `${source.kind}/${source.name}`,
          reason: "ContainerCreating",
          message: `MountVolume.SetUp failed for volume "${v.name}" : ${what} "${source.name}" not found`,
        };
      }
      const data = obj.data ?? {};
      const files = source.items ?? Object.keys(data).map((k) => ({ key: k, path: k }));
      for (const item of files) {
        const value = data[item.key];
        if (value === undefined) continue;
        const file = join(dir, item.path);
        mkdirSync(join(file, ".."), { recursive: true });
        writeFileSync(file, source.decode ? Buffer.from(value, "base64") : value);
      }
    }
    const env = new Map<string, Record<string, string>>();
    for (const c of [...(spec.initContainers ?? []), ...spec.containers]) {
      const out: Record<string, string> = {};
      for (const e of c.env ?? []) {
        const ref = e.valueFrom?.secretKeyRef ?? e.valueFrom?.configMapKeyRef;
        if (e.valueFrom?.fieldRef) {
          const fields: Record<string, string> = {
            "metadata.name": run.name,
            "metadata.namespace": run.namespace,
            "metadata.uid": run.uid,
            "spec.nodeName": NODE,
          };
          out[e.name] = fields[e.valueFrom.fieldRef.fieldPath] ?? "";
          continue;
        }
        if (!ref) {
          out[e.name] = e.value ?? "";
          continue;
        }
        const kind = e.valueFrom?.secretKeyRef ? "secrets" : "configmaps";
        const obj = this.store.get(kind, run.namespace, ref.name);
        const raw = obj?.data?.[ref.key];
        if (raw === undefined) {
          if (ref.optional) continue;
          const what = kind === "secrets" ? "secret" : "configmap";
          return {
            missing: `${kind}/${ref.name}`,
            reason: "CreateContainerConfigError",
            message: obj
              ? `couldn't find key ${ref.key} in ${what} ${run.namespace}/${ref.name}`
              : `${what} "${ref.name}" not found`,
          };
        }
        out[e.name] = kind === "secrets" ? Buffer.from(raw, "base64").toString("utf8") : raw;
      }
      env.set(c.name, out);
    }
    ready(volumes, env);
    return null;
  }

  /**
   * Runs one container to its end: its filesystem, its command (or its image's entrypoint), its
   * status while it runs. Resolves with how it ended; never rejects.
   */
  async #exec(
    run: PodRun,
    c: ContainerSpec,
    env: Record<string, string>,
    volumes: Volumes,
    init: boolean,
  ): Promise<Ended> {
    const list: StatusList = init ? "initContainerStatuses" : "containerStatuses";
    const logPath = join(run.dir, "logs", `${c.name}.log`);
    const startedAt = new Date().toISOString();
    const ended = (exitCode: number, reason: string, message?: string): Ended => ({
      name: c.name,
      image: c.image,
      exitCode,
      reason,
      ...(message ? { message } : {}),
      startedAt,
      finishedAt: new Date().toISOString(),
    });
    if (this.options.instant) {
      writeFileSync(logPath, "");
      this.#containerRunning(run, c, list, startedAt);
      await new Promise((resolve) => setImmediate(resolve));
      return ended(0, "Completed");
    }
    const image = this.options.images?.[c.image];
    const argv = c.command
      ? [...c.command, ...(c.args ?? [])]
      : [...(image?.command ?? []), ...(c.args ?? image?.args ?? [])];
    let containerEnv: Record<string, string> = {
      ...this.options.imageEnv,
      ...(image?.env ?? {}),
      ...env,
    };
    const dir = join(run.dir, "containers", c.name);
    const tmp = join(dir, "tmp");
    const home = join(dir, "home");
    const termination = join(dir, "termination-log");
    mkdirSync(tmp, { recursive: true, mode: 0o1777 });
    chmodSync(tmp, 0o1777);
    mkdirSync(home, { recursive: true });
    writeFileSync(termination, "");
    const binds: Bind[] = [];
    for (const m of c.volumeMounts ?? []) {
      const volume = volumes[m.name];
      if (!volume) return ended(128, "StartError", `fake kubelet: no volume "${m.name}"`);
      const source = mountSource(volume.dir, m, c.name, env);
      if (typeof source !== "string") return this.#stuck(run, c, list, source.error, ended);
      binds.push({
        source,
        target: m.mountPath,
        readOnly: volume.readOnly || m.readOnly === true,
      });
    }
    binds.push({
      source: termination,
      target: c.terminationMessagePath ?? DEFAULT_TERMINATION_PATH,
      readOnly: false,
    });
    for (const entry of this.options.hostPaths ?? []) {
      const { path, readOnly = false } = typeof entry === "string" ? { path: entry } : entry;
      binds.push({ source: path, target: path, readOnly });
    }
    const extra = (await this.options.prepare?.(c, containerEnv)) ?? {};
    containerEnv = { ...containerEnv, ...(extra.env ?? {}) };
    binds.push(...(extra.binds ?? []));
    if (run.cancelled || this.#closed) return ended(137, "Error");

    const command = argv[0];
    const missing =
      command === undefined
        ? "no command specified"
        : findExecutable(command, containerEnv.PATH ?? "", binds)
          ? null
          : `exec: "${command}": executable file not found in $PATH`;
    if (missing !== null) {
      writeFileSync(logPath, "");
      return ended(128, "StartError", missing);
    }
    const fd = openSync(logPath, "a");
    let child: ChildProcess;
    try {
      child = spawn(
        BWRAP,
        [
          ...containerArgs({
            tmp,
            home,
            binds,
            ...(c.workingDir ? { workingDir: c.workingDir } : {}),
            hostPid: this.options.hostPid ?? false,
          }),
          ...argv,
        ],
        { env: containerEnv, stdio: ["ignore", fd, fd, "pipe"], detached: true },
      );
    } finally {
      closeSync(fd);
    }
    const proc: Proc = { child, group: groupOf(child) };
    run.procs.set(c.name, proc);
    this.#containerRunning(run, c, list, startedAt);
    const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) => {
      child.once("error", () => resolve([128, null]));
      child.once("exit", (code, signal) => resolve([code, signal]));
    });
    // The container's end takes down everything in it (its pid namespace, its process group).
    kill(proc, "SIGKILL");
    run.procs.delete(c.name);
    if (run.procs.size === 0 && run.killTimer) clearTimeout(run.killTimer);
    const exitCode = code ?? 128 + (signal ? (constants.signals[signal] ?? 0) : 0);
    const reason = run.oom && !init ? "OOMKilled" : exitCode === 0 ? "Completed" : "Error";
    let message = await lastBytes(termination, MAX_TERMINATION_MESSAGE);
    if (!message && exitCode !== 0 && c.terminationMessagePolicy === "FallbackToLogsOnError") {
      const lines = (await lastBytes(logPath, FALLBACK_LOG_BYTES)).split(/(?<=\n)/);
      message = lines.slice(-FALLBACK_LOG_LINES).join("");
    }
    return ended(exitCode, reason, message || undefined);
  }

  /** A regular container ended while the pod goes on (its others, or the pod's own end). */
  #containerEnded(run: PodRun, e: Ended): void {
    // An eviction or disruption reports every container at once, as the pod's end.
    if (run.evicted !== undefined || (run.disruption && run.disruption !== "preempt")) return;
    this.#setContainer(run, "containerStatuses", terminated(e));
    if (run.procs.size === 0) return;
    this.#setStatus(run, (s) => {
      const statuses = (s.containerStatuses ?? []) as Array<{ name: string; ready: boolean }>;
      const unready = statuses.filter((x) => !x.ready).map((x) => x.name);
      s.conditions = [
        ...((s.conditions ?? []) as Array<{ type: string }>).filter((x) => x.type !== "Ready"),
        condition(
          "Ready",
          "False",
          "ContainersNotReady",
          `containers with unready status: [${unready.join(" ")}]`,
        ),
      ];
    });
  }

  /**
   * A container the kubelet cannot start (a subPath it cannot prepare): waiting,
   * CreateContainerConfigError, the pod Pending, until the pod ends (a delete, the Job's
   * deadline); the kubelet would retry it, but nothing here changes what it fails on.
   */
  async #stuck(
    run: PodRun,
    c: ContainerSpec,
    list: StatusList,
    message: string,
    ended: (exitCode: number, reason: string, message?: string) => Ended,
  ): Promise<Ended> {
    this.#setContainer(run, list, waiting(c, "CreateContainerConfigError", message));
    this.#setStatus(run, (s) => {
      s.phase = "Pending";
    });
    if (!run.cancelled && !run.deleting && run.evicted === undefined && !run.disruption) {
      await new Promise<void>((resolve) => run.stuck.add(resolve));
    }
    return ended(
      137,
      "ContainerStatusUnknown",
      "The container could not be located when the pod was terminated",
    );
  }

  #containerRunning(run: PodRun, c: ContainerSpec, list: StatusList, startedAt: string): void {
    const status = {
      name: c.name,
      image: c.image,
      ready: list === "containerStatuses",
      restartCount: 0,
      started: true,
      state: { running: { startedAt } },
    };
    this.#setContainer(run, list, status);
    if (list === "containerStatuses") {
      this.#setStatus(run, (s) => {
        // A container that cannot start keeps the pod Pending (the kubelet's getPhase).
        s.phase = run.stuck.size > 0 ? "Pending" : "Running";
        s.conditions = [
          condition("PodScheduled", "True"),
          condition("Initialized", "True"),
          condition("Ready", run.stuck.size > 0 ? "False" : "True"),
        ];
      });
    }
  }

  /** Replaces one container's entry of a status list (or adds it). */
  #setContainer(run: PodRun, list: StatusList, status: { name: string }): void {
    this.#setStatus(run, (s) => {
      const statuses = ((s[list] as Array<{ name: string }> | undefined) ?? []).filter(
        (x) => x.name !== status.name,
      );
      const pod = this.store.get("pods", run.namespace, run.name);
      const order = ((list === "initContainerStatuses"
        ? pod?.spec.initContainers
        : pod?.spec.containers) ?? []) as ContainerSpec[];
      statuses.push(status);
      statuses.sort(
        (a, b) =>
          order.findIndex((c) => c.name === a.name) - order.findIndex((c) => c.name === b.name),
      );
      s[list] = statuses;
    });
  }

  /**
   * The eviction manager's emptyDir check: a volume over its `sizeLimit` gets the pod evicted at
   * once (grace period 0), every container killed.
   */
  #watchSizes(run: PodRun, specs: Volume[], volumes: Volumes): void {
    if (this.options.instant) return;
    const limited = specs.flatMap((v) => {
      const limit = v.emptyDir?.sizeLimit;
      const volume = volumes[v.name];
      return limit && volume
        ? [{ name: v.name, dir: volume.dir, limit, bytes: parseQuantity(limit) }]
        : [];
    });
    if (limited.length === 0) return;
    let checking = false;
    run.sizeTimer = setInterval(() => {
      if (checking || run.evicted !== undefined || run.cancelled) return;
      checking = true;
      (async () => {
        for (const v of limited) {
          if ((await diskUsage(v.dir)) <= v.bytes || run.evicted !== undefined) continue;
          // The kubelet's emptyDirMessageFmt, trailing space included.
          run.evicted = `Usage of EmptyDir volume "${v.name}" exceeds the limit "${v.limit}". `;
          this.#signal(run, "SIGKILL");
          this.#unstick(run);
        }
      })().finally(() => {
        checking = false;
      });
    }, this.options.sizeCheckMs ?? 200);
  }

  #finishDisrupted(run: PodRun, ran: Ended[]): void {
    const evicted = run.disruption === "evict";
    const [reason, message] = evicted
      ? [
          "TerminationByKubelet",
          "The node was low on resource: memory. Threshold quantity: 100Mi, available: 12Mi.",
        ]
      : ["DeletionByTaintManager", "Taint manager: deleting due to NoExecute taint"];
    this.#setStatus(run, (s) => {
      s.phase = "Failed";
      if (evicted) {
        s.reason = "Evicted";
        s.message = message;
      }
      s.conditions = [
        condition("DisruptionTarget", "True", reason, message),
        condition("Ready", "False"),
      ];
      if (ran.length > 0)
        s.containerStatuses = ran.map((e) => terminated({ ...e, exitCode: 137, reason: "Error" }));
    });
    // An evicted pod stays, Failed; a pod on a lost node is deleted by the taint manager.
    if (!evicted) this.#remove(run);
  }

  #remove(run: PodRun): void {
    this.#runs.delete(key(run.namespace, run.name));
    this.store.remove("pods", run.namespace, run.name);
  }

  #setStatus(
    run: PodRun,
    mutate: (status: Record<string, unknown> & { conditions?: unknown[] }) => void,
  ): void {
    if (this.#closed) return;
    this.store.update("pods", run.namespace, run.name, (p) => {
      p.status ??= {};
      mutate(p.status);
    });
  }

  #signal(run: PodRun, signal: NodeJS.Signals): void {
    for (const proc of run.procs.values()) kill(proc, signal);
  }

  #cancel(run: PodRun): void {
    run.cancelled = true;
    run.wake?.();
    this.#unstick(run);
  }

  /** The pod ends: containers that never started stop waiting. */
  #unstick(run: PodRun): void {
    for (const resolve of run.stuck) resolve();
    run.stuck.clear();
  }

  #sleep(run: PodRun, ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      run.wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }
}

interface PodSpec {
  containers: ContainerSpec[];
  initContainers?: ContainerSpec[];
  volumes?: Volume[];
}

interface KeyToPath {
  key: string;
  path: string;
}

interface Volume {
  name: string;
  emptyDir?: { sizeLimit?: string };
  configMap?: { name: string; items?: KeyToPath[] };
  secret?: { secretName: string; items?: KeyToPath[] };
}

/**
 * What the kubelet binds for a mount: the volume's directory, or with `subPath` (`subPathExpr`
 * expanded from the container's environment) the file or directory inside it, a directory
 * created when missing (the kubelet's SafeMakeDir, with the volume's mode). A subPath that
 * leaves the volume, by `..`, an absolute path or a symlink a container left in it, is refused
 * with the kubelet's message (the apiserver refuses the first two at create already).
 */
function mountSource(
  volume: string,
  m: VolumeMount,
  container: string,
  env: Record<string, string>,
): string | { error: string } {
  let subPath = m.subPath ?? "";
  if (m.subPathExpr) {
    const missing = new Set<string>();
    subPath = m.subPathExpr.replace(
      /\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)/g,
      (_all, name?: string) => {
        if (name === undefined) return "$";
        const value = env[name];
        if (!value) missing.add(name);
        return value ?? "";
      },
    );
    if (missing.size > 0) return { error: `missing value for ${[...missing].sort().join(", ")}` };
  }
  if (!subPath) return volume;
  if (isAbsolute(subPath))
    return { error: `error SubPath \`${subPath}\` must not be an absolute path` };
  if (subPath.split("/").includes("..")) {
    return { error: `unable to provision SubPath \`${subPath}\`: must not contain '..'` };
  }
  const refused = {
    error: `failed to prepare subPath for volumeMount "${m.name}" of container "${container}"`,
  };
  try {
    const root = realpathSync(volume);
    // The deepest part that exists must resolve inside the volume; the rest is created there.
    let existing = join(root, subPath);
    while (existing !== root && !lstatSync(existing, { throwIfNoEntry: false })) {
      existing = dirname(existing);
    }
    const real = realpathSync(existing);
    if (real !== root && !real.startsWith(`${root}/`)) return refused;
    const target = join(real, relative(existing, join(root, subPath)));
    if (target !== real) mkdirSync(target, { recursive: true, mode: statSync(root).mode & 0o7777 });
    return target;
  } catch {
    return refused;
  }
}

/** The host pid of the container's process group, from bwrap's `--info-fd` JSON. */
function groupOf(child: ChildProcess): Promise<number | undefined> {
  return new Promise((resolve) => {
    const info = child.stdio[3];
    if (!info) return resolve(undefined);
    let text = "";
    info.on("data", (chunk: Buffer) => {
      text += chunk.toString("utf8");
      const m = /"child-pid":\s*([0-9]+)/.exec(text);
      if (m) resolve(Number(m[1]));
    });
    info.on("error", () => resolve(undefined));
    info.on("close", () => resolve(undefined));
  });
}

/**
 * SIGKILL goes to the container's group and to bwrap (whose end ends the pid namespace); any
 * other signal to the container's group alone, so that the container may handle it.
 */
function kill(proc: Proc, signal: NodeJS.Signals): void {
  const send = (pid: number | undefined) => {
    if (pid === undefined) return;
    try {
      process.kill(-pid, signal);
    } catch {
      // the group is gone already
    }
  };
  void proc.group.then(send);
  if (signal === "SIGKILL") send(proc.child.pid);
}

function key(namespace: string, name: string): string {
  return `${namespace}/${name}`;
}

function condition(type: string, status: string, reason?: string, message?: string) {
  const now = new Date().toISOString();
  return {
    type,
    status,
    lastTransitionTime: now,
    ...(reason ? { reason } : {}),
    ...(message ? { message } : {}),
  };
}

function waiting(c: ContainerSpec, reason: string, message?: string) {
  return {
    name: c.name,
    image: c.image,
    ready: false,
    restartCount: 0,
    started: false,
    state: { waiting: { reason, ...(message ? { message } : {}) } },
  };
}

function terminated(e: Ended) {
  return {
    name: e.name,
    image: e.image,
    ready: false,
    restartCount: 0,
    started: false,
    state: {
      terminated: {
        exitCode: e.exitCode,
        reason: e.reason,
        startedAt: e.startedAt,
        finishedAt: e.finishedAt,
        containerID: `fake://${e.name}`,
        ...(e.message ? { message: e.message } : {}),
      },
    },
  };
}

/** The kubelet's tail.ReadAtMost: the last `max` bytes of the file. */
async function lastBytes(path: string, max: number): Promise<string> {
  const handle = await open(path, "r").catch(() => null);
  if (!handle) return "";
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
