/**
 * The fake cluster's kubelet itself (test/fakes/kube/): every pod has a filesystem of its own
 * (bubblewrap), its volumes mounted where the manifest says (whole or by subPath), its init
 * containers run in order before its containers, which run together (a sidecar may outlive the
 * task), and an emptyDir over its sizeLimit gets it evicted. Pods are created straight on the
 * cluster object, or over HTTP where the apiserver's validation is the point; the executor's
 * tests reach the same kubelet over HTTP.
 */
import { existsSync, readFileSync, realpathSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { ROOT } from "../fakes/cli.js";
import { type FakeKube, type KubeObject, startFakeKube } from "../fakes/kube/index.js";

const NS = "fake-test";

let kube: FakeKube;
let seq = 0;

beforeAll(async () => {
  kube = await startFakeKube({
    namespace: NS,
    images: {
      // An image whose ENTRYPOINT is a shell and whose CMD says hello.
      "example.com/hello:1": { command: ["/bin/sh", "-c"], args: ["echo hello from the image"] },
    },
  });
});
afterAll(async () => {
  await kube?.close();
});

interface Container {
  name: string;
  image?: string;
  command?: string[];
  args?: string[];
  workingDir?: string;
  env?: Array<{ name: string; value: string }>;
  volumeMounts?: Array<{
    name: string;
    mountPath: string;
    readOnly?: boolean;
    subPath?: string;
    subPathExpr?: string;
  }>;
  terminationMessagePath?: string;
}

/** A container running `script` in sh. */
function sh(name: string, script: string, extra: Partial<Container> = {}): Container {
  return { name, command: ["/bin/sh", "-c", script], ...extra };
}

function podSpec(spec: {
  containers: Container[];
  initContainers?: Container[];
  volumes?: unknown[];
}) {
  const image = (c: Container) => ({ image: "busybox:1", ...c });
  return {
    restartPolicy: "Never",
    containers: spec.containers.map(image),
    ...(spec.initContainers ? { initContainers: spec.initContainers.map(image) } : {}),
    ...(spec.volumes ? { volumes: spec.volumes } : {}),
  };
}

function createPod(spec: Parameters<typeof podSpec>[0], on: FakeKube = kube): string {
  const name = `pod-${++seq}`;
  const created = on.cluster.create("pods", {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name, namespace: NS } as KubeObject["metadata"],
    spec: podSpec(spec),
  });
  if (!created) throw new Error(`pod ${name} exists`);
  return name;
}

function pod(name: string, on: FakeKube = kube): KubeObject {
  const found = on.cluster.store.get("pods", NS, name);
  if (!found) throw new Error(`no pod ${name}`);
  return found;
}

async function finished(name: string, on: FakeKube = kube): Promise<KubeObject> {
  await expect
    .poll(() => pod(name, on).status?.phase, { timeout: 10_000, interval: 20 })
    .toMatch(/^(Succeeded|Failed)$/);
  return pod(name, on);
}

interface StatusBody {
  kind?: string;
  reason?: string;
  code?: number;
  message: string;
}

