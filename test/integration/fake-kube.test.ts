/**
 * The fake cluster's kubelet itself (test/fakes/kube/): every pod has a filesystem of its own
 * (bubblewrap), its volumes mounted where the manifest says, its init containers run in order
 * before its containers, and an emptyDir over its sizeLimit gets it evicted. Pods are created
 * straight on the cluster object; the executor's tests reach the same kubelet over HTTP.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
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
  volumeMounts?: Array<{ name: string; mountPath: string; readOnly?: boolean }>;
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

function createPod(spec: Parameters<typeof podSpec>[0]): string {
  const name = `pod-${++seq}`;
  const created = kube.cluster.create("pods", {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name, namespace: NS } as KubeObject["metadata"],
    spec: podSpec(spec),
  });
  if (!created) throw new Error(`pod ${name} exists`);
  return name;
}

function pod(name: string): KubeObject {
  const found = kube.cluster.store.get("pods", NS, name);
  if (!found) throw new Error(`no pod ${name}`);
  return found;
}

async function finished(name: string): Promise<KubeObject> {
  await expect
    .poll(() => pod(name).status?.phase, { timeout: 10_000, interval: 20 })
    .toMatch(/^(Succeeded|Failed)$/);
  return pod(name);
}

function log(name: string, container: string): string | null {
  return kube.cluster.kubelet.log(pod(name), container);
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
