/**
 * The kubernetes executor's pure parts: what an attempt's objects look like (manifests.ts) and how
 * the Job and pods it reads become a verdict (classify.ts), for the cases a live cluster rarely
 * shows in a test: a Job whose pod is gone, a pod ended before its Job says so, an old-style
 * eviction, timestamps as strings and as Dates.
 */
import type { V1Job, V1Pod } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import { type AttemptFacts, classify } from "../../runner/executors/kubernetes/classify.js";
import { attemptObjects, labelValue } from "../../runner/executors/kubernetes/manifests.js";
import type { LaunchSpec } from "../../runner/executors/types.js";

const spec: LaunchSpec = {
  handle: "e1-train-1",
  repo: "github.com/acme/models",
  sha: "a".repeat(40),
  executionId: "e1",
  nodeId: "train",
  attempt: 1,
  taskName: "train",
  taskDigest: `sha256:${"d".repeat(64)}`,
  image: "python:3.12-slim",
  command: ["python", "train.py"],
  env: { MODE: "fast", REPRISE_NODE_ID: "forged" },
  workdir: "./models/../models",
  inputs: { "learning-rate": 0.1 },
  outputs: {},
  timeoutSeconds: 600,
  secrets: { MODE: "s3cret" },
};

const options = {
  namespace: "tasks",
  fetchImage: "curl",
  ttlSecondsAfterFinished: 60,
  terminationGracePeriodSeconds: 10,
};

describe("attemptObjects", () => {
  it("takes the task's resources, names its Secrets by reference, and labels the cache key", () => {
    const key = `sha256:${"c".repeat(64)}`;
    const { job } = attemptObjects(
      {
        ...spec,
        secrets: {},
        resources: { cpu: "2", memory: "4Gi", disk: null },
        secretRefs: [{ env: "DB_PASSWORD", secret: "warehouse", key: "password" }],
        cacheKey: key,
      },
      { url: "https://x/tarball" },
      { ...options, resources: { cpu: "100m", memory: "128Mi" } },
    );
    const container = job.spec?.template.spec?.containers[0];
    expect(container?.resources).toEqual({
      requests: { cpu: "2", memory: "4Gi" },
      limits: { memory: "4Gi" },
    });
    const password = container?.env?.find((e) => e.name === "DB_PASSWORD");
    expect(password).toEqual({
      name: "DB_PASSWORD",
      valueFrom: { secretKeyRef: { name: "warehouse", key: "password" } },
    });
    expect(job.metadata?.labels?.["reprise.dev/cache-key"]).toBe("c".repeat(63));
    expect(job.metadata?.annotations?.["reprise.dev/cache-key"]).toBe(key);
    // Without the task's own, the executor's default applies.
    const plain = attemptObjects(
      spec,
      { url: "https://x/tarball" },
      { ...options, resources: { memory: "128Mi" } },
    );
    expect(plain.job.spec?.template.spec?.containers[0]?.resources).toEqual({
      requests: { memory: "128Mi" },
      limits: { memory: "128Mi" },
    });
  });

  it("gives the workspace emptyDir the task's resources.disk as its sizeLimit, and none without", () => {
    const volumesOf = (resources: LaunchSpec["resources"]) =>
      attemptObjects({ ...spec, ...(resources ? { resources } : {}) }, { url: "x" }, options).job
        .spec?.template.spec?.volumes;
    const limited = volumesOf({ cpu: null, memory: "1Gi", disk: "10Gi" });
    expect(limited?.find((v) => v.name === "workspace")).toEqual({
      name: "workspace",
      emptyDir: { sizeLimit: "10Gi" },
    });
    for (const unlimited of [
      volumesOf({ cpu: null, memory: "1Gi", disk: null }),
      volumesOf(undefined),
    ])
      expect(unlimited?.find((v) => v.name === "workspace")).toEqual({
        name: "workspace",
        emptyDir: {},
      });
    // The limit is the volume's alone: no ephemeral-storage request or limit on any container.
    const { job } = attemptObjects(
      { ...spec, resources: { cpu: null, memory: null, disk: "10Gi" } },
      { url: "x" },
      options,
    );
    expect(JSON.stringify(job)).not.toContain("ephemeral-storage");
  });

  it("layers the env as every executor does: task env < secrets < inputs < the REPRISE_* contract", () => {
    const { job } = attemptObjects(spec, { url: "https://x/tarball" }, options);
    const env = job.spec?.template.spec?.containers[0]?.env ?? [];
    const byName = Object.fromEntries(env.map((e) => [e.name, e]));
    expect(env.filter((e) => e.name === "MODE")).toHaveLength(1);
    expect(byName.MODE?.valueFrom?.secretKeyRef).toEqual({ name: "e1-train-1", key: "env.MODE" });
    expect(byName.REPRISE_NODE_ID?.value).toBe("train");
    expect(byName.REPRISE_INPUT_LEARNING_RATE?.value).toBe("0.1");
    expect(job.spec?.template.spec?.containers[0]?.workingDir).toBe("/workspace/models");
  });

  it("puts the fetch token in the Secret, mounted for the init container only", () => {
    const { job, secret } = attemptObjects(spec, { url: "https://x", token: "ghs_abc" }, options);
    expect(secret?.stringData).toEqual({ "fetch-token": "ghs_abc", "env.MODE": "s3cret" });
    const pod = job.spec?.template.spec;
    expect(pod?.initContainers?.[0]?.volumeMounts?.map((m) => m.name)).toEqual([
      "workspace",
      "credentials",
    ]);
    expect(pod?.containers[0]?.volumeMounts?.map((m) => m.name)).toEqual(["workspace", "inputs"]);
    expect(JSON.stringify(job)).not.toContain("ghs_abc");
  });

  it("makes no Secret for an attempt without secrets or token", () => {
    const plain = { ...spec, secrets: {} };
    expect(attemptObjects(plain, { url: "file:///r" }, options).secret).toBeNull();
  });
});