/** A POST to the fake apiserver over HTTP, with the kubeconfig's token. */
async function post(path: string, body: object): Promise<{ status: number; body: StatusBody }> {
  const config = JSON.parse(readFileSync(kube.kubeconfig, "utf8"));
  const res = await fetch(`${kube.url}${path}`, {
    method: "POST",
    headers: {
      authorization: `Bearer ${config.users[0].user.token}`,
      "content-type": "application/json",
    },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as StatusBody };
}

interface ContainerState {
  running?: { startedAt: string };
  waiting?: { reason: string; message?: string };
  terminated?: { exitCode: number; reason: string; message?: string };
}

function state(p: KubeObject, container: string): ContainerState {
  const s = (p.status?.containerStatuses ?? []).find((x: { name: string }) => x.name === container);
  return s?.state ?? {};
}

function log(name: string, container: string, on: FakeKube = kube): string | null {
  return on.cluster.kubelet.log(pod(name, on), container);
}

function terminated(p: KubeObject, list: "containerStatuses" | "initContainerStatuses") {
  return (p.status?.[list] ?? []).map(
    (s: { name: string; state: { terminated?: object; waiting?: { reason: string } } }) => ({
      name: s.name,
      ...(s.state.terminated ?? { waiting: s.state.waiting?.reason }),
    }),
  );
}

describe("the fake kubelet: a filesystem per pod", () => {
  it("gives two pods of one Job their own /tmp and HOME, neither the machine's", async () => {
    // The first pod fails; backoffLimit 1 makes the Job controller start a second one.
    const script = `echo "home=$HOME tmpdir=$TMPDIR"
ls -A /tmp "$HOME"
touch /tmp/left-behind "$HOME/left-behind"
exit 1`;
    kube.cluster.create("jobs", {
      apiVersion: "batch/v1",
      kind: "Job",
      metadata: { name: "twice", namespace: NS } as KubeObject["metadata"],
      spec: {
        backoffLimit: 1,
        template: { spec: podSpec({ containers: [sh("main", script)] }) },
      },
    });
    await expect
      .poll(() => kube.podsOf(NS, "twice").map((p) => p.status?.phase), { timeout: 10_000 })
      .toEqual(["Failed", "Failed"]);
    const pods = kube.podsOf(NS, "twice");
    for (const p of pods) {
      const text = kube.cluster.kubelet.log(p, "main") ?? "";
      // Nothing of the machine's /tmp (where the fake's own directory is), nothing of the first pod.
      expect(text).toBe("home=/root tmpdir=/tmp\n/root:\n\n/tmp:\n");
    }
    // Each pod's files are in its own directory on this machine.
    const [first, second] = pods.map((p) => kube.cluster.kubelet.podDir(p));
    expect(first).not.toBe(second);
    for (const dir of [first, second]) {
      expect(existsSync(join(dir as string, "containers/main/tmp/left-behind"))).toBe(true);
      expect(existsSync(join(dir as string, "containers/main/home/left-behind"))).toBe(true);
    }
  });

  it("does not show a pod what another pod wrote in its emptyDir", async () => {
    const volumes = [{ name: "data", emptyDir: {} }];
    const mounts = { volumeMounts: [{ name: "data", mountPath: "/data" }] };
    const writer = createPod({
      containers: [sh("main", "echo mine > /data/file && ls -A /data", mounts)],
      volumes,
    });
    expect((await finished(writer)).status.phase).toBe("Succeeded");
    expect(log(writer, "main")).toBe("file\n");
    const reader = createPod({
      containers: [sh("main", "ls -A /data; test ! -e /data/file", mounts)],
      volumes,
    });
    expect((await finished(reader)).status.phase).toBe("Succeeded");
    expect(log(reader, "main")).toBe("");
    // The writer's file is in the writer's volume, on this machine.
    const dir = kube.cluster.kubelet.podDir(pod(writer));
    expect(readFileSync(join(dir, "volumes/data/file"), "utf8")).toBe("mine\n");
  });

  it("refuses writes to a readOnly mount and to a ConfigMap volume, and serves the ConfigMap's keys", async () => {
    kube.cluster.create("configmaps", {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: "settings", namespace: NS } as KubeObject["metadata"],
      data: { "greeting.txt": "hi there" },
    });
    const name = createPod({
      containers: [
        sh(
          "main",
          `cat /settings/greeting.txt; echo
echo x > /ro/file && echo "wrote /ro"
echo x > /settings/new && echo "wrote /settings"
echo x > /rw/file && echo "wrote /rw"
true`,
          {
            volumeMounts: [
              { name: "data", mountPath: "/ro", readOnly: true },
              { name: "data", mountPath: "/rw" },
              { name: "settings", mountPath: "/settings" },
            ],
          },
        ),
      ],
      volumes: [
        { name: "data", emptyDir: {} },
        { name: "settings", configMap: { name: "settings" } },
      ],
    });
    expect((await finished(name)).status.phase).toBe("Succeeded");
    const text = log(name, "main") ?? "";
    expect(text).toContain("hi there\n");
    expect(text).toMatch(/\/ro\/file: Read-only file system/);
    expect(text).toMatch(/\/settings\/new: Read-only file system/);
    expect(text).not.toContain("wrote /ro");
    expect(text).not.toContain("wrote /settings");
    expect(text).toContain("wrote /rw");
  });

  it("runs in its working directory and pid namespace, and reads the termination message from the container's file", async () => {
    const name = createPod({
      containers: [
        sh("main", 'pwd; echo "pid $$"; printf done > /dev/termination-log', {
          workingDir: "/data/sub/dir",
          volumeMounts: [{ name: "data", mountPath: "/data" }],
        }),
      ],
      volumes: [{ name: "data", emptyDir: {} }],
    });
    const p = await finished(name);
    const [pwd, pid] = (log(name, "main") ?? "").trim().split("\n");
    expect(pwd).toBe("/data/sub/dir");
    // bwrap's init is pid 1 of the pod's namespace, the command the next.
    expect(Number(pid?.replace("pid ", ""))).toBeLessThan(10);
    expect(terminated(p, "containerStatuses")).toMatchObject([
      { name: "main", exitCode: 0, reason: "Completed", message: "done" },
    ]);
  });

  it("runs an image's entrypoint with the container's args when it gives no command", async () => {
    const image = "example.com/hello:1";
    const name = createPod({
      containers: [
        { name: "default", image },
        { name: "args", image, args: ["echo hello from the args"] },
      ],
    });
    expect((await finished(name)).status.phase).toBe("Succeeded");
    expect(log(name, "default")).toBe("hello from the image\n");
    expect(log(name, "args")).toBe("hello from the args\n");
  });

  it("fails to start a container whose command is not there (StartError)", async () => {
    const name = createPod({ containers: [{ name: "main", command: ["no-such-program"] }] });
    const p = await finished(name);
    expect(p.status.phase).toBe("Failed");
    expect(terminated(p, "containerStatuses")).toMatchObject([
      {
        exitCode: 128,
        reason: "StartError",
        message: 'exec: "no-such-program": executable file not found in $PATH',
      },
    ]);
  });
});

