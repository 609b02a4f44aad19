/**
 * The kubernetes executor against the fake kube-apiserver (docs/design.md section 13; issue 6). The
 * fake runs in a process of its own (test/fakes/kube/serve.ts), as an apiserver would, with
 * BENCH_KUBE_CREATE_MS (5 ms by default) added to each create to stand in for etcd, and with
 * containers that end at once (500 real processes on two cores would measure the machine).
 *
 * - Burst: 500 attempts launched at once and waited for. From the fake's own request log: writes
 *   per attempt (target at most 4), reads of the attempt's own Job or pod (polling; target 0:
 *   status comes from two watch streams shared by all attempts), requests per attempt in all.
 *   The time until every launch() returned, against the floor of the same objects created
 *   straight with fetch at the same concurrency (target at most 1.5x).
 * - Scheduling overhead: 50 launches one at a time, the median launch() (two creates in a row:
 *   the Job, then its inputs ConfigMap) against the fake's own create latency measured server-side
 *   in the same run (target at most 3x).
 * - From the pod's end (the kubelet's finishedAt) to the wait resolving (watch delivery, the
 *   verdict, one log read), one attempt at a time, against a bare log read (target at most 20x);
 *   the same in the burst is printed, not judged (it is mostly queueing behind 500 launches).
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { pathToFileURL } from "node:url";
import { CoreV1Api, KubeConfig, type V1Pod } from "@kubernetes/client-node";
import { attemptName } from "../core/engine/attempt-name.js";
import { localRepoKey } from "../core/version/repo-key.js";
import {
  attemptObjects,
  createKubernetesExecutor,
  DEFAULT_FETCH_IMAGE,
  LABELS,
} from "../runner/executors/kubernetes/index.js";
import type { LaunchSpec } from "../runner/executors/types.js";
import { tempRepo } from "../test/fakes/git-repo.js";
import type { RecordedRequest } from "../test/fakes/kube/index.js";
import type { Row } from "./lib.js";

const ATTEMPTS = Number(process.env.BENCH_KUBE_ATTEMPTS ?? 500);
const SEQUENTIAL = 50;
const CREATE_MS = Number(process.env.BENCH_KUBE_CREATE_MS ?? 5);
const NS = "bench";
const MANIFEST = {
  namespace: NS,
  fetchImage: DEFAULT_FETCH_IMAGE,
  ttlSecondsAfterFinished: 86_400,
  terminationGracePeriodSeconds: 30,
};

export async function benchKubernetes(): Promise<Row[]> {
  const repo = tempRepo("reprise-bench-kube-");
  repo.write({ "README.md": "bench\n" });
  const sha = repo.commit("bench");
  const dataDir = mkdtempSync(join(tmpdir(), "reprise-bench-kube-data-"));
  const kube = await serveFake({
    namespace: NS,
    createLatencyMs: CREATE_MS,
    instantContainers: true,
  });
  const executor = createKubernetesExecutor({
    kubeconfig: kube.kubeconfig,
    namespace: NS,
    dataDir,
  });
  const kc = new KubeConfig();
  kc.loadFromFile(kube.kubeconfig);
  const core = kc.makeApiClient(CoreV1Api);
  const spec = (execution: string, i: number): LaunchSpec => ({
    handle: attemptName(execution, `n${i}`, 1),
    repo: localRepoKey(repo.dir),
    sha,
    executionId: execution,
    nodeId: `n${i}`,
    attempt: 1,
    taskName: "noop",
    taskDigest: `sha256:${"b".repeat(64)}`,
    image: "busybox:1.37",
    command: ["true"],
    env: {},
    workdir: ".",
    inputs: {},
    outputs: {},
    timeoutSeconds: 600,
    secrets: {},
  });
  try {
    // Unmeasured: the checkout of the SHA, the informers' first list, connections.
    const warm = spec("ewarm", 0);
    await executor.launch(warm);
    await executor.wait(warm);

    // Burst.
    const burst = Array.from({ length: ATTEMPTS }, (_, i) => spec("eburst", i));
    const before = (await kube.requests()).length;
    const resolvedAt = new Map<string, number>();
    let launchedAll = 0;
    let launched = 0;
    const started = performance.now();
    const outcomes = await Promise.all(
      burst.map(async (s) => {
        await executor.launch(s);
        if (++launched === ATTEMPTS) launchedAll = performance.now() - started;
        const outcome = await executor.wait(s);
        resolvedAt.set(s.handle, Date.now());
        return outcome;
      }),
    );
    const burstMs = performance.now() - started;
    const failed = outcomes.filter((o) => !o.ok);
    if (failed.length > 0) {
      const first = failed[0] as { error: { message: string } };
      throw new Error(
        `${failed.length} of ${ATTEMPTS} attempts failed, e.g.: ${first.error.message}`,
      );
    }
    const burstRequests = (await kube.requests()).slice(before);
    const shared = burstRequests.filter((r) => r.verb === "list" || r.verb === "watch").length;
    const perAttempt = burstRequests.filter((r) => r.verb !== "list" && r.verb !== "watch");
    const writes = perAttempt.filter((r) => r.verb === "create" || r.verb === "delete").length;
    const polls = perAttempt.filter(
      (r) => r.verb === "get" && (r.resource === "jobs" || r.resource === "pods"),
    ).length;

    // Pod end to outcome, in the burst.
    const pods = new Map<string, V1Pod>();
    const listed = await core.listNamespacedPod({ namespace: NS, labelSelector: LABELS.handle });
    for (const pod of listed.items) pods.set(pod.metadata?.labels?.[LABELS.handle] ?? "", pod);
    const lagMs: number[] = [];
    for (const s of burst) {
      const end = pods.get(s.handle)?.status?.containerStatuses?.[0]?.state?.terminated?.finishedAt;
      const at = resolvedAt.get(s.handle);
      if (end && at) lagMs.push(at - new Date(end).getTime());
    }
    const podName = pods.get(burst[0]?.handle ?? "")?.metadata?.name ?? "";
    const logReads: number[] = [];
    for (let i = 0; i < SEQUENTIAL; i++) {
      const t = performance.now();
      await core.readNamespacedPodLog({ name: podName, namespace: NS, container: "task" });
      logReads.push(performance.now() - t);
    }

    // The floor of the burst's launches: the same objects created straight, all at once.
    const floorStarted = performance.now();
    await Promise.all(
      Array.from({ length: ATTEMPTS }, async (_, i) => {
        const o = attemptObjects(spec("efloor", i), { url: localRepoKey(repo.dir) }, MANIFEST);
        await kube.create("apis/batch/v1", "jobs", o.job);
        await kube.create("api/v1", "configmaps", o.configMap);
      }),
    );
    const floorMs = performance.now() - floorStarted;

    // One attempt at a time: launch against the fake's own create latency, pod end to outcome.
    const seqBefore = (await kube.requests()).length;
    const launchMs: number[] = [];
    const quietLagMs: number[] = [];
    for (let i = 0; i < SEQUENTIAL; i++) {
      const s = spec("eseq", i);
      const t = performance.now();
      await executor.launch(s);
      launchMs.push(performance.now() - t);
      await executor.wait(s);
      const at = Date.now();
      const pod = await core.listNamespacedPod({
        namespace: NS,
        labelSelector: `${LABELS.handle}=${s.handle}`,
      });
      const end = pod.items[0]?.status?.containerStatuses?.[0]?.state?.terminated?.finishedAt;
      if (end) quietLagMs.push(at - new Date(end).getTime());
    }
    const createMs = median(
      (await kube.requests())
        .slice(seqBefore)
        .filter((r) => r.verb === "create")
        .map((r) => r.ms),
    );

    process.stderr.write(
      `kubernetes: ${ATTEMPTS} attempts launched in ${(launchedAll / 1000).toFixed(2)} s, all outcomes in ${(burstMs / 1000).toFixed(2)} s; ${burstRequests.length} requests, ${shared} of them list/watch shared by all\n`,
    );
    const launchMedian = median(launchMs);
    const lagMedian = median(quietLagMs);
    process.stderr.write(
      `kubernetes: pod end to outcome, median ${median(lagMs).toFixed(0)} ms in the burst, ${lagMedian.toFixed(1)} ms one at a time\n`,
    );
    const logRead = median(logReads);
    return [
      {
        figure: `kubernetes: writes per attempt (${ATTEMPTS} at once)`,
        value: writes / ATTEMPTS,
        peer: "target",
        peerValue: 4,
        target: "<= 4",
        met: writes / ATTEMPTS <= 4,
        unit: "req",
      },
      {
        figure: "kubernetes: Job/pod reads per attempt (polling)",
        value: polls / ATTEMPTS,
        peer: "all requests per attempt",
        peerValue: perAttempt.length / ATTEMPTS,
        target: "0",
        met: polls === 0,
        unit: "req",
      },
      {
        figure: `kubernetes: ${ATTEMPTS} launches at once, until all returned`,
        value: launchedAll,
        peer: "same objects created raw",
        peerValue: floorMs,
        target: "<= 1.5x",
        met: launchedAll <= 1.5 * floorMs,
      },
      {
        figure: "kubernetes: one launch (2 creates), median",
        value: launchMedian,
        peer: "fake create latency",
        peerValue: createMs,
        target: "<= 3x",
        met: launchMedian <= 3 * createMs,
      },
      {
        figure: "kubernetes: pod end to outcome, one at a time, median",
        value: lagMedian,
        peer: "one log read",
        peerValue: logRead,
        target: "<= 20x",
        met: lagMedian <= 20 * logRead,
      },
    ];
  } finally {
    await executor.close();
    await kube.stop();
    rmSync(dataDir, { recursive: true, force: true });
    repo.remove();
  }
}

function median(values: number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] as number;
}

interface ServedFake {
  kubeconfig: string;
  requests(): Promise<RecordedRequest[]>;
  /** POSTs an object with a plain fetch (keep-alive), as the floor of what a client can do. */
  create(api: string, plural: string, body: object): Promise<void>;
  stop(): Promise<void>;
}

