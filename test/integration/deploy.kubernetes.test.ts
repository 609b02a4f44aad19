/**
 * deploy/: every Kubernetes manifest, as the kustomize base and the try-it overlay build it, is a
 * valid object of its kind (kubernetes-models' schemas); the Role grants exactly what the
 * kubernetes executor asks the API for, checked against the requests the fake apiserver records;
 * the GitHub App manifest and the Dockerfile say what docs/design.md and issue 6 ask.
 *
 * kustomize itself is not installed here: `build` below does the part of `kustomize build` these
 * manifests use (resources, generators from literals, labels, images, JSON 6902 replace patches),
 * without the hash suffixes on generated names.
 */
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Deployment } from "kubernetes-models/apps/v1/Deployment";
import { StatefulSet } from "kubernetes-models/apps/v1/StatefulSet";
import { NetworkPolicy } from "kubernetes-models/networking.k8s.io/v1/NetworkPolicy";
import { Role } from "kubernetes-models/rbac.authorization.k8s.io/v1/Role";
import { RoleBinding } from "kubernetes-models/rbac.authorization.k8s.io/v1/RoleBinding";
import { ConfigMap } from "kubernetes-models/v1/ConfigMap";
import { Namespace } from "kubernetes-models/v1/Namespace";
import { Secret } from "kubernetes-models/v1/Secret";
import { Service } from "kubernetes-models/v1/Service";
import { ServiceAccount } from "kubernetes-models/v1/ServiceAccount";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse, parseAllDocuments } from "yaml";
import { attemptName } from "../../core/engine/attempt-name.js";
import { localRepoKey } from "../../core/version/repo-key.js";
import { createKubernetesExecutor } from "../../runner/executors/kubernetes/index.js";
import type { LaunchSpec } from "../../runner/executors/types.js";
import { ROOT } from "../fakes/cli.js";
import { tempRepo } from "../fakes/git-repo.js";
import { type FakeKube, startFakeKube } from "../fakes/kube/index.js";
import { CONTRACT_FILES } from "./executor-contract.js";

const DEPLOY = join(ROOT, "deploy");

type Obj = {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  // biome-ignore lint/suspicious/noExplicitAny: manifests are read as plain YAML data
  [k: string]: any;
};

const MODELS: Record<string, new (o: never) => { validate(): void }> = {
  "apps/v1/Deployment": Deployment,
  "apps/v1/StatefulSet": StatefulSet,
  "networking.k8s.io/v1/NetworkPolicy": NetworkPolicy,
  "rbac.authorization.k8s.io/v1/Role": Role,
  "rbac.authorization.k8s.io/v1/RoleBinding": RoleBinding,
  "v1/ConfigMap": ConfigMap,
  "v1/Namespace": Namespace,
  "v1/Secret": Secret,
  "v1/Service": Service,
  "v1/ServiceAccount": ServiceAccount,
};

interface Generator {
  name: string;
  namespace?: string;
  literals?: string[];
}

/** What `kustomize build DIR` makes of these manifests (see the header). */
function build(dir: string): Obj[] {
  const k = parse(readFileSync(join(dir, "kustomization.yaml"), "utf8"));
  const objects: Obj[] = [];
  for (const r of (k.resources ?? []) as string[]) {
    const path = join(dir, r);
    if (statSync(path).isDirectory()) objects.push(...build(path));
    else objects.push(...parseAllDocuments(readFileSync(path, "utf8")).map((d) => d.toJS() as Obj));
  }
  const literals = (g: Generator) =>
    Object.fromEntries(
      (g.literals ?? []).map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]),
    );
  for (const g of (k.configMapGenerator ?? []) as Generator[]) {
    objects.push({
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: g.name, namespace: g.namespace },
      data: literals(g),
    });
  }
  for (const g of (k.secretGenerator ?? []) as Generator[]) {
    const data = Object.fromEntries(
      Object.entries(literals(g)).map(([key, v]) => [key, Buffer.from(v).toString("base64")]),
    );
    objects.push({
      apiVersion: "v1",
      kind: "Secret",
      type: "Opaque",
      metadata: { name: g.name, namespace: g.namespace },
      data,
    });
  }
  for (const { pairs } of (k.labels ?? []) as Array<{ pairs: Record<string, string> }>) {
    for (const o of objects) o.metadata.labels = { ...o.metadata.labels, ...pairs };
  }
  for (const image of (k.images ?? []) as Array<{
    name: string;
    newName: string;
    newTag: string;
  }>) {
    for (const c of containersOf(objects)) {
      if (c.image === image.name) c.image = `${image.newName}:${image.newTag}`;
    }
  }
  for (const p of (k.patches ?? []) as Array<{
    target: { kind: string; name: string };
    patch: string;
  }>) {
    const target = objects.find(
      (o) => o.kind === p.target.kind && o.metadata.name === p.target.name,
    );
    if (!target) throw new Error(`patch target ${p.target.kind}/${p.target.name} not found`);
    for (const op of parse(p.patch) as Array<{ op: string; path: string; value: unknown }>) {
      if (op.op !== "replace") throw new Error(`unsupported patch op ${op.op}`);
      const keys = op.path.split("/").slice(1);
      const last = keys.pop() as string;
      let at = target;
      for (const key of keys) at = at[key];
      if (!(last in at)) throw new Error(`replace of missing ${op.path}`);
      at[last] = op.value;
    }
  }
  return objects;
}