describe("the fake kubelet: ending containers", () => {
  it("sends SIGTERM to the container on a graceful delete, which it may handle", async () => {
    const name = createPod({
      containers: [sh("main", "trap 'echo got TERM; exit 7' TERM; echo up; sleep 30 & wait")],
    });
    await expect.poll(() => log(name, "main"), { timeout: 10_000 }).toBe("up\n");
    const before = pod(name);
    const events: string[] = [];
    const stop = kube.cluster.store.subscribe((e) => {
      if (e.resource === "pods" && e.object.metadata.name === name) {
        const state = e.object.status?.containerStatuses?.[0]?.state?.terminated;
        if (state) events.push(`${state.exitCode} ${state.reason}`);
      }
    });
    try {
      kube.cluster.delete("pods", NS, name);
      await expect
        .poll(() => kube.cluster.store.get("pods", NS, name), { timeout: 5_000 })
        .toBeUndefined();
    } finally {
      stop();
    }
    // The handler ran (exit 7), well before the grace period's SIGKILL (137) would have come.
    expect(new Set(events)).toEqual(new Set(["7 Error"]));
    expect(kube.cluster.kubelet.log(before, "main")).toBe("up\ngot TERM\n");
  });
});

describe("the fake kubelet: init containers", () => {
  const volumes = [{ name: "work", emptyDir: {} }];
  const mounts = { volumeMounts: [{ name: "work", mountPath: "/shared" }] };

  it("runs the init containers in order, each to its end, then the containers", async () => {
    const name = createPod({
      initContainers: [
        sh("first", "sleep 0.2; echo first >> /shared/order", mounts),
        sh("second", "echo second >> /shared/order", mounts),
      ],
      containers: [sh("main", "cat /shared/order", mounts)],
      volumes,
    });
    const p = await finished(name);
    expect(p.status.phase).toBe("Succeeded");
    expect(log(name, "main")).toBe("first\nsecond\n");
    expect(terminated(p, "initContainerStatuses")).toMatchObject([
      { name: "first", exitCode: 0, reason: "Completed" },
      { name: "second", exitCode: 0, reason: "Completed" },
    ]);
  });

  it("fails the pod when an init container fails, running nothing after it", async () => {
    const name = createPod({
      initContainers: [sh("first", "exit 3", mounts), sh("second", "echo ran", mounts)],
      containers: [sh("main", "echo ran", mounts)],
      volumes,
    });
    const p = await finished(name);
    expect(p.status.phase).toBe("Failed");
    expect(terminated(p, "initContainerStatuses")).toMatchObject([
      { name: "first", exitCode: 3, reason: "Error" },
      { name: "second", waiting: "PodInitializing" },
    ]);
    expect(terminated(p, "containerStatuses")).toMatchObject([
      { name: "main", waiting: "PodInitializing" },
    ]);
    expect(p.status.conditions).toContainEqual(
      expect.objectContaining({ type: "Initialized", status: "False" }),
    );
    expect(log(name, "second")).toBeNull();
    expect(log(name, "main")).toBeNull();
  });
});

