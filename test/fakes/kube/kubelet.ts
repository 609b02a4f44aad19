/**
 * The simulated kubelet of the fake cluster (one node, "fake-node-1"). It binds every pod it is
 * given, waits for the ConfigMaps and Secrets the pod mounts or references, emulates the init
 * containers (their images do not run here: the fake's owner says what each one does, e.g. check
 * the repository out into the emptyDir), then runs the main container's command as a local
 * process in its own process group with the container's env, stdout and stderr into one log, and
 * reports the end as the real kubelet does: exit code, reason, and the last 4,096 bytes of the file
 * at `terminationMessagePath` as the termination message.
 *
 * There are no mount namespaces: a path inside a volume mount (env values, args, workingDir,
 * terminationMessagePath) is rewritten to the volume's directory on this machine, which is what
 * the container would have seen through the mount.
 *
 * Faults: `faults(pod)` may give a pod one at admission (unschedulable, image pull failure, a slow
 * pending, OOMKilled); `disrupt()` evicts, preempts, or loses the node under a running pod.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { closeSync, mkdirSync, openSync, readFileSync, writeFileSync } from "node:fs";
import { open } from "node:fs/promises";
import { constants } from "node:os";
import { dirname, join } from "node:path";
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
  volumeMounts?: Array<{ name: string; mountPath: string; readOnly?: boolean }>;
  terminationMessagePath?: string;
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

export interface InitResult {
  exitCode: number;
  /** What the init container printed. */
  log?: string;
  /** Volumes it filled that should be served from another directory (a shared checkout). */
  volumes?: Record<string, string>;
}

export interface KubeletOptions {
  /** A directory the kubelet owns: pod directories, logs, volumes. */
  root: string;
  /** Emulates one init container, given its env (resolved) and the pod's volume directories. */
  init(
    container: ContainerSpec,
    env: Record<string, string>,
    volumes: Record<string, string>,
  ): Promise<InitResult>;
  /** The image's own environment, under the container's (PATH and the like). */
  imageEnv: Record<string, string>;
  /** A fault for a new pod, or nothing. */
  faults?: (pod: KubeObject) => Fault | undefined;
  /** Caps terminationGracePeriodSeconds, to keep tests quick. */
  maxGraceSeconds?: number;
  /**
   * Containers end at once with exit 0 and no process (benchmarks of the API side, where 500
   * processes on two cores would only measure the machine).
   */
  instant?: boolean;
}

/** The kubelet reads at most this much of a termination message file (its last bytes). */
const MAX_TERMINATION_MESSAGE = 4_096;
const NODE = "fake-node-1";