// biome-ignore lint/suspicious/noExplicitAny: manifests are read as plain YAML data
function containersOf(objects: Obj[]): any[] {
  return objects.flatMap((o) => {
    const spec = o.spec?.template?.spec;
    return spec ? [...(spec.initContainers ?? []), ...(spec.containers ?? [])] : [];
  });
}

const base = build(join(DEPLOY, "kustomize/base"));
const tryIt = build(join(DEPLOY, "kustomize/overlays/try-it"));
const find = (objects: Obj[], kind: string, name: string) => {
  const o = objects.find((x) => x.kind === kind && x.metadata.name === name);
  if (!o) throw new Error(`no ${kind} ${name}`);
  return o;
};

describe("deploy/ manifests", () => {
  it.each([
    ["base", base],
    ["try-it overlay", tryIt],
  ])(
    "%s: every object is valid against its Kubernetes schema and names its namespace",
    (_, objects) => {
      expect(objects.length).toBeGreaterThan(5);
      for (const o of objects) {
        const Model = MODELS[`${o.apiVersion}/${o.kind}`];
        if (!Model) throw new Error(`no schema for ${o.apiVersion} ${o.kind}`);
        expect(
          () => new Model(o as never).validate(),
          `${o.kind}/${o.metadata.name}`,
        ).not.toThrow();
        if (o.kind !== "Namespace")
          expect(o.metadata.namespace, `${o.kind}/${o.metadata.name}`).toMatch(
            /^reprise(-tasks)?$/,
          );
      }
    },
  );

  it("runs `reprise serve` non-root and read-only, probed on /healthz and /readyz, migrated first", () => {
    const d = find(base, "Deployment", "reprise");
    const pod = d.spec.template.spec;
    expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 1000 });
    const [serve] = pod.containers;
    expect(serve.args).toEqual(["serve"]);
    expect(serve.image).toBe("registry.example.com/reprise:0.1.0");
    expect(serve.readinessProbe.httpGet).toEqual({ path: "/readyz", port: "http" });
    expect(serve.livenessProbe.httpGet).toEqual({ path: "/healthz", port: "http" });
    expect(serve.resources.requests).toBeDefined();
    expect(serve.resources.limits.memory).toBeDefined();
    for (const c of [serve, ...pod.initContainers]) {
      expect(c.securityContext).toEqual({
        allowPrivilegeEscalation: false,
        readOnlyRootFilesystem: true,
        capabilities: { drop: ["ALL"] },
      });
    }
    expect(pod.initContainers[0].args).toEqual(["migrate"]);
    expect(serve.lifecycle.preStop).toBeDefined();
    expect(pod.terminationGracePeriodSeconds).toBeGreaterThanOrEqual(30);
    // What the configuration comes from: generated here, or (reprise-secrets) the operator's.
    const config = find(base, "ConfigMap", "reprise-config");
    expect(config.data).toMatchObject({
      REPRISE_EXECUTOR: "kubernetes",
      REPRISE_NAMESPACE: "reprise-tasks",
    });
    expect(serve.envFrom).toEqual([
      { configMapRef: { name: "reprise-config" } },
      { secretRef: { name: "reprise-secrets" } },
    ]);
    const secret = find(tryIt, "Secret", "reprise-secrets");
    expect(Buffer.from(secret.data.DATABASE_URL, "base64").toString()).toMatch(
      /^postgres:\/\/.*@postgres\.reprise\.svc:5432\//,
    );
    expect(find(tryIt, "Deployment", "reprise").spec.replicas).toBe(1);
    // The Service and the NetworkPolicy open the port the container listens on.
    expect(find(base, "Service", "reprise").spec.ports[0].targetPort).toBe(serve.ports[0].name);
    expect(find(base, "NetworkPolicy", "reprise").spec.ingress[0].ports[0].port).toBe(
      serve.ports[0].containerPort,
    );
  });

  it("binds the service account to the Role in the task namespace only", () => {
    const binding = find(base, "RoleBinding", "reprise-executor");
    expect(binding.metadata.namespace).toBe("reprise-tasks");
    expect(binding.subjects).toEqual([
      { kind: "ServiceAccount", name: "reprise", namespace: "reprise" },
    ]);
    expect(find(base, "ServiceAccount", "reprise").metadata.namespace).toBe("reprise");
    expect(base.some((o) => o.kind.startsWith("Cluster"))).toBe(false);
  });

  it("declares the GitHub App's permissions and events", () => {
    const app = parse(readFileSync(join(DEPLOY, "github-app.yml"), "utf8"));
    expect(app.default_permissions).toEqual({
      checks: "write",
      contents: "read",
      pull_requests: "write",
      issues: "write",
      metadata: "read",
    });
    expect([...app.default_events].sort()).toEqual([
      "check_run",
      "issue_comment",
      "pull_request",
      "push",
    ]);
    expect(new URL(app.hook_attributes.url).pathname).toBe("/api/github/webhooks");
  });

  it("builds the image in stages and runs it as a non-root user with production dependencies only", () => {
    const dockerfile = readFileSync(join(DEPLOY, "Dockerfile"), "utf8");
    const stages = dockerfile.split(/^FROM /m).slice(1);
    expect(stages.length).toBeGreaterThanOrEqual(3);
    const final = stages[stages.length - 1] as string;
    expect(final).toMatch(/^USER 1000:1000$/m);
    expect(final).toMatch(/^COPY --from=deps \/app\/node_modules node_modules$/m);
    expect(final).not.toMatch(/npm (ci|install)/);
    expect(dockerfile).toMatch(/npm ci --omit=dev/);
    expect(final).toMatch(/^CMD \["serve"\]$/m);
  });
});