describe("the fake kubelet: emptyDir sizeLimit", () => {
  it("evicts a pod whose emptyDir grows over its sizeLimit, killing its containers", async () => {
    const name = createPod({
      containers: [
        sh("main", "head -c 3000000 /dev/zero > /scratch/big; sleep 30", {
          volumeMounts: [{ name: "scratch", mountPath: "/scratch" }],
        }),
      ],
      volumes: [{ name: "scratch", emptyDir: { sizeLimit: "1Mi" } }],
    });
    const p = await finished(name);
    expect(p.status).toMatchObject({
      phase: "Failed",
      reason: "Evicted",
      message: 'Usage of EmptyDir volume "scratch" exceeds the limit "1Mi". ',
    });
    expect(terminated(p, "containerStatuses")).toMatchObject([
      { name: "main", exitCode: 137, reason: "Error" },
    ]);
    expect(kube.cluster.kubelet.running).not.toContain(name);
  });

  it("leaves a pod alone while its emptyDir stays under the limit", async () => {
    const name = createPod({
      containers: [
        sh("main", "head -c 100000 /dev/zero > /scratch/small; sleep 0.5", {
          volumeMounts: [{ name: "scratch", mountPath: "/scratch" }],
        }),
      ],
      volumes: [{ name: "scratch", emptyDir: { sizeLimit: "1Mi" } }],
    });
    expect((await finished(name)).status.phase).toBe("Succeeded");
  });
});

