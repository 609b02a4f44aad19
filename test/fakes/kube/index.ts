/**
 * A fake Kubernetes cluster for tests and benchmarks: a kube-apiserver speaking real HTTP on
 * loopback (server.ts), the Job controller and garbage collector (cluster.ts) and a simulated
 * kubelet that runs pods as local processes (kubelet.ts). Clients reach it through the kubeconfig
 * file it writes, exactly as they would reach a cluster.
 */
import { execFile } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { mkdir, rename } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, dirname, isAbsolute, join } from "node:path";
import { promisify } from "node:util";
import { gitArchiveCheckout } from "../../../runner/sources/git-archive.js";
import { Cluster } from "./cluster.js";
import type {
  ContainerSpec,
  Disruption,
  Fault,
  HostPath,
  ImageConfig,
  Preparation,
} from "./kubelet.js";
import type { KubeObject } from "./objects.js";
import { FakeApiServer, type RecordedRequest } from "./server.js";

export type { Disruption, Fault, HostPath, ImageConfig } from "./kubelet.js";

const run = promisify(execFile);

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
  /**
   * How an image's entrypoint runs here, for containers that give no `command` (every image is
   * this machine's files; without an entry, a container must say its command).
   */
  images?: Record<string, ImageConfig>;
  /**
   * Directories of this machine every container sees at the same path, as if each pod mounted
   * them with `hostPath`: read-write for tests that share files with their tasks; read-only with
   * `{ path, readOnly: true }`, e.g. the bundled CLI's directory that an `images` entry runs
   * (`{ reprise: { command: ["node", BUNDLE] } }`), which is in this machine's /tmp, a directory
   * containers do not see.
   */
  hostPaths?: readonly HostPath[];
  /** Containers share this machine's pid namespace (`hostPID: true`), for tests that read pids. */
  hostPid?: boolean;
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
 * Where the fake stands in for the code host: the executor's `fetch-code` init container runs its
 * own script for real (sh, curl, tar, in the pod's filesystem), but the `file://` repository in
 * REPRISE_SOURCE_URL is a git work tree, not the commit's tarball that GitHub's tarball endpoint
 * serves. So, once per repository and SHA, the fake makes that tarball (the local executor's
 * `gitArchiveCheckout`, then tar: one top-level directory, as GitHub's), binds it read-only into
 * the container and points REPRISE_SOURCE_URL at it. A SHA the repository does not have gets a
 * URL to nothing, and curl fails as it would on GitHub's 404.
 */
function codeHost(root: string) {
  const tarballs = new Map<string, Promise<string | null>>();
  const tarball = (repo: string, sha: string) => {
    const name = `${createHash("sha256").update(repo).digest("hex").slice(0, 16)}-${sha}`;
    let made = tarballs.get(name);
    if (!made) {
      made = (async () => {
        try {
          const checkouts = join(root, "checkouts", name.slice(0, 16));
          const dir = await gitArchiveCheckout(repo, checkouts)(`file://${repo}`, sha);
          const out = join(root, "code", `${name}.tar.gz`);
          await mkdir(dirname(out), { recursive: true });
          await run("tar", ["-czf", `${out}.tmp`, "-C", dirname(dir), basename(dir)]);
          await rename(`${out}.tmp`, out);
          return out;
        } catch {
          return null;
        }
      })();
      tarballs.set(name, made);
    }
    return made.then((path) => ({ name, path }));
  };
  return async (_c: ContainerSpec, env: Record<string, string>): Promise<Preparation> => {
    const url = env.REPRISE_SOURCE_URL ?? "";
    const sha = env.REPRISE_GIT_SHA ?? "";
    if (!url.startsWith("file://") || !sha) return {};
    const { name, path } = await tarball(url.slice("file://".length), sha);
    const target = `/fake-kube/code/${name}.tar.gz`;
    return {
      env: { REPRISE_SOURCE_URL: `file://${target}` },
      binds: path ? [{ source: path, target, readOnly: true }] : [],
    };
  };
}

export async function startFakeKube(options: FakeKubeOptions = {}): Promise<FakeKube> {
  for (const entry of options.hostPaths ?? []) {
    const path = typeof entry === "string" ? entry : entry.path;
    if (!isAbsolute(path) || !statSync(path, { throwIfNoEntry: false })?.isDirectory()) {
      throw new Error(
        `startFakeKube: hostPaths entry ${JSON.stringify(path)} is not an existing directory: create it first (pods see it at the same absolute path)`,
      );
    }
  }
  const root = mkdtempSync(join(tmpdir(), "reprise-fake-kube-"));
  const token = randomBytes(16).toString("hex");
  // What an image's ENV would say: this machine's PATH; HOME and TMPDIR in the container's own
  // root (never this machine's).
  const imageEnv: Record<string, string> = { HOME: "/root", TMPDIR: "/tmp" };
  for (const name of ["PATH", "LANG", "TZ"]) {
    const v = process.env[name];
    if (v !== undefined) imageEnv[name] = v;
  }
  const cluster = new Cluster({
    root,
    prepare: codeHost(root),
    imageEnv,
    ...(options.images ? { images: options.images } : {}),
    ...(options.hostPaths ? { hostPaths: options.hostPaths } : {}),
    ...(options.hostPid ? { hostPid: true } : {}),
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