describe("deploy/ RBAC against what the executor does", () => {
  let kube: FakeKube;
  let dataDir: string;
  let repo: ReturnType<typeof tempRepo>;
  beforeAll(async () => {
    kube = await startFakeKube({ namespace: "reprise-tasks" });
    dataDir = mkdtempSync(join(tmpdir(), "reprise-rbac-"));
    repo = tempRepo("reprise-rbac-repo-");
    repo.write(CONTRACT_FILES);
  });
  afterAll(async () => {
    await kube?.close();
    rmSync(dataDir, { recursive: true, force: true });
    repo?.remove();
  });

  it("grants exactly the verbs the executor uses: every request is allowed, every rule is used", async () => {
    const sha = repo.commit("tasks");
    const make = () =>
      createKubernetesExecutor({ kubeconfig: kube.kubeconfig, namespace: null, dataDir });
    const spec = (id: string, overrides: Partial<LaunchSpec> = {}): LaunchSpec => ({
      handle: attemptName(id, "node", 1),
      repo: localRepoKey(repo.dir),
      sha,
      executionId: id,
      nodeId: "node",
      attempt: 1,
      taskName: "task",
      taskDigest: `sha256:${"d".repeat(64)}`,
      image: "node:20-slim",
      command: [process.execPath, "tasks/say.mjs", "0"],
      env: {},
      workdir: ".",
      inputs: {},
      outputs: {},
      timeoutSeconds: 60,
      secrets: { TOKEN: "abc" },
      ...overrides,
    });
    const first = make();
    const done = spec("rbac1");
    await first.launch(done);
    const outcome = await first.wait(done);
    const restarted = make();
    await restarted.launch(done); // 409: read and adopt
    await restarted.wait(done); // a Job it did not launch: read once
    if (outcome.logRef) await make().logTail(outcome.logRef.replace(/-[a-z0-9]+$/, "-gone0"), 10);
    const aborted = spec("rbac2", { command: [process.execPath, "tasks/slow.mjs", "30000"] });
    await first.launch(aborted);
    await first.abort(aborted.handle);
    await first.wait(aborted);
    for (const e of [first, restarted]) await e.close();

    const used = new Set(
      kube.requests
        .filter((r) => r.verb !== "other")
        .map((r) => {
          const group = r.resource === "jobs" ? "batch" : "";
          const [resource, verb] = r.verb === "log" ? ["pods/log", "get"] : [r.resource, r.verb];
          return `${group}/${resource}/${verb}`;
        }),
    );
    const role = find(base, "Role", "reprise-executor");
    expect(role.metadata.namespace).toBe("reprise-tasks");
    const granted = new Set<string>();
    for (const rule of role.rules as Array<{
      apiGroups: string[];
      resources: string[];
      verbs: string[];
    }>) {
      for (const g of rule.apiGroups)
        for (const r of rule.resources) for (const v of rule.verbs) granted.add(`${g}/${r}/${v}`);
    }
    expect([...used].sort()).toEqual([...granted].sort());
  });
});