describe("the fake kubelet: subPath mounts", () => {
  it("binds a subdirectory of the volume, created when missing: what one container writes in io/out another reads at its own mount", async () => {
    // The artifact pod's layout (runner/executors/kubernetes/ARTIFACTS.md), one emptyDir.
    const name = createPod({
      initContainers: [
        sh("fetch-inputs", "mkdir -p /reprise/io/in && echo input > /reprise/io/in/data", {
          volumeMounts: [{ name: "workspace", subPath: "io", mountPath: "/reprise/io" }],
        }),
      ],
      containers: [
        sh(
          "task",
          `ls -A /workspace
cat /reprise/in/data
echo x > /reprise/in/new && echo "wrote /reprise/in"
echo result > /reprise/out/result`,
          {
            volumeMounts: [
              { name: "workspace", subPath: "code", mountPath: "/workspace" },
              { name: "workspace", subPath: "io/in", mountPath: "/reprise/in", readOnly: true },
              { name: "workspace", subPath: "io/out", mountPath: "/reprise/out" },
            ],
          },
        ),
        sh(
          "store-outputs",
          `while [ ! -e /reprise/out/result ]; do sleep 0.05; done
cat /reprise/out/result
echo x > /reprise/out/more && echo "wrote /reprise/out"
ls -A /reprise`,
          {
            volumeMounts: [
              { name: "workspace", subPath: "io/out", mountPath: "/reprise/out", readOnly: true },
            ],
          },
        ),
      ],
      volumes: [{ name: "workspace", emptyDir: {} }],
    });
    const p = await finished(name);
    expect(p.status.phase).toBe("Succeeded");
    const task = log(name, "task") ?? "";
    // `code` did not exist: the kubelet made it, empty; `io/in` is the init container's.
    expect(task).toMatch(/^input\n/);
    expect(task).toMatch(/\/reprise\/in\/new: Read-only file system/);
    expect(task).not.toContain("wrote /reprise/in");
    const store = log(name, "store-outputs") ?? "";
    expect(store).toMatch(/^result\n/);
    expect(store).toMatch(/\/reprise\/out\/more: Read-only file system/);
    expect(store).not.toContain("wrote /reprise/out");
    // Only the subdirectory is bound: the rest of the volume is not in view.
    expect(store).toMatch(/\nout\n$/);
    const volume = join(kube.cluster.kubelet.podDir(p), "volumes/workspace");
    expect(readFileSync(join(volume, "io/out/result"), "utf8")).toBe("result\n");
    expect(existsSync(join(volume, "code"))).toBe(true);
  });

  it("binds a ConfigMap's key as a file with subPath, and expands subPathExpr from the container's env", async () => {
    kube.cluster.create("configmaps", {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: "one-file", namespace: NS } as KubeObject["metadata"],
      data: { "greeting.txt": "hello", "other.txt": "not shown" },
    });
    const name = createPod({
      containers: [
        sh("main", "ls -A /conf; cat /conf/greeting.txt; echo; echo mine > /data/file", {
          env: [{ name: "PART", value: "per-container" }],
          volumeMounts: [
            { name: "settings", subPath: "greeting.txt", mountPath: "/conf/greeting.txt" },
            { name: "data", subPathExpr: "$(PART)/sub", mountPath: "/data" },
          ],
        }),
      ],
      volumes: [
        { name: "settings", configMap: { name: "one-file" } },
        { name: "data", emptyDir: {} },
      ],
    });
    const p = await finished(name);
    expect(p.status.phase).toBe("Succeeded");
    expect(log(name, "main")).toBe("greeting.txt\nhello\n");
    const volume = join(kube.cluster.kubelet.podDir(p), "volumes/data");
    expect(readFileSync(join(volume, "per-container/sub/file"), "utf8")).toBe("mine\n");
  });

  it("refuses at create a subPath that leaves the volume, as the apiserver's validation does (422)", async () => {
    const container = (subPath: string, mountPath: string) => ({
      name: "main",
      image: "busybox:1",
      command: ["true"],
      volumeMounts: [{ name: "data", subPath, mountPath }],
    });
    const spec = {
      restartPolicy: "Never",
      containers: [container("../up", "/a"), container("/etc", "/b")],
      volumes: [{ name: "data", emptyDir: {} }],
    };
    const pod = await post(`/api/v1/namespaces/${NS}/pods`, {
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name: "escapes" },
      spec,
    });
    expect(pod.status).toBe(422);
    expect(pod.body).toMatchObject({ kind: "Status", reason: "Invalid", code: 422 });
    expect(pod.body.message).toContain(
      `spec.containers[0].volumeMounts[0].subPath: Invalid value: "../up": must not contain '..'`,
    );
    expect(pod.body.message).toContain(
      `spec.containers[1].volumeMounts[0].subPath: Invalid value: "/etc": must be a relative path`,
    );
    const job = await post(`/apis/batch/v1/namespaces/${NS}/jobs`, {
      apiVersion: "batch/v1",
      kind: "Job",
      metadata: { name: "escapes" },
      spec: { template: { spec: { ...spec, containers: [container("a/../../b", "/a")] } } },
    });
    expect(job.status).toBe(422);
    expect(job.body.message).toContain(
      `spec.template.spec.containers[0].volumeMounts[0].subPath: Invalid value: "a/../../b": must not contain '..'`,
    );
    expect(kube.cluster.store.get("pods", NS, "escapes")).toBeUndefined();
    expect(kube.cluster.store.get("jobs", NS, "escapes")).toBeUndefined();
  });

  it("does not start a container whose subPath is a symlink out of the volume (CreateContainerConfigError)", async () => {
    const name = createPod({
      initContainers: [
        sh("link", "ln -s /etc /data/link", {
          volumeMounts: [{ name: "data", mountPath: "/data" }],
        }),
      ],
      containers: [
        sh("main", "ls /data", {
          volumeMounts: [{ name: "data", subPath: "link/sub", mountPath: "/data" }],
        }),
      ],
      volumes: [{ name: "data", emptyDir: {} }],
    });
    await expect
      .poll(() => state(pod(name), "main").waiting, { timeout: 10_000, interval: 20 })
      .toEqual({
        reason: "CreateContainerConfigError",
        message: 'failed to prepare subPath for volumeMount "data" of container "main"',
      });
    expect(pod(name).status.phase).toBe("Pending");
    expect(log(name, "main")).toBeNull();
    // Nothing was made through the link on this machine.
    expect(existsSync("/etc/sub")).toBe(false);
    kube.cluster.delete("pods", NS, name);
    await expect
      .poll(() => kube.cluster.store.get("pods", NS, name), { timeout: 5_000 })
      .toBeUndefined();
  });

  it("counts what is written through a subPath against the emptyDir's sizeLimit", async () => {
    const name = createPod({
      containers: [
        sh("main", "head -c 3000000 /dev/zero > /reprise/out/big; sleep 30", {
          volumeMounts: [{ name: "workspace", subPath: "io/out", mountPath: "/reprise/out" }],
        }),
      ],
      volumes: [{ name: "workspace", emptyDir: { sizeLimit: "1Mi" } }],
    });
    const p = await finished(name);
    expect(p.status).toMatchObject({
      phase: "Failed",
      reason: "Evicted",
      message: 'Usage of EmptyDir volume "workspace" exceeds the limit "1Mi". ',
    });
  });
});

