/**
 * A fake Kubernetes cluster for tests and benchmarks: a kube-apiserver speaking real HTTP on
 * loopback (server.ts), the Job controller and garbage collector (cluster.ts) and a simulated
 * kubelet that runs pods as local processes (kubelet.ts). Clients reach it through the kubeconfig
 * file it writes, exactly as they would reach a cluster.
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gitArchiveCheckout } from "../../../runner/executors/local/checkout.js";
import { Cluster } from "./cluster.js";
import type { ContainerSpec, Disruption, Fault, InitResult } from "./kubelet.js";
import type { KubeObject } from "./objects.js";
import { FakeApiServer, type RecordedRequest } from "./server.js";

export type { Disruption, Fault } from "./kubelet.js";
export type { KubeObject } from "./objects.js";
export type { RecordedRequest } from "./server.js";

export interface FakeKubeOptions {
  /** The kubeconfig context's namespace. */
  namespace?: string;
  /** Added to every create request. */
  createLatencyMs?: number;
  faults?: (pod: KubeObject) => Fault | undefined;
  /** Caps pods' termination grace period (default 2 s). */
  maxGraceSeconds?: number;
  /** Containers end at once with exit 0, running nothing (see KubeletOptions.instant). */
  instantContainers?: boolean;
}

export interface FakeKube {
  url: string;
  /** Path of a kubeconfig file for this cluster. */
  kubeconfig: string;
  cluster: Cluster;
  requests: RecordedRequest[];
  /** Sets the fault (or none) each new pod gets. */
  setFaults(faults: ((pod: KubeObject) => Fault | undefined) | undefined): void;
  /** Pods owned by a Job, oldest first. */
  podsOf(namespace: string, job: string): KubeObject[];
  /** Disrupts the running pod of a Job. */
  disruptJob(namespace: string, job: string, kind: Disruption): void;
  /** Compacts history and ends every watch with 410 Gone. */
  expireWatches(): void;
  /** Ends every watch cleanly (a watch timeout). */
  closeWatches(): void;
  /** Answers the next `count` watch requests with HTTP 500. */
  failNextWatches(count: number): void;
  readonly openWatches: number;
  close(): Promise<void>;
}

/**
 * The init containers the fake understands: the executor's code fetcher, emulated by checking the
 * `file://` repository in REPRISE_SOURCE_URL out at REPRISE_GIT_SHA (one checkout per SHA, shared
 * by the pods at that SHA, like the local executor's) into the container's first volume mount.
 */
function codeFetcher(checkouts: string) {
  return async (c: ContainerSpec, env: Record<string, string>): Promise<InitResult> => {
    const url = env.REPRISE_SOURCE_URL ?? "";
    const sha = env.REPRISE_GIT_SHA ?? "";
    const mount = c.volumeMounts?.[0];
    if (!url.startsWith("file://") || !mount) {
      return {
        exitCode: 1,
        log: `fake kubelet: cannot fetch ${JSON.stringify(url)} in this test cluster\n`,
      };
    }
    try {
      const dir = await gitArchiveCheckout(url.slice("file://".length), checkouts)(url, sha);
      return { exitCode: 0, log: `fetched ${url} at ${sha}\n`, volumes: { [mount.name]: dir } };
    } catch (e) {
      return { exitCode: 1, log: `${(e as Error).message}\n` };
    }
  };
}

export async function startFakeKube(options: FakeKubeOptions = {}): Promise<FakeKube> {
  const root = mkdtempSync(join(tmpdir(), "reprise-fake-kube-"));
  const token = randomBytes(16).toString("hex");
  const imageEnv: Record<string, string> = {};
  for (const name of ["PATH", "HOME", "LANG", "TZ"]) {
    const v = process.env[name];
    if (v !== undefined) imageEnv[name] = v;
  }
  const cluster = new Cluster({
    root,
    init: codeFetcher(join(root, "checkouts")),
    imageEnv,
    maxGraceSeconds: options.maxGraceSeconds ?? 2,
    instant: options.instantContainers ?? false,
    ...(options.faults ? { faults: options.faults } : {}),
  });
  const server = new FakeApiServer(cluster, {
    token,
    ...(options.createLatencyMs ? { createLatencyMs: options.createLatencyMs } : {}),
  });
  const url = await server.listen();
  const kubeconfig = join(root, "kubeconfig");
  writeFileSync(
    kubeconfig,
    JSON.stringify({
      apiVersion: "v1",
      kind: "Config",
      // client-node 1.4 refuses a plain http:// server unless TLS verification is off for it.
      clusters: [{ name: "fake", cluster: { server: url, "insecure-skip-tls-verify": true } }],
      users: [{ name: "fake", user: { token } }],
      contexts: [
        {
          name: "fake",
          context: { cluster: "fake", user: "fake", namespace: options.namespace ?? "default" },
        },
      ],
      "current-context": "fake",
    }),
  );
  const podsOf = (namespace: string, job: string) =>
    cluster.store
      .list("pods", namespace, (p) => p.metadata.labels?.["job-name"] === job)
      .sort((a, b) => Number(a.metadata.resourceVersion) - Number(b.metadata.resourceVersion));
  return {
    url,
    kubeconfig,
    cluster,
    requests: server.requests,
    setFaults(faults) {
      cluster.kubelet.faults = faults;
    },
    podsOf,
    disruptJob(namespace, job, kind) {
      const pod = podsOf(namespace, job).find((p) => !p.metadata.deletionTimestamp);
      if (!pod) throw new Error(`no pod of Job ${namespace}/${job}`);
      cluster.kubelet.disrupt(namespace, pod.metadata.name, kind);
    },
    expireWatches: () => server.expireWatches(),
    closeWatches: () => server.closeWatches(),
    failNextWatches: (count) => server.failNextWatches(count),
    get openWatches() {
      return server.openWatches;
    },
    async close() {
      cluster.close();
      await server.close();
      rmSync(root, { recursive: true, force: true });
    },
  };
}
