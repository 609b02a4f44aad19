/**
 * The kubernetes executor against the fake kube-apiserver (test/fakes/kube), reached through a
 * kubeconfig file as a cluster would be: the Executor contract first, then what only this
 * executor does (the Job it creates, faults the kubelet injects, 409 adoption, 410 relists,
 * Background deletion, owner-reference garbage collection, re-attachment after a restart, the
 * Secrets a repository may name, masking of encoded secret values).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Job } from "kubernetes-models/batch/v1/Job";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { attemptName } from "../../core/engine/attempt-name.js";
import { localRepoKey } from "../../core/version/repo-key.js";
import {
  createKubernetesExecutor,
  type KubernetesExecutor,
  LABELS,
} from "../../runner/executors/kubernetes/index.js";
import type { SecretGrant } from "../../runner/executors/secret-grants.js";
import {
  AttemptError,
  type AttemptOutcome,
  type LaunchSpec,
} from "../../runner/executors/types.js";
import { tempRepo } from "../fakes/git-repo.js";
import { type FakeKube, type Fault, startFakeKube } from "../fakes/kube/index.js";
import { CONTRACT_FILES, type ExecutorHarness, executorContract } from "./executor-contract.js";

const NODE = process.execPath;
const NS = "reprise-tasks";

interface KubeSetup {
  kube: FakeKube;
  sha: string;
  repoKey: string;
  /** Shared with every pod (hostPaths). */
  scratch: string;
  executor(
    tuning?: Parameters<typeof createKubernetesExecutor>[0]["tuning"],
    secrets?: readonly SecretGrant[],
  ): KubernetesExecutor;
  spec(overrides: Partial<LaunchSpec>): LaunchSpec;
  /** Gives the next pods of this attempt a fault. */
  fault(handle: string, fault: Fault): void;
  cleanup(): Promise<void>;
}

async function kubeSetup(files: Record<string, string> = {}): Promise<KubeSetup> {
  const repo = tempRepo("reprise-kube-repo-");
  repo.write({ ...CONTRACT_FILES, ...files });
  const sha = repo.commit("tasks");
  const dataDir = mkdtempSync(join(tmpdir(), "reprise-kube-data-"));
  const scratch = mkdtempSync(join(tmpdir(), "reprise-kube-scratch-"));
  const faults = new Map<string, Fault>();
  // Every pod has a filesystem of its own: the contract's scratch directory is shared with them
  // as a hostPath would be, and the pods share this machine's pid namespace so the contract can
  // look for the processes they leave behind.
  const kube = await startFakeKube({
    namespace: NS,
    faults: (pod) => faults.get(pod.metadata.labels?.[LABELS.handle] ?? ""),
    hostPaths: [scratch],
    hostPid: true,
  });
  const executors: KubernetesExecutor[] = [];
  const repoKey = localRepoKey(repo.dir);
  return {
    kube,
    sha,
    repoKey,
    scratch,
    executor(tuning, secrets) {
      const executor = createKubernetesExecutor({
        kubeconfig: kube.kubeconfig,
        namespace: null,
        dataDir,
        ...(secrets ? { secrets } : {}),
        tuning: { pendingTimeoutSeconds: 1, terminationGracePeriodSeconds: 2, ...tuning },
      });
      executors.push(executor);
      return executor;
    },
    spec(overrides) {
      return {
        handle: attemptName("exec", "node", 1),
        repo: repoKey,
        sha,
        executionId: "exec",
        nodeId: "node",
        attempt: 1,
        taskName: "task",
        taskDigest: `sha256:${"d".repeat(64)}`,
        image: "node:20-slim",
        command: [NODE, "tasks/say.mjs", "0"],
        env: {},
        workdir: ".",
        inputs: {},
        outputs: {},
        timeoutSeconds: 60,
        secrets: {},
        ...overrides,
      };
    },
    fault(handle, fault) {
      faults.set(handle, fault);
    },
    async cleanup() {
      for (const executor of executors) await executor.close();
      await kube.close();
      rmSync(dataDir, { recursive: true, force: true });
      rmSync(scratch, { recursive: true, force: true });
      repo.remove();
    },
  };
}