describe("the fake kubelet: a sidecar beside the task", () => {
  const volumes = [{ name: "shared", emptyDir: {} }];
  const mounts = { volumeMounts: [{ name: "shared", mountPath: "/shared" }] };
  /** A container that ends (with `code`) once the test releases it. */
  const sidecar = (code: number) =>
    sh(
      "sidecar",
      `while [ ! -e /shared/release ]; do sleep 0.05; done
printf "sidecar says ${code}" > /dev/termination-log
exit ${code}`,
      mounts,
    );
  const release = (name: string) =>
    writeFileSync(join(kube.cluster.kubelet.podDir(pod(name)), "volumes/shared/release"), "");

  it("keeps the pod Running while a sidecar outlives the task, then Succeeded, each container with its own status", async () => {
    const name = createPod({
      containers: [sh("task", "printf 'task done' > /dev/termination-log", mounts), sidecar(0)],
      volumes,
    });
    // The task's end is reported while the sidecar runs; the pod is Running, not Ready.
    await expect
      .poll(() => state(pod(name), "task").terminated?.reason, { timeout: 10_000, interval: 20 })
      .toBe("Completed");
    const running = pod(name);
    expect(running.status.phase).toBe("Running");
    expect(state(running, "sidecar").running).toBeDefined();
    expect(state(running, "task").terminated).toMatchObject({ exitCode: 0, message: "task done" });
    expect(running.status.conditions).toContainEqual(
      expect.objectContaining({
        type: "Ready",
        status: "False",
        reason: "ContainersNotReady",
        message: "containers with unready status: [task]",
      }),
    );
    release(name);
    const p = await finished(name);
    expect(p.status.phase).toBe("Succeeded");
    expect(terminated(p, "containerStatuses")).toMatchObject([
      { name: "task", exitCode: 0, reason: "Completed", message: "task done" },
      { name: "sidecar", exitCode: 0, reason: "Completed", message: "sidecar says 0" },
    ]);
  });

  it("fails the pod when the task fails, but only once the sidecar has ended too", async () => {
    const name = createPod({ containers: [sh("task", "exit 3", mounts), sidecar(0)], volumes });
    await expect
      .poll(() => state(pod(name), "task").terminated?.exitCode, { timeout: 10_000, interval: 20 })
      .toBe(3);
    expect(pod(name).status.phase).toBe("Running");
    release(name);
    const p = await finished(name);
    expect(p.status.phase).toBe("Failed");
    expect(terminated(p, "containerStatuses")).toMatchObject([
      { name: "task", exitCode: 3, reason: "Error" },
      { name: "sidecar", exitCode: 0, reason: "Completed", message: "sidecar says 0" },
    ]);
  });

  it("fails the pod when the sidecar fails after the task succeeded", async () => {
    const name = createPod({ containers: [sh("task", "true", mounts), sidecar(4)], volumes });
    await expect
      .poll(() => state(pod(name), "task").terminated?.exitCode, { timeout: 10_000, interval: 20 })
      .toBe(0);
    release(name);
    const p = await finished(name);
    expect(p.status.phase).toBe("Failed");
    expect(terminated(p, "containerStatuses")).toMatchObject([
      { name: "task", exitCode: 0, reason: "Completed" },
      { name: "sidecar", exitCode: 4, reason: "Error", message: "sidecar says 4" },
    ]);
  });

  it("sends SIGTERM to the sidecar on a graceful delete after the task ended", async () => {
    const name = createPod({
      containers: [
        sh("task", "true"),
        sh("sidecar", "trap 'echo got TERM; exit 0' TERM; echo up; sleep 30 & wait"),
      ],
    });
    await expect
      .poll(() => state(pod(name), "task").terminated?.exitCode, { timeout: 10_000, interval: 20 })
      .toBe(0);
    await expect.poll(() => log(name, "sidecar"), { timeout: 10_000 }).toBe("up\n");
    const before = pod(name);
    kube.cluster.delete("pods", NS, name);
    await expect
      .poll(() => kube.cluster.store.get("pods", NS, name), { timeout: 5_000 })
      .toBeUndefined();
    expect(kube.cluster.kubelet.log(before, "sidecar")).toBe("up\ngot TERM\n");
    expect(kube.cluster.kubelet.running).not.toContain(name);
  });

  it("ends a sidecar that outlives the task when the Job's activeDeadlineSeconds passes", async () => {
    kube.cluster.create("jobs", {
      apiVersion: "batch/v1",
      kind: "Job",
      metadata: { name: "deadline-sidecar", namespace: NS } as KubeObject["metadata"],
      spec: {
        backoffLimit: 0,
        activeDeadlineSeconds: 1,
        template: {
          spec: podSpec({ containers: [sh("task", "true"), sh("sidecar", "sleep 60")] }),
        },
      },
    });
    await expect
      .poll(
        () =>
          kube.cluster.store
            .get("jobs", NS, "deadline-sidecar")
            ?.status?.conditions?.find((c: { type: string }) => c.type === "Failed")?.reason,
        { timeout: 10_000, interval: 50 },
      )
      .toBe("DeadlineExceeded");
    // The controller deletes the pod; the kubelet ends the sidecar (SIGTERM) and the pod goes.
    await expect.poll(() => kube.podsOf(NS, "deadline-sidecar"), { timeout: 5_000 }).toEqual([]);
    expect(kube.cluster.kubelet.running.filter((n) => n.startsWith("deadline-sidecar"))).toEqual(
      [],
    );
  });
});