describe("labelValue", () => {
  it("keeps a valid value and shortens one that is not, keeping it unique", () => {
    expect(labelValue("e1")).toBe("e1");
    const a = labelValue(
      "file:///tmp/some/where/very/deep/in/the/file/system/of/this/machine/repo",
    );
    const b = labelValue(
      "file:///tmp/other/where/very/deep/in/the/file/system/of/this/machine/repo",
    );
    for (const v of [a, b]) expect(v).toMatch(/^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/);
    expect(a).not.toBe(b);
  });
});

const NOW = Date.parse("2026-01-01T00:10:00Z");

function facts(over: Partial<AttemptFacts>): AttemptFacts {
  return {
    handle: "e1-train-1",
    namespace: "tasks",
    job: job(),
    jobGone: null,
    abortedHere: false,
    pods: [],
    declared: {},
    timeoutSeconds: 600,
    pendingTimeoutMs: 60_000,
    now: NOW,
    ...over,
  };
}

function job(condition?: { type: string; reason?: string }): V1Job {
  return {
    metadata: { name: "e1-train-1", creationTimestamp: "2026-01-01T00:09:30Z" as unknown as Date },
    status: condition ? { conditions: [{ ...condition, status: "True" }] } : {},
  };
}

function pod(phase: string, extra: Partial<V1Pod["status"]> = {}): V1Pod {
  return {
    metadata: { name: "e1-train-1-abcde", creationTimestamp: new Date("2026-01-01T00:09:31Z") },
    status: { phase, ...extra },
  };
}