describe("KubernetesExecutor", () => {
  executorContract("kubernetes", async () => {
    const k = await kubeSetup();
    const harness: ExecutorHarness = {
      executor: k.executor(),
      spec: (overrides) => k.spec(overrides),
      restart: async () => k.executor(),
      async killAttempt(handle) {
        // Someone else deletes the Job (and with it the pod): the attempt is gone.
        expect(k.kube.cluster.delete("jobs", NS, handle, "Background")).not.toBeNull();
      },
      scratch: k.scratch,
      cleanup: () => k.cleanup(),
    };
    return harness;
  });
});

describe("KubernetesExecutor, beyond the contract", () => {
  let k: KubeSetup;
  let executor: KubernetesExecutor;
  let seq = 0;
  beforeAll(async () => {
    k = await kubeSetup({
      // Writes argv[2] bytes into its working directory (the workspace), waits argv[3] ms, ends.
      "tasks/fill.mjs": `import { writeFileSync } from "node:fs";
writeFileSync("fill.bin", Buffer.alloc(Number(process.argv[2]), 1));
await new Promise((resolve) => setTimeout(resolve, Number(process.argv[3])));
writeFileSync(process.env.REPRISE_OUTPUTS, JSON.stringify({ done: true }));
`,
      "tasks/secret.mjs": `console.log("the token is " + process.env.API_TOKEN);\n`,
      "tasks/encode.sh": `printf %s "$API_TOKEN" | base64
printf 'x%s' "$API_TOKEN" | base64 | tr '+/' '-_'
printf %s "$API_TOKEN" | xxd -p
printf %s "$API_TOKEN" | od -An -tx1
"$NODE" -e 'console.log("url=" + encodeURIComponent(process.env.API_TOKEN))'
`,
    });
    executor = k.executor();
  });
  afterAll(() => k?.cleanup());

  function fresh(overrides: Partial<LaunchSpec> = {}): LaunchSpec {
    const executionId = `k${++seq}`;
    return k.spec({ executionId, handle: attemptName(executionId, "node", 1), ...overrides });
  }

  async function run(spec: LaunchSpec, on = executor): Promise<AttemptOutcome> {
    await on.launch(spec);
    return on.wait(spec);
  }

  function failure(outcome: AttemptOutcome) {
    if (outcome.ok) throw new Error("expected a failure, got success");
    return outcome.error;
  }

  function running(handle: string) {
    return expect
      .poll(() => k.kube.podsOf(NS, handle).some((p) => p.status?.phase === "Running"), {
        timeout: 10_000,
        interval: 20,
      })
      .toBe(true);
  }

  const count = (verb: string) => k.kube.requests.filter((r) => r.verb === verb).length;

  /**
   * Launches on an executor of its own and returns, in a box (an async function would wait for a
   * returned promise), the wait, once the task runs and the informers watch.
   */
  async function watched(spec: LaunchSpec) {
    const own = k.executor();
    const watches = count("watch");
    await own.launch(spec);
    const waiting = own.wait(spec);
    await running(spec.handle);
    await expect.poll(() => count("watch"), { timeout: 5_000 }).toBeGreaterThanOrEqual(watches + 2);
    return { waiting };
  }

  const objectsOf = (handle: string) => ({
    job: k.kube.cluster.store.get("jobs", NS, handle),
    configMap: k.kube.cluster.store.get("configmaps", NS, handle),
    secret: k.kube.cluster.store.get("secrets", NS, handle),
    pods: k.kube.podsOf(NS, handle),
  });

  it("creates one schema-valid Job per attempt, with its inputs ConfigMap and Secret owned by it", async () => {
    const spec = fresh({
      timeoutSeconds: 90,
      inputs: { n: 3 },
      secrets: { API_TOKEN: "t0ps3cret" },
      command: [NODE, "tasks/say.mjs", "0"],
    });
    expect((await run(spec)).ok).toBe(true);
    const { job, configMap, secret } = objectsOf(spec.handle);
    if (!job || !configMap || !secret) throw new Error("missing objects");
    expect(() => new Job(job as never).validate()).not.toThrow();
    expect(job.spec).toMatchObject({
      backoffLimit: 0,
      activeDeadlineSeconds: 90,
      ttlSecondsAfterFinished: 86_400,
      podFailurePolicy: {
        rules: [
          { action: "Ignore", onPodConditions: [{ type: "DisruptionTarget", status: "True" }] },
        ],
      },
      template: { spec: { restartPolicy: "Never" } },
    });
    expect(job.metadata.labels).toMatchObject({
      "app.kubernetes.io/managed-by": "reprise",
      [LABELS.execution]: spec.executionId,
      [LABELS.node]: "node",
      [LABELS.attempt]: "1",
      [LABELS.taskDigest]: "d".repeat(63),
    });
    const task = job.spec.template.spec.containers[0];
    expect(task).toMatchObject({
      terminationMessagePath: "/reprise/outputs.json",
      workingDir: "/workspace",
    });
    // The secret's value is in the Secret only, referenced by the pod.
    expect(JSON.stringify(job)).not.toContain("t0ps3cret");
    expect(task.env).toContainEqual({
      name: "API_TOKEN",
      valueFrom: { secretKeyRef: { name: spec.handle, key: "env.API_TOKEN" } },
    });
    expect(JSON.parse(configMap.data?.["inputs.json"] ?? "")).toEqual({ n: 3 });
    for (const owned of [configMap, secret]) {
      expect(owned.metadata.ownerReferences).toEqual([
        expect.objectContaining({ kind: "Job", name: spec.handle, uid: job.metadata.uid }),
      ]);
    }
  });

  it("masks the attempt's secret values in the log it keeps", async () => {
    const outcome = await run(
      fresh({ command: [NODE, "tasks/secret.mjs"], secrets: { API_TOKEN: "t0ps3cret" } }),
    );
    if (!outcome.ok) throw new Error(outcome.error.message);
    expect(await executor.logTail(outcome.logRef, 1000)).toBe("the token is ***\n");
  });

  it("masks the base64, hex and URL encodings of the attempt's secret values too", async () => {
    const value = "tok/with+special chars&=?-0123456789-abcdefghijklmnopqrstuvwxyz-ABCDEFGHIJ";
    const outcome = await run(
      fresh({
        command: ["/bin/sh", "tasks/encode.sh"],
        env: { NODE },
        secrets: { API_TOKEN: value },
      }),
    );
    if (!outcome.ok) throw new Error(outcome.error.message);
    const kept = (await executor.logTail(outcome.logRef, 64 * 1024)) ?? "";
    expect(kept).toContain("url=***");
    const b = Buffer.from(value);
    const compact = kept.replace(/\s+/g, "");
    for (const form of [
      b.toString("base64"),
      Buffer.from(`x${value}`).toString("base64url"),
      b.toString("hex"),
      encodeURIComponent(value),
    ])
      for (let i = 0; i + 12 <= form.length; i++)
        expect(compact).not.toContain(form.slice(i, i + 12));
  });

  it("refuses at launch a Secret REPRISE_KUBE_SECRETS does not allow for the repository: no Job", async () => {
    // The user's Secret exists in the namespace; another repository's spec names it.
    k.kube.cluster.create("secrets", {
      apiVersion: "v1",
      kind: "Secret",
      metadata: { name: "api", namespace: NS },
      stringData: { token: "the-api-token-9f8e7d" },
    } as never);
    const ref = { env: "API_TOKEN", secret: "api", key: "token" };
    for (const [grants, expected] of [
      [
        undefined,
        `task "task" cannot use its secrets on the kubernetes executor: Secret api (key token, as API_TOKEN) is not one REPRISE_KUBE_SECRETS allows: add api@${k.repoKey} to REPRISE_KUBE_SECRETS where reprise runs`,
      ],
      [
        [{ name: "api", repos: ["github.com/acme/ml"] }],
        `Secret api (key token, as API_TOKEN) is one REPRISE_KUBE_SECRETS allows only for github.com/acme/ml, not for ${k.repoKey}: add api@${k.repoKey} to REPRISE_KUBE_SECRETS if this repository may use it`,
      ],
    ] as const) {
      const on = k.executor({}, grants);
      const spec = fresh({ command: [NODE, "tasks/secret.mjs"], secretRefs: [ref] });
      const error = await on.launch(spec).then(
        () => null,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(AttemptError);
      expect((error as AttemptError).error).toMatchObject({ kind: "user", reason: "secrets" });
      expect((error as AttemptError).error.message).toContain(expected);
      expect(objectsOf(spec.handle).job).toBeUndefined();
    }
    // The repository it is allowed for gets it, resolved by the pod.
    const allowed = k.executor({}, [{ name: "api", repos: ["github.com/acme/ml", k.repoKey] }]);
    const spec = fresh({ command: [NODE, "tasks/secret.mjs"], secretRefs: [ref] });
    const outcome = await run(spec, allowed);
    if (!outcome.ok) throw new Error(outcome.error.message);
    expect(await allowed.logTail(outcome.logRef, 1000)).toBe("the token is the-api-token-9f8e7d\n");
  });

  it("reports OOMKilled as such, a user failure", async () => {
    const spec = fresh({ command: [NODE, "tasks/slow.mjs", "5000"] });
    k.fault(spec.handle, { kind: "oom", afterMs: 100 });
    const error = failure(await run(spec));
    expect(error).toMatchObject({ kind: "user", reason: "oom", exitCode: 137 });
    expect(error.message).toMatch(/^OOMKilled/);
  });

  it("fails a task that writes more than its resources.disk into the workspace as a user failure (disk)", async () => {
    const spec = fresh({
      command: [NODE, "tasks/fill.mjs", String(3 * 2 ** 20), "30000"],
      resources: { cpu: null, memory: null, disk: "1Mi" },
      outputs: { done: { type: "boolean" } },
    });
    const error = failure(await run(spec));
    expect(error).toEqual({
      kind: "user",
      reason: "disk",
      message:
        'evicted: the emptyDir volume "workspace" (what the code and the task put under /workspace) exceeded its limit of 1Mi, the task\'s resources.disk; raise resources.disk, or write less there',
    });
    // The Job failed by itself (no DisruptionTarget, backoffLimit 0): no second pod ran.
    // The verdict may come from the pod before the Job controller has written its own.
    await expect
      .poll(() => objectsOf(spec.handle).job?.status?.conditions, { timeout: 5_000 })
      .toContainEqual(expect.objectContaining({ type: "Failed", status: "True" }));
    const { pods } = objectsOf(spec.handle);
    expect(pods).toHaveLength(1);
    expect(pods[0]?.status).toMatchObject({ phase: "Failed", reason: "Evicted" });
  });

  it("lets a task that stays under its resources.disk succeed", async () => {
    const spec = fresh({
      command: [NODE, "tasks/fill.mjs", String(100 * 2 ** 10), "500"],
      resources: { cpu: null, memory: null, disk: "2Mi" },
      outputs: { done: { type: "boolean" } },
    });
    expect(await run(spec)).toMatchObject({ ok: true, outputs: { done: true } });
    expect(objectsOf(spec.handle).job?.spec?.template.spec?.volumes).toContainEqual({
      name: "workspace",
      emptyDir: { sizeLimit: "2Mi" },
    });
  });

  it.each([
    ["evict", "evicted", /TerminationByKubelet: The node was low on resource: memory/],
    ["preempt", "preempted", /PreemptionByScheduler/],
    ["node-loss", "node-lost", /DeletionByTaintManager/],
  ] as const)(
    "reports a pod disrupted by %s as a system failure (%s) with the Kubernetes reason, and stops the Job",
    async (kind, reason, message) => {
      const spec = fresh({ command: [NODE, "tasks/slow.mjs", "30000"] });
      await executor.launch(spec);
      const waiting = executor.wait(spec);
      await running(spec.handle);
      k.kube.disruptJob(NS, spec.handle, kind);
      const error = failure(await waiting);
      expect(error).toMatchObject({ kind: "system", reason });
      expect(error.message).toMatch(message);
      // The Job's own replacement pod (podFailurePolicy Ignore) does not run on behind the engine.
      await expect.poll(() => objectsOf(spec.handle).job, { timeout: 5_000 }).toBeUndefined();
      await expect.poll(() => objectsOf(spec.handle).pods.length, { timeout: 5_000 }).toBe(0);
    },
  );

  it("reports a pod deleted by someone else as a system failure", async () => {
    const spec = fresh({ command: [NODE, "tasks/slow.mjs", "30000"] });
    await executor.launch(spec);
    const waiting = executor.wait(spec);
    await running(spec.handle);
    const pod = k.kube.podsOf(NS, spec.handle)[0];
    k.kube.cluster.delete("pods", NS, pod?.metadata.name ?? "");
    const error = failure(await waiting);
    expect(error).toMatchObject({ kind: "system", reason: "pod-deleted" });
    expect(error.message).toContain(pod?.metadata.name);
  });

  it.each([
    [{ kind: "image-pull" } as Fault, /ImagePullBackOff: Back-off pulling image "node:20-slim"/],
    [{ kind: "unschedulable" } as Fault, /Unschedulable: 0\/1 nodes are available/],
  ])(
    "fails a pod stuck pending beyond the pending timeout (%o) as a system failure with the reason",
    async (fault, why) => {
      const spec = fresh();
      k.fault(spec.handle, fault);
      const error = failure(await run(spec));
      expect(error).toMatchObject({ kind: "system", reason: "pending" });
      expect(error.message).toMatch(/pending for more than 1s/);
      expect(error.message).toMatch(why);
      await expect.poll(() => objectsOf(spec.handle).job, { timeout: 5_000 }).toBeUndefined();
    },
  );

  it("waits out a pod that is pending for less than the pending timeout", async () => {
    const spec = fresh({
      command: [NODE, "tasks/slow.mjs", "0"],
      outputs: { done: { type: "boolean" } },
    });
    k.fault(spec.handle, { kind: "slow-pending", ms: 500 });
    expect(await run(spec)).toMatchObject({ ok: true, outputs: { done: true } });
  });

  it("fails an attempt whose code cannot be fetched as a system failure (fetch)", async () => {
    const error = failure(await run(fresh({ sha: "0".repeat(40) })));
    expect(error).toMatchObject({ kind: "system", reason: "fetch" });
    expect(error.message).toMatch(
      // curl's "couldn't read a file:// file": the fake's code host has no tarball of that SHA.
      /could not fetch the code: init container fetch-code exited with code 37/,
    );
    // The container's own words, from its log (terminationMessagePolicy FallbackToLogsOnError).
    expect(error.message).toMatch(/curl: \(37\)/);
  });

  it("adopts the Job of the same attempt on 409, and refuses loudly one that is not", async () => {
    const spec = fresh({
      command: [NODE, "tasks/slow.mjs", "0"],
      outputs: { done: { type: "boolean" } },
    });
    await k.executor().launch(spec);
    const second = k.executor();
    await second.launch(spec);
    expect(await second.wait(spec)).toMatchObject({ ok: true, outputs: { done: true } });
    expect(
      k.kube.requests.filter(
        (r) =>
          r.verb === "create" && r.resource === "jobs" && r.name === null && r.namespace === NS,
      ).length,
    ).toBeGreaterThanOrEqual(2);
    expect(k.kube.podsOf(NS, spec.handle)).toHaveLength(1);

    const other = { ...spec, executionId: "someone-else" };
    await expect(k.executor().launch(other)).rejects.toThrow(
      new RegExp(
        `a Job named "${spec.handle}" already exists in namespace "${NS}" and is not this attempt's \\(reprise.dev/execution="${spec.executionId}" \\(expected "someone-else"\\)\\)`,
      ),
    );
  });

  it("relists after its watch expires (410 Gone) and still sees the attempt end", async () => {
    const spec = fresh({
      command: [NODE, "tasks/slow.mjs", "800"],
      outputs: { done: { type: "boolean" } },
    });
    const { waiting } = await watched(spec);
    const lists = count("list");
    k.kube.expireWatches();
    expect(await waiting).toMatchObject({ ok: true, outputs: { done: true } });
    expect(count("list")).toBeGreaterThan(lists);
  });

  it("resumes watching from where it was when a watch ends, without relisting", async () => {
    const spec = fresh({
      command: [NODE, "tasks/slow.mjs", "600"],
      outputs: { done: { type: "boolean" } },
    });
    const { waiting } = await watched(spec);
    const [lists, watches] = [count("list"), count("watch")];
    k.kube.closeWatches();
    expect(await waiting).toMatchObject({ ok: true, outputs: { done: true } });
    expect(count("list")).toBe(lists);
    expect(count("watch")).toBeGreaterThan(watches);
  });

  it("starts its watches again after the apiserver refuses them, and still sees the attempt end", async () => {
    const spec = fresh({
      command: [NODE, "tasks/slow.mjs", "800"],
      outputs: { done: { type: "boolean" } },
    });
    const { waiting } = await watched(spec);
    k.kube.failNextWatches(2);
    k.kube.closeWatches();
    expect(await waiting).toMatchObject({ ok: true, outputs: { done: true } });
  });

  it("reports a pod that never started before the deadline as pending (system), not a timeout", async () => {
    const patient = k.executor({ pendingTimeoutSeconds: 60 });
    const spec = fresh({ timeoutSeconds: 1 });
    k.fault(spec.handle, { kind: "image-pull" });
    const error = failure(await run(spec, patient));
    expect(error).toMatchObject({ kind: "system", reason: "pending" });
    expect(error.message).toMatch(/never started within the 1s deadline: task: ImagePullBackOff/);
  });

  it("aborts by deleting the Job with Background propagation: pod, ConfigMap and Secret go with it", async () => {
    const spec = fresh({
      command: [NODE, "tasks/slow.mjs", "30000"],
      secrets: { API_TOKEN: "xyz" },
    });
    await executor.launch(spec);
    const waiting = executor.wait(spec);
    await running(spec.handle);
    await executor.abort(spec.handle);
    expect(failure(await waiting)).toMatchObject({ kind: "user", reason: "aborted" });
    const deletes = k.kube.requests.filter((r) => r.verb === "delete" && r.name === spec.handle);
    expect(deletes).toHaveLength(1);
    await expect
      .poll(
        () => {
          const o = objectsOf(spec.handle);
          return [o.job, o.configMap, o.secret, o.pods.length];
        },
        { timeout: 5_000 },
      )
      .toEqual([undefined, undefined, undefined, 0]);
  });

  it("the fake, like the API, orphans a Job's pods when deleted without a propagation policy", async () => {
    const spec = fresh({ command: [NODE, "tasks/slow.mjs", "30000"] });
    await executor.launch(spec);
    await running(spec.handle);
    k.kube.cluster.delete("jobs", NS, spec.handle);
    await expect
      .poll(() => k.kube.podsOf(NS, spec.handle)[0]?.metadata.ownerReferences ?? null, {
        timeout: 5_000,
      })
      .toEqual([]);
    expect(k.kube.podsOf(NS, spec.handle)[0]?.status?.phase).toBe("Running");
    for (const pod of k.kube.podsOf(NS, spec.handle))
      k.kube.cluster.delete("pods", NS, pod.metadata.name);
  });

  it("keeps the log after ttlSecondsAfterFinished removed the Job and everything it owned", async () => {
    const short = k.executor({ ttlSecondsAfterFinished: 1 });
    const spec = fresh({ command: [NODE, "tasks/say.mjs", "0"] });
    const outcome = await run(spec, short);
    if (!outcome.ok) throw new Error(outcome.error.message);
    await expect
      .poll(
        () => {
          const o = objectsOf(spec.handle);
          return [o.job, o.configMap, o.pods.length];
        },
        { timeout: 10_000 },
      )
      .toEqual([undefined, undefined, 0]);
    expect(await k.executor().logTail(outcome.logRef, 1000)).toContain("out 1\nerr 2\nout 3\n");
  });

  it("re-attaches after a restart without launching again: one Job, one pod", async () => {
    const spec = fresh({
      command: [NODE, "tasks/slow.mjs", "600"],
      outputs: { done: { type: "boolean" } },
    });
    const first = k.executor();
    await first.launch(spec);
    await first.close();
    const second = k.executor();
    await second.launch(spec);
    expect(await second.wait(spec)).toMatchObject({ ok: true, outputs: { done: true } });
    expect(k.kube.podsOf(NS, spec.handle)).toHaveLength(1);
  });

  it("costs two writes per plain attempt and reads nothing of it but its log: no polling", async () => {
    const spec = fresh({
      command: [NODE, "tasks/slow.mjs", "300"],
      outputs: { done: { type: "boolean" } },
    });
    const before = k.kube.requests.length;
    expect((await run(spec)).ok).toBe(true);
    const mine = k.kube.requests
      .slice(before)
      .filter((r) => r.namespace === NS && r.verb !== "watch" && r.verb !== "list");
    expect(mine.map((r) => `${r.verb} ${r.resource}`).sort()).toEqual([
      "create configmaps",
      "create jobs",
      "log pods",
    ]);
  });
});