describe("the fake kubelet: the helper image and the network", () => {
  // Reprise's own image (the artifact helpers'), run here as the bundled CLI
  // (test/setup/cli-bundle.ts), which is in this machine's /tmp: no container sees it unbound.
  // A fake of its own: the bind's mount point shows in each container's /tmp.
  const HELPER_IMAGE = "reprise";
  const bundle = inject("cliBundle");
  let helperKube: FakeKube | undefined;
  afterAll(async () => {
    await helperKube?.close();
  });

  it("runs Reprise's helper image as the bundled CLI, with the container's args, from a read-only host path", async () => {
    if (!bundle || "error" in bundle) throw new Error(`no bundled CLI: ${JSON.stringify(bundle)}`);
    const cli = bundle.path;
    helperKube = await startFakeKube({
      namespace: NS,
      images: { [HELPER_IMAGE]: { command: ["node", "--enable-source-maps", cli] } },
      // The bundle resolves its packages through a link to the repository's node_modules,
      // which a clone under /tmp (CI's) would hide from the container: bound too.
      hostPaths: [
        { path: dirname(cli), readOnly: true },
        { path: realpathSync(join(ROOT, "node_modules")), readOnly: true },
      ],
    });
    const name = createPod(
      {
        containers: [
          { name: "helper", image: HELPER_IMAGE, args: ["--help"] },
          sh("check", `touch ${dirname(cli)}/new && echo "wrote the bundle's directory"; true`),
        ],
      },
      helperKube,
    );
    const p = await finished(name, helperKube);
    expect(p.status.phase).toBe("Succeeded");
    expect(log(name, "helper", helperKube)).toContain("pod-io fetch-inputs|store-outputs");
    expect(log(name, "check", helperKube)).toMatch(/Read-only file system/);
    expect(log(name, "check", helperKube)).not.toContain("wrote the bundle's directory");
  });

  it("reaches a server on this machine's loopback from a container (the machine's network)", async () => {
    const seen: string[] = [];
    const server = createServer((req, res) => {
      seen.push(req.url ?? "");
      res.end("hello from the loopback\n");
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    try {
      const { port } = server.address() as AddressInfo;
      const name = createPod({
        containers: [sh("main", `curl -sS --fail http://127.0.0.1:${port}/from-the-pod`)],
      });
      expect((await finished(name)).status.phase).toBe("Succeeded");
      expect(log(name, "main")).toBe("hello from the loopback\n");
      expect(seen).toEqual(["/from-the-pod"]);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