describe("classify", () => {
  it("waits for the Job's verdict when its pod has ended but the Job does not say so yet", () => {
    const ended = pod("Succeeded", {
      containerStatuses: [
        {
          name: "task",
          image: "x",
          imageID: "",
          ready: false,
          restartCount: 0,
          state: { terminated: { exitCode: 0 } },
        },
      ],
    });
    expect(classify(facts({ pods: [{ pod: ended, deleted: false }] }))).toEqual({
      done: false,
      recheckAt: null,
    });
  });

  it("accepts a completed Job whose pod is gone only when no outputs were declared", () => {
    expect(classify(facts({ job: job({ type: "Complete" }) }))).toMatchObject({
      done: true,
      ok: true,
    });
    expect(
      classify(facts({ job: job({ type: "Complete" }), declared: { n: { type: "integer" } } })),
    ).toMatchObject({ done: true, ok: false, error: { kind: "system", reason: "lost" } });
  });

  it("reads an eviction from the pod's status on clusters without DisruptionTarget", () => {
    const evicted = pod("Failed", {
      reason: "Evicted",
      message: "The node was low on resource: ephemeral-storage.",
    });
    expect(classify(facts({ pods: [{ pod: evicted, deleted: false }] }))).toMatchObject({
      done: true,
      ok: false,
      error: {
        kind: "system",
        reason: "evicted",
        message: expect.stringContaining("ephemeral-storage"),
      },
      deleteJob: true,
    });
  });

  it("reports an eviction for an emptyDir over its sizeLimit as a user failure (disk) naming the volume and the limit", () => {
    const evicted: V1Pod = {
      ...pod("Failed", {
        reason: "Evicted",
        // The kubelet's own format, trailing space included; no DisruptionTarget condition.
        message: 'Usage of EmptyDir volume "workspace" exceeds the limit "1Mi". ',
      }),
      spec: {
        containers: [
          { name: "task", volumeMounts: [{ name: "workspace", mountPath: "/workspace" }] },
        ],
      },
    };
    // Seen before the Job says it failed, and after: the same verdict, the Job left to its TTL.
    for (const j of [job(), job({ type: "Failed", reason: "BackoffLimitExceeded" })]) {
      expect(classify(facts({ job: j, pods: [{ pod: evicted, deleted: false }] }))).toEqual({
        done: true,
        ok: false,
        error: {
          kind: "user",
          reason: "disk",
          message:
            'evicted: the emptyDir volume "workspace" (what the code and the task put under /workspace) exceeded its limit of 1Mi, the task\'s resources.disk; raise resources.disk, or write less there',
        },
        pod: evicted,
        quoteLog: true,
        deleteJob: false,
      });
    }
    // A pod over a container's ephemeral-storage limit (a LimitRange's, not Reprise's) is not this.
    const container = pod("Failed", {
      reason: "Evicted",
      message: 'Container task exceeded its local ephemeral storage limit "1Gi". ',
    });
    expect(classify(facts({ pods: [{ pod: container, deleted: false }] }))).toMatchObject({
      error: { kind: "system", reason: "evicted" },
    });
  });

  it("counts the pending timeout from the Job's creation when no pod was ever made", () => {
    const young = classify(facts({ now: Date.parse("2026-01-01T00:10:00Z") }));
    expect(young).toEqual({ done: false, recheckAt: Date.parse("2026-01-01T00:10:30Z") });
    const old = classify(facts({ now: Date.parse("2026-01-01T00:10:31Z") }));
    expect(old).toMatchObject({
      done: true,
      ok: false,
      error: { reason: "pending", message: expect.stringMatching(/no pod was created/) },
    });
  });

  it("says a Job deleted while it ran is lost, and one this runner deleted is aborted", () => {
    expect(classify(facts({ job: null, jobGone: "deleted" }))).toMatchObject({
      error: {
        kind: "system",
        reason: "lost",
        message: expect.stringMatching(/deleted while it ran/),
      },
    });
    expect(classify(facts({ job: null, jobGone: "deleted", abortedHere: true }))).toMatchObject({
      error: { kind: "user", reason: "aborted" },
    });
  });
});
