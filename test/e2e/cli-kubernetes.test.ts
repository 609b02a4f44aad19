/**
 * The seed story through the real CLI with REPRISE_EXECUTOR=kubernetes: every task runs as a Job
 * on the fake kube-apiserver, reached through KUBECONFIG as a cluster would be. The CLI runs as a
 * child process (asynchronously: the fake cluster lives in this one). Task runs are counted on the
 * cluster's side: one Job per attempt.
 */
import { execFileSync, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LABELS } from "../../runner/executors/kubernetes/index.js";
import { cliArgs, ROOT } from "../fakes/cli.js";
import { type FakeKube, startFakeKube } from "../fakes/kube/index.js";

const NS = "reprise-story";

let work: string;
let repo: string;
let kube: FakeKube;
let env: NodeJS.ProcessEnv;
const created: Array<Record<string, string>> = [];

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), "reprise-kube-story-"));
  repo = join(work, "repo");
  execFileSync("bash", [join(ROOT, "test/fixtures/seed-pipeline-paths/make-story-repo.sh"), repo], {
    stdio: "ignore",
  });
  // The fixture's tasks pass their CSV files as paths under the OS temporary directory; every
  // pod has a /tmp of its own, so the fake shares that one folder with them, as a hostPath
  // volume would (until the artifacts issue replaces the fixture with the example itself).
  const seedData = join(tmpdir(), "reprise-seed-pipeline");
  mkdirSync(seedData, { recursive: true });
  // The first attempt of `prepare` is evicted while it runs: a system failure, retried.
  kube = await startFakeKube({
    namespace: "ignored-context-namespace",
    hostPaths: [seedData],
    faults: (pod) => {
      const labels = pod.metadata.labels ?? {};
      return labels[LABELS.node] === "prepare" && labels[LABELS.attempt] === "1"
        ? { kind: "disrupt", disruption: "evict", afterMs: 20 }
        : undefined;
    },
  });
  kube.cluster.store.subscribe((e) => {
    if (e.resource === "jobs" && e.type === "ADDED") created.push(e.object.metadata.labels ?? {});
  });
  env = { ...process.env, NODE_OPTIONS: "" };
  for (const k of Object.keys(env))
    if (k.startsWith("GIT_") || k.startsWith("REPRISE_")) delete env[k];
  delete env.DATABASE_URL;
  Object.assign(env, {
    REPRISE_DATA_DIR: join(work, "data"),
    REPRISE_MAX_PARALLEL: "2",
    REPRISE_EXECUTOR: "kubernetes",
    REPRISE_NAMESPACE: NS,
    KUBECONFIG: kube.kubeconfig,
  });
});
afterAll(async () => {
  await kube?.close();
  rmSync(work, { recursive: true, force: true });
});

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

function reprise(...args: string[]): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, cliArgs(...args), {
      cwd: repo,
      env,
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => {
      stdout += d;
    });
    child.stderr.on("data", (d) => {
      stderr += d;
    });
    child.once("error", reject);
    child.once("close", (code) => resolve({ code, stdout, stderr }));
  });
}

interface Doc {
  id: string;
  status: string;
  nodes: Array<{
    id: string;
    status: string;
    cache: string | null;
    attempts: number;
    error: { message: string } | null;
  }>;
  outputs: Record<string, unknown>;
}

function doc(r: Result): Doc {
  try {
    return JSON.parse(r.stdout) as Doc;
  } catch {
    throw new Error(`not a JSON document (exit ${r.code}):\n${r.stdout}\n${r.stderr}`);
  }
}

const byNode = (d: Doc) => Object.fromEntries(d.nodes.map((n) => [n.id, n]));

/** Jobs created per node of an execution (deleted ones too: a disrupted attempt's Job goes). */
function jobs(executionId: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const labels of created) {
    if (labels[LABELS.execution] !== executionId) continue;
    const node = labels[LABELS.node] as string;
    out[node] = (out[node] ?? 0) + 1;
  }
  return out;
}

describe("the seed story with REPRISE_EXECUTOR=kubernetes", () => {
  let first: Doc;
  let second: Doc;

  it("runs at `broken` as Jobs in REPRISE_NAMESPACE: an evicted prepare is retried, train fails for good, evaluate is skipped", async () => {
    const r = await reprise("run", "train", "--ref", "broken", "--json");
    expect(r.code, r.stderr).toBe(1);
    first = doc(r);
    const n = byNode(first);
    expect(n.prepare).toMatchObject({ status: "SUCCEEDED", cache: "POPULATED", attempts: 2 });
    expect(n.featurize).toMatchObject({ status: "SUCCEEDED", cache: "POPULATED" });
    // A user failure (exit 1) with retries: 0 is not retried.
    expect(n.train).toMatchObject({ status: "FAILED", attempts: 1 });
    expect(n.train?.error?.message).toMatch(
      /exited with code 1; last lines of the log:[\s\S]*train failed/,
    );
    expect(n.evaluate).toMatchObject({ status: "SKIPPED" });
    expect(jobs(first.id)).toEqual({ prepare: 2, featurize: 1, train: 1 });
  }, 120_000);

  it("relaunches at `fixed`: only train and evaluate run as Jobs", async () => {
    const r = await reprise("relaunch", first.id, "--ref", "fixed", "--json");
    expect(r.code, r.stderr).toBe(0);
    second = doc(r);
    expect(second.status).toBe("SUCCEEDED");
    expect(byNode(second).prepare?.cache).toBe("HIT");
    expect(jobs(second.id)).toEqual({ train: 1, evaluate: 1 });
    expect(Object.keys(second.outputs).sort()).toEqual(["loss", "model", "passed", "r2", "rmse"]);
  }, 120_000);

  it("relaunches at `reshaped`: only select and what reads it run", async () => {
    const r = await reprise("relaunch", second.id, "--ref", "reshaped", "--json");
    expect(r.code, r.stderr).toBe(0);
    expect(jobs(doc(r).id)).toEqual({ select: 1, train: 1, evaluate: 1 });
  }, 120_000);

  it("stops with exit 2 and says how to fix it when the kubeconfig cannot be read", async () => {
    const saved = env.KUBECONFIG;
    env.KUBECONFIG = join(work, "no-such-kubeconfig");
    try {
      const r = await reprise("run", "train", "--ref", "fixed");
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(
        /cannot read the kubeconfig file .*no-such-kubeconfig.*set KUBECONFIG/,
      );
    } finally {
      env.KUBECONFIG = saved;
    }
  }, 60_000);
});