interface PodRun {
  namespace: string;
  name: string;
  uid: string;
  dir: string;
  logs: Map<string, string>;
  child?: ChildProcess;
  exited?: Promise<void>;
  cancelled: boolean;
  deleting: boolean;
  disruption?: Disruption;
  oom: boolean;
  killTimer?: NodeJS.Timeout;
  wake?: () => void;
}

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

  /** Processes still running, by pod name (for tests that look for leaks). */
  get running(): string[] {
    return [...this.#runs.values()].filter((r) => r.child).map((r) => r.name);
  }

  admit(pod: KubeObject): void {
    const run: PodRun = {
      namespace: pod.metadata.namespace,
      name: pod.metadata.name,
      uid: pod.metadata.uid,
      dir: join(this.options.root, "pods", pod.metadata.uid),
      logs: new Map(),
      cancelled: false,
      deleting: false,
      oom: false,
    };
    this.#runs.set(key(run.namespace, run.name), run);
    this.#run(run, this.faults?.(pod)).catch((e: unknown) => {
      if (!this.#closed) console.error(`fake kubelet: pod ${run.name}: ${(e as Error).stack}`);
    });
  }

  /** A graceful delete: SIGTERM, SIGKILL after the grace period, then the object goes. */
  deletePod(namespace: string, name: string): void {
    const run = this.#runs.get(key(namespace, name));
    const pod = this.store.get("pods", namespace, name);
    if (!pod) return;
    if (!run?.child) {
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
    if (run.child) {
      this.#signal(run, "SIGKILL");
      return;
    }
    this.#cancel(run);
    this.#finishDisrupted(run, null);
  }

  /** The container's log so far, or null when it has not started. */
  log(pod: KubeObject, container: string): string | null {
    const path = join(this.options.root, "pods", pod.metadata.uid, "logs", `${container}.log`);
    try {
      return readFileSync(path, "utf8");
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
    const spec = pod.spec as {
      containers: ContainerSpec[];
      initContainers?: ContainerSpec[];
      volumes?: Volume[];
    };
    const main = spec.containers[0] as ContainerSpec;
    this.store.update("pods", run.namespace, run.name, (p) => {
      p.spec.nodeName = NODE;
      p.status = {
        phase: "Pending",
        hostIP: "10.0.0.1",
        startTime: new Date().toISOString(),
        conditions: [
          condition("PodScheduled", "True"),
          condition("Initialized", "False", "ContainersNotInitialized"),
        ],
        initContainerStatuses: (spec.initContainers ?? []).map((c) =>
          waiting(c, "PodInitializing"),
        ),
        containerStatuses: spec.containers.map((c) => waiting(c, "PodInitializing")),
      };
    });
    if (fault?.kind === "slow-pending") {
      await this.#sleep(run, fault.ms);
      if (run.cancelled) return;
    }

    // Volumes and env references: wait for what is missing, as the kubelet retries mounts.
    mkdirSync(join(run.dir, "logs"), { recursive: true });
    let volumes: Record<string, string> | null = null;
    let envs: Map<string, Record<string, string>> | null = null;
    for (;;) {
      const problem = this.#prepare(run, spec, (v, e) => {
        volumes = v;
        envs = e;
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
    const vols = volumes as unknown as Record<string, string>;
    const env = envs as unknown as Map<string, Record<string, string>>;

    for (const init of spec.initContainers ?? []) {
      const result = await this.options.init(init, env.get(init.name) ?? {}, vols);
      if (run.cancelled) return;
      writeFileSync(join(run.dir, "logs", `${init.name}.log`), result.log ?? "");
      run.logs.set(init.name, join(run.dir, "logs", `${init.name}.log`));
      Object.assign(vols, result.volumes ?? {});
      if (result.exitCode !== 0) {
        const now = new Date().toISOString();
        this.#setStatus(run, (s) => {
          s.phase = "Failed";
          s.initContainerStatuses = [
            terminated(
              init,
              result.exitCode,
              "Error",
              now,
              now,
              result.log?.slice(-MAX_TERMINATION_MESSAGE),
            ),
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
    this.#start(run, main, env.get(main.name) ?? {}, vols);
    if (fault?.kind === "oom") {
      await this.#sleep(run, fault.afterMs ?? 50);
      if (run.child) {
        run.oom = true;
        this.#signal(run, "SIGKILL");
      }
    }
    if (fault?.kind === "disrupt") {
      await this.#sleep(run, fault.afterMs ?? 50);
      if (run.child && !run.cancelled) this.disrupt(run.namespace, run.name, fault.disruption);
    }
  }

  /** Null when every volume and env reference resolves; otherwise why the container waits. */
  #prepare(
    run: PodRun,
    spec: { containers: ContainerSpec[]; initContainers?: ContainerSpec[]; volumes?: Volume[] },
    ready: (volumes: Record<string, string>, env: Map<string, Record<string, string>>) => void,
  ): { reason: string; message: string; missing: string } | null {
    const volumes: Record<string, string> = {};
    for (const v of spec.volumes ?? []) {
      const dir = join(run.dir, "volumes", v.name);
      mkdirSync(dir, { recursive: true });
      volumes[v.name] = dir;
      const source = v.configMap
        ? { kind: "configmaps" as const, name: v.configMap.name, decode: false }
        : v.secret
          ? { kind: "secrets" as const, name: v.secret.secretName, decode: true }
          : null;
      if (!source) continue;
      const obj = this.store.get(source.kind, run.namespace, source.name);
      if (!obj) {
        const what = source.kind === "configmaps" ? "configmap" : "secret";
        return {
          missing: `${source.kind}/${source.name}`,
          reason: "ContainerCreating",
          message: `MountVolume.SetUp failed for volume "${v.name}" : ${what} "${source.name}" not found`,
        };
      }
      for (const [k, value] of Object.entries(obj.data ?? {})) {
        writeFileSync(join(dir, k), source.decode ? Buffer.from(value, "base64") : value);
      }
    }
    const env = new Map<string, Record<string, string>>();
    for (const c of [...(spec.initContainers ?? []), ...spec.containers]) {
      const out: Record<string, string> = {};
      for (const e of c.env ?? []) {
        const ref = e.valueFrom?.secretKeyRef ?? e.valueFrom?.configMapKeyRef;
        if (e.valueFrom?.fieldRef) {
          out[e.name] = e.valueFrom.fieldRef.fieldPath === "metadata.name" ? run.name : "";
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

  #start(
    run: PodRun,
    c: ContainerSpec,
    env: Record<string, string>,
    volumes: Record<string, string>,
  ): void {
    const mounts: Array<[string, string]> = (c.volumeMounts ?? []).map((m) => [
      m.mountPath.replace(/\/+$/, ""),
      volumes[m.name] ?? join(run.dir, "volumes", m.name),
    ]);
    const termination = join(run.dir, "termination", c.name);
    mkdirSync(dirname(termination), { recursive: true });
    writeFileSync(termination, "");
    if (c.terminationMessagePath) mounts.push([c.terminationMessagePath, termination]);
    mounts.sort((a, b) => b[0].length - a[0].length);
    const translate = (s: string) => {
      for (const [inside, outside] of mounts) {
        if (s === inside || s.startsWith(`${inside}/`)) return outside + s.slice(inside.length);
      }
      return s;
    };
    const argv = [...(c.command ?? []), ...(c.args ?? [])].map(translate);
    const containerEnv: Record<string, string> = { ...this.options.imageEnv };
    for (const [k, v] of Object.entries(env)) containerEnv[k] = translate(v);
    const logPath = join(run.dir, "logs", `${c.name}.log`);
    const fd = openSync(logPath, "a");
    run.logs.set(c.name, logPath);
    const startedAt = new Date().toISOString();
    if (this.options.instant) {
      closeSync(fd);
      this.#running(run, c, startedAt);
      setImmediate(() => {
        this.#finish(run, c, startedAt, 0, null, termination).catch(() => {});
      });
      return;
    }
    let child: ChildProcess;
    try {
      if (argv.length === 0) throw new Error("no command specified");
      child = spawn(argv[0] as string, argv.slice(1), {
        cwd: c.workingDir ? translate(c.workingDir) : run.dir,
        env: containerEnv,
        stdio: ["ignore", fd, fd],
        detached: true,
      });
    } finally {
      closeSync(fd);
    }
    run.child = child;
    run.exited = new Promise<void>((resolve) => {
      let done = false;
      const finish = (code: number | null, signal: NodeJS.Signals | null, error?: Error) => {
        if (done) return;
        done = true;
        // The container's end takes down everything in it (its pid namespace).
        this.#signal(run, "SIGKILL");
        run.child = undefined;
        if (run.killTimer) clearTimeout(run.killTimer);
        this.#finish(run, c, startedAt, code, signal, termination, error).finally(resolve);
      };
      child.once("error", (e) => finish(128, null, e));
      child.once("exit", (code, signal) => finish(code, signal));
    });
    this.#running(run, c, startedAt);
  }

  #running(run: PodRun, c: ContainerSpec, startedAt: string): void {
    this.#setStatus(run, (s) => {
      s.phase = "Running";
      s.conditions = [
        condition("PodScheduled", "True"),
        condition("Initialized", "True"),
        condition("Ready", "True"),
      ];
      s.containerStatuses = [
        {
          name: c.name,
          image: c.image,
          ready: true,
          restartCount: 0,
          started: true,
          state: { running: { startedAt } },
        },
      ];
    });
  }

  async #finish(
    run: PodRun,
    c: ContainerSpec,
    startedAt: string,
    code: number | null,
    signal: NodeJS.Signals | null,
    terminationFile: string,
    error?: Error,
  ): Promise<void> {
    if (this.#closed) return;
    const exitCode = code ?? 128 + (signal ? (constants.signals[signal] ?? 0) : 0);
    if (run.disruption && run.disruption !== "preempt") {
      this.#finishDisrupted(run, { c, startedAt });
      return;
    }
    const message = error
      ? `exec: ${error.message}`
      : await lastBytes(terminationFile, MAX_TERMINATION_MESSAGE);
    const reason = error
      ? "StartError"
      : run.oom
        ? "OOMKilled"
        : exitCode === 0
          ? "Completed"
          : "Error";
    const finishedAt = new Date().toISOString();
    this.#setStatus(run, (s) => {
      s.phase = exitCode === 0 ? "Succeeded" : "Failed";
      s.conditions = [
        ...((s.conditions ?? []) as Array<{ type: string }>).filter(
          (x) => x.type === "DisruptionTarget",
        ),
        condition("PodScheduled", "True"),
        condition("Initialized", "True"),
        condition("Ready", "False", "PodCompleted"),
      ];
      s.containerStatuses = [
        terminated(c, exitCode, reason, startedAt, finishedAt, message || undefined),
      ];
    });
    if (run.deleting) this.#remove(run);
  }

  #finishDisrupted(run: PodRun, ran: { c: ContainerSpec; startedAt: string } | null): void {
    const now = new Date().toISOString();
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
      if (ran) s.containerStatuses = [terminated(ran.c, 137, "Error", ran.startedAt, now)];
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
    const pid = run.child?.pid;
    if (pid === undefined) return;
    try {
      process.kill(-pid, signal);
    } catch {
      // the group is gone already
    }
  }

  #cancel(run: PodRun): void {
    run.cancelled = true;
    run.wake?.();
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

interface Volume {
  name: string;
  emptyDir?: object;
  configMap?: { name: string };
  secret?: { secretName: string };
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

function terminated(
  c: ContainerSpec,
  exitCode: number,
  reason: string,
  startedAt: string,
  finishedAt: string,
  message?: string,
) {
  return {
    name: c.name,
    image: c.image,
    ready: false,
    restartCount: 0,
    started: false,
    state: {
      terminated: {
        exitCode,
        reason,
        startedAt,
        finishedAt,
        containerID: `fake://${c.name}`,
        ...(message ? { message } : {}),
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