/** Starts test/fakes/kube/serve.ts in a child process (through tsx) and reads its first line. */
async function serveFake(options: object): Promise<ServedFake> {
  const root = join(import.meta.dirname, "..");
  const tsx = pathToFileURL(join(root, "node_modules/tsx/dist/loader.mjs")).href;
  const child = spawn(
    process.execPath,
    ["--import", tsx, join(root, "test/fakes/kube/serve.ts"), JSON.stringify(options)],
    { stdio: ["pipe", "pipe", "inherit"] },
  );
  const lines = createInterface(child.stdout);
  const first = await new Promise<string>((resolve, reject) => {
    lines.once("line", resolve);
    child.once("exit", (code) => reject(new Error(`the fake kube-apiserver exited (${code})`)));
  });
  const served = JSON.parse(first) as { kubeconfig: string; url: string; token: string };
  return {
    kubeconfig: served.kubeconfig,
    async requests() {
      const res = await fetch(`${served.url}/fake/requests`, {
        headers: { authorization: `Bearer ${served.token}` },
      });
      return (await res.json()) as RecordedRequest[];
    },
    async create(api, plural, body) {
      const res = await fetch(`${served.url}/${api}/namespaces/${NS}/${plural}`, {
        method: "POST",
        headers: { authorization: `Bearer ${served.token}`, "content-type": "application/json" },
        body: JSON.stringify(body),
      });
      if (res.status !== 201)
        throw new Error(`floor create: HTTP ${res.status}: ${await res.text()}`);
    },
    stop: () =>
      new Promise<void>((resolve) => {
        child.once("exit", () => resolve());
        child.stdin.end();
      }),
  };
}
