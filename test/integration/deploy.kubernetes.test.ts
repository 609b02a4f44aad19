/**
 * deploy/: every Kubernetes manifest, as the kustomize base and the try-it overlay build it, is a
 * valid object of its kind (kubernetes-models' schemas); the Role grants exactly what the
 * kubernetes executor asks the API for, checked against the requests the fake apiserver records;
 * the GitHub App manifest and the Dockerfile say what docs/design.md and issue 6 ask; artifacts in
 * task pods (issue 16): the broker's port, key and NetworkPolicy, the helper image, storage
 * credentials in the runner's container only, and the try-it overlay's S3-compatible store.
 *
 * kustomize is not a dependency: `build` below does the part of `kustomize build` these
 * manifests use (resources, generators from literals with `behavior: merge`, labels, images with
 * the extra image fields of `configurations`, inherited by overlays, JSON 6902 replace patches),
 * without the hash suffixes on generated names. What it does was compared with kustomize v5.5
 * (`kubectl kustomize`) on these manifests.
 */
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { Deployment } from "kubernetes-models/apps/v1/Deployment";
import { StatefulSet } from "kubernetes-models/apps/v1/StatefulSet";
import { Job } from "kubernetes-models/batch/v1/Job";
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
import { S3BlobStore, s3Client } from "../../runner/artifacts/s3-store.js";
import { loadConfig } from "../../runner/config.js";
import { createKubernetesExecutor } from "../../runner/executors/kubernetes/index.js";
import { MANAGED_BY, MANAGER } from "../../runner/executors/kubernetes/manifests.js";
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
  "batch/v1/Job": Job,
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
  behavior?: "create" | "merge";
  literals?: string[];
}

/** A `configurations` file's `images` entry: one more field `images:` rewrites. */
interface ImageField {
  path: string;
  kind?: string;
}

/** What `kustomize build DIR` makes of these manifests (see the header). */
function build(dir: string): Obj[] {
  return accumulate(dir).objects;
}

function accumulate(dir: string): { objects: Obj[]; imageFields: ImageField[] } {
  const k = parse(readFileSync(join(dir, "kustomization.yaml"), "utf8"));
  const objects: Obj[] = [];
  // Like kustomize, an overlay applies the transformer configurations of its bases too.
  const imageFields: ImageField[] = [];
  for (const r of (k.resources ?? []) as string[]) {
    const path = join(dir, r);
    if (statSync(path).isDirectory()) {
      const sub = accumulate(path);
      objects.push(...sub.objects);
      imageFields.push(...sub.imageFields);
    } else
      objects.push(...parseAllDocuments(readFileSync(path, "utf8")).map((d) => d.toJS() as Obj));
  }
  for (const c of (k.configurations ?? []) as string[])
    imageFields.push(...((parse(readFileSync(join(dir, c), "utf8")).images ?? []) as ImageField[]));
  const literals = (g: Generator) =>
    Object.fromEntries(
      (g.literals ?? []).map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]),
    );
  const generate = (kind: string, g: Generator, data: Record<string, string>) => {
    const same = objects.find(
      (o) => o.kind === kind && o.metadata.name === g.name && o.metadata.namespace === g.namespace,
    );
    if (g.behavior === "merge") {
      if (!same) throw new Error(`merge into missing ${kind} ${g.name}`);
      same.data = { ...same.data, ...data };
      return;
    }
    if (same) throw new Error(`${kind} ${g.name} generated twice`);
    objects.push({
      apiVersion: "v1",
      kind,
      ...(kind === "Secret" ? { type: "Opaque" } : {}),
      metadata: { name: g.name, namespace: g.namespace },
      data,
    });
  };
  for (const g of (k.configMapGenerator ?? []) as Generator[])
    generate("ConfigMap", g, literals(g));
  for (const g of (k.secretGenerator ?? []) as Generator[]) {
    const data = Object.fromEntries(
      Object.entries(literals(g)).map(([key, v]) => [key, Buffer.from(v).toString("base64")]),
    );
    generate("Secret", g, data);
  }
  for (const { pairs } of (k.labels ?? []) as Array<{ pairs: Record<string, string> }>) {
    for (const o of objects) o.metadata.labels = { ...o.metadata.labels, ...pairs };
  }
  for (const image of (k.images ?? []) as Array<{
    name: string;
    newName?: string;
    newTag?: string;
  }>) {
    // kustomize's match: the name alone, or followed by a tag or a digest.
    const rewrite = (value: unknown) => {
      if (typeof value !== "string") return value;
      const rest = value.slice(image.name.length);
      if (!value.startsWith(image.name) || !/^([:@].*)?$/.test(rest)) return value;
      const tag = image.newTag !== undefined ? `:${image.newTag}` : rest;
      return `${image.newName ?? image.name}${tag}`;
    };
    for (const c of containersOf(objects)) c.image = rewrite(c.image);
    for (const field of imageFields) {
      for (const o of objects) {
        if (!field.kind || o.kind === field.kind) rewriteAt(o, field.path.split("/"), rewrite);
      }
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
  return { objects, imageFields };
}

/** Applies `f` to the field at a kustomize field path (`a/b[]/c`: c of every element of b). */
// biome-ignore lint/suspicious/noExplicitAny: manifests are read as plain YAML data
function rewriteAt(at: any, keys: string[], f: (v: unknown) => unknown): void {
  const [key, ...rest] = keys as [string, ...string[]];
  if (at === null || typeof at !== "object") return;
  const name = key.replace(/\[\]$/, "");
  if (!(name in at)) return; // kustomize creates no field it rewrites
  if (key.endsWith("[]")) {
    if (!Array.isArray(at[name])) return;
    if (rest.length === 0) at[name] = at[name].map(f);
    else for (const item of at[name]) rewriteAt(item, rest, f);
  } else if (rest.length === 0) at[name] = f(at[name]);
  else rewriteAt(at[name], rest, f);
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
      { secretRef: { name: "reprise-storage", optional: true } },
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

const AWS_CREDENTIALS = ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"];

interface PodContainer {
  /** `Kind/name/container` */
  id: string;
  // biome-ignore lint/suspicious/noExplicitAny: manifests are read as plain YAML data
  c: any;
  // biome-ignore lint/suspicious/noExplicitAny: manifests are read as plain YAML data
  pod: any;
}

/** Every container (init containers too) of every pod template. */
function podContainers(objects: Obj[]): PodContainer[] {
  return objects.flatMap((o) => {
    const pod = o.spec?.template?.spec;
    if (!pod) return [];
    return [...(pod.initContainers ?? []), ...(pod.containers ?? [])].map((c) => ({
      id: `${o.kind}/${o.metadata.name}/${c.name}`,
      c,
      pod,
    }));
  });
}

/** The ConfigMaps and Secrets a container reads: from envFrom, env, and the volumes it mounts. */
function sourcesOf({
  c,
  pod,
}: PodContainer): Array<{ kind: string; name: string; optional: boolean }> {
  const out: Array<{ kind: string; name: string; optional: boolean }> = [];
  for (const f of c.envFrom ?? []) {
    const ref = f.configMapRef ?? f.secretRef;
    out.push({
      kind: f.configMapRef ? "ConfigMap" : "Secret",
      name: ref.name,
      optional: !!ref.optional,
    });
  }
  for (const e of c.env ?? []) {
    const ref = e.valueFrom?.configMapKeyRef ?? e.valueFrom?.secretKeyRef;
    if (ref)
      out.push({
        kind: e.valueFrom.configMapKeyRef ? "ConfigMap" : "Secret",
        name: ref.name,
        optional: !!ref.optional,
      });
  }
  const mounted = new Set((c.volumeMounts ?? []).map((m: { name: string }) => m.name));
  for (const v of pod.volumes ?? []) {
    if (!mounted.has(v.name)) continue;
    if (v.secret)
      out.push({ kind: "Secret", name: v.secret.secretName, optional: !!v.secret.optional });
    if (v.configMap)
      out.push({ kind: "ConfigMap", name: v.configMap.name, optional: !!v.configMap.optional });
    for (const p of v.projected?.sources ?? []) {
      if (p.secret)
        out.push({ kind: "Secret", name: p.secret.name, optional: !!p.secret.optional });
      if (p.configMap)
        out.push({ kind: "ConfigMap", name: p.configMap.name, optional: !!p.configMap.optional });
    }
  }
  return out;
}

/** The environment a container starts with, as the kubelet assembles it from these objects. */
function environmentOf(objects: Obj[], pc: PodContainer): Record<string, string> {
  const get = (kind: string, name: string, namespace: string) =>
    objects.find(
      (o) => o.kind === kind && o.metadata.name === name && o.metadata.namespace === namespace,
    );
  const namespace = "reprise";
  const dataOf = (o: Obj | undefined): Record<string, string> =>
    !o
      ? {}
      : o.kind === "Secret"
        ? Object.fromEntries(
            Object.entries(o.data as Record<string, string>).map(([k, v]) => [
              k,
              Buffer.from(v, "base64").toString(),
            ]),
          )
        : o.data;
  const env: Record<string, string> = {};
  for (const f of pc.c.envFrom ?? []) {
    const ref = f.configMapRef ?? f.secretRef;
    Object.assign(env, dataOf(get(f.configMapRef ? "ConfigMap" : "Secret", ref.name, namespace)));
  }
  for (const e of pc.c.env ?? []) {
    const ref = e.valueFrom?.secretKeyRef ?? e.valueFrom?.configMapKeyRef;
    if (ref) {
      const kind = e.valueFrom.secretKeyRef ? "Secret" : "ConfigMap";
      const value = dataOf(get(kind, ref.name, namespace))[ref.key];
      if (value !== undefined) env[e.name] = value;
    } else env[e.name] = e.value;
  }
  return env;
}

const container = (objects: Obj[], id: string) => {
  const pc = podContainers(objects).find((x) => x.id === id);
  if (!pc) throw new Error(`no container ${id}`);
  return pc;
};
// biome-ignore lint/suspicious/noExplicitAny: manifests are read as plain YAML data
const envEntry = (c: any, name: string) => c.env?.find((e: { name: string }) => e.name === name);
const RUNNER = "Deployment/reprise/reprise";
/** What the kubernetes executor labels every task pod with: the policies select on it. */
const TASK_PODS = {
  namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "reprise-tasks" } },
  podSelector: { matchLabels: { [MANAGED_BY]: MANAGER } },
};

describe("deploy/ artifacts in task pods (issue 16)", () => {
  it.each([
    ["base", base],
    ["try-it overlay", tryIt],
  ])(
    "%s: the broker listens on a port the Service exposes at the URL pods get, keyed from a Secret",
    (_, objects) => {
      const { c } = container(objects, RUNNER);
      const port = c.ports.find((p: { name: string }) => p.name === "broker");
      expect(port).toEqual({ name: "broker", containerPort: 8091, protocol: "TCP" });
      expect(envEntry(c, "REPRISE_KUBE_BROKER_LISTEN").value).toBe(`0.0.0.0:${port.containerPort}`);
      const service = find(objects, "Service", "reprise");
      const exposed = service.spec.ports.find(
        (p: { targetPort: string }) => p.targetPort === "broker",
      );
      const url = new URL(envEntry(c, "REPRISE_KUBE_BROKER_URL").value);
      expect(url.protocol).toBe("http:");
      expect(url.hostname).toBe(`${service.metadata.name}.${service.metadata.namespace}.svc`);
      expect(Number(url.port)).toBe(exposed.port);
      // Replicas share the key, so it cannot be each pod's own file: a Secret, not optional.
      const key = envEntry(c, "REPRISE_KUBE_BROKER_KEY");
      expect(key.value).toBeUndefined();
      expect(key.valueFrom).toEqual({ secretKeyRef: { name: "reprise-broker", key: "key" } });
      // Only the serving container has it (the migrate init container does not).
      for (const pc of podContainers(objects).filter((x) => x.id !== RUNNER))
        expect(
          sourcesOf(pc).map((r) => r.name),
          pc.id,
        ).not.toContain("reprise-broker");
    },
  );

  it("try-it generates a broker key long enough; the base leaves it, and the app secrets, to you", () => {
    const secret = find(tryIt, "Secret", "reprise-broker");
    expect(Buffer.from(secret.data.key, "base64").toString().length).toBeGreaterThanOrEqual(32);
    // Everything a pod needs is in the try-it overlay; the base needs exactly these two.
    const missing = (objects: Obj[]) =>
      new Set(
        podContainers(objects).flatMap((pc) =>
          sourcesOf(pc)
            .filter((r) => !r.optional)
            .filter(
              (r) =>
                !objects.some(
                  (o) =>
                    o.kind === r.kind &&
                    o.metadata.name === r.name &&
                    o.metadata.namespace === "reprise",
                ),
            )
            .map((r) => `${r.kind}/${r.name}`),
        ),
      );
    expect([...missing(tryIt)]).toEqual([]);
    expect([...missing(base)].sort()).toEqual(["Secret/reprise-broker", "Secret/reprise-secrets"]);
  });

  it("lets task pods, and nothing else, reach the broker's port", () => {
    const policy = find(base, "NetworkPolicy", "reprise");
    // A rule without ports would open every port, the broker's included.
    for (const rule of policy.spec.ingress) expect(rule.ports?.length).toBeGreaterThan(0);
    const broker = policy.spec.ingress.filter((rule: { ports: Array<{ port: number }> }) =>
      rule.ports.some((p) => p.port === 8091),
    );
    expect(broker).toEqual([{ from: [TASK_PODS], ports: [{ port: 8091, protocol: "TCP" }] }]);
    expect(find(base, "ConfigMap", "reprise-config").data.REPRISE_NAMESPACE).toBe(
      TASK_PODS.namespaceSelector.matchLabels["kubernetes.io/metadata.name"],
    );
  });

  it("hands pods the runner's own image as the helper image, also when an overlay changes it", () => {
    const overlay = mkdtempSync(join(tmpdir(), "reprise-overlay-"));
    try {
      writeFileSync(
        join(overlay, "kustomization.yaml"),
        [
          `resources: [${relative(overlay, join(DEPLOY, "kustomize/overlays/try-it"))}]`,
          "images:",
          "  - { name: registry.example.com/reprise, newName: r.example/me/reprise, newTag: '2' }",
        ].join("\n"),
      );
      const mine = build(overlay);
      for (const [objects, image] of [
        [base, "registry.example.com/reprise:0.1.0"],
        [tryIt, "registry.example.com/reprise:0.1.0"],
        [mine, "r.example/me/reprise:2"],
      ] as const) {
        const { c } = container(objects, RUNNER);
        expect(c.image).toBe(image);
        expect(container(objects, "Deployment/reprise/migrate").c.image).toBe(image);
        expect(envEntry(c, "REPRISE_KUBE_HELPER_IMAGE").value).toBe(image);
        // Nothing else looked like the image and was rewritten.
        expect(envEntry(c, "REPRISE_KUBE_BROKER_URL").value).toBe(
          "http://reprise.reprise.svc:8091",
        );
      }
    } finally {
      rmSync(overlay, { recursive: true, force: true });
    }
  });

  it.each([
    ["base", base],
    ["try-it overlay", tryIt],
  ])("%s: storage credentials reach the runner's container and nothing else", (_, objects) => {
    // Secrets that hold storage keys: the one the Deployment names, and any generated with them.
    const holders = new Set(["reprise-storage"]);
    for (const o of objects) {
      const keys = Object.keys(o.data ?? {});
      if (keys.some((k) => AWS_CREDENTIALS.includes(k))) {
        expect(o.kind, `${o.kind}/${o.metadata.name} holds storage keys`).toBe("Secret");
        expect(o.metadata.namespace).toBe("reprise");
        holders.add(o.metadata.name);
      }
    }
    const reading = podContainers(objects).filter(
      (pc) =>
        sourcesOf(pc).some((r) => r.kind === "Secret" && holders.has(r.name)) ||
        (pc.c.env ?? []).some((e: { name: string }) => AWS_CREDENTIALS.includes(e.name)),
    );
    expect(reading.map((pc) => pc.id)).toEqual([RUNNER]);
    // Optional: with a role on the service account (IRSA) there is no such Secret at all.
    expect(sourcesOf(container(objects, RUNNER)).find((r) => r.name === "reprise-storage")).toEqual(
      { kind: "Secret", name: "reprise-storage", optional: true },
    );
    // Nothing for the task namespace but its policy and the executor's Role.
    expect(
      objects
        .filter((o) => o.metadata.namespace === "reprise-tasks")
        .map((o) => o.kind)
        .sort(),
    ).toEqual(["NetworkPolicy", "Role", "RoleBinding"]);
  });

  it("try-it: the runner keeps artifacts in the overlay's S3 store, under a bucket its Job creates", async () => {
    const runner = container(tryIt, RUNNER);
    const env = environmentOf(tryIt, runner);
    // The runner's own reading of its environment.
    const config = loadConfig(env);
    expect(config.artifacts).toEqual({
      kind: "s3",
      url: "s3://reprise/artifacts",
      bucket: "reprise",
      prefix: "artifacts",
    });
    expect(env.REPRISE_EXECUTOR).toBe("kubernetes"); // the base's settings survive the merge
    const service = find(tryIt, "Service", "minio");
    const endpoint = new URL(env.AWS_ENDPOINT_URL as string);
    expect(endpoint.hostname).toBe(`${service.metadata.name}.${service.metadata.namespace}.svc`);
    expect(Number(endpoint.port)).toBe(service.spec.ports[0].port);
    const store = find(tryIt, "StatefulSet", "minio");
    expect(store.spec.replicas).toBe(1);
    expect(store.spec.template.metadata.labels).toMatchObject(service.spec.selector);
    const [minio] = store.spec.template.spec.containers;
    expect(
      minio.ports.find((p: { name: string }) => p.name === service.spec.ports[0].targetPort),
    ).toMatchObject({ containerPort: 9000 });
    // The runner logs in with the store's own user.
    const root = environmentOf(tryIt, container(tryIt, "StatefulSet/minio/minio"));
    expect([env.AWS_ACCESS_KEY_ID, env.AWS_SECRET_ACCESS_KEY]).toEqual([
      root.MINIO_ROOT_USER,
      root.MINIO_ROOT_PASSWORD,
    ]);
    const job = find(tryIt, "Job", "minio-bucket");
    const mc = container(tryIt, "Job/minio-bucket/mc");
    const jobEnv = environmentOf(tryIt, mc);
    expect(jobEnv.ENDPOINT).toBe(env.AWS_ENDPOINT_URL);
    expect(jobEnv.BUCKET).toBe((config.artifacts as { bucket: string }).bucket);
    expect(mc.c.args.join("\n")).toMatch(/mc mb --ignore-existing "store\/\$BUCKET"/);
    expect(job.spec.template.spec.restartPolicy).toBe("OnFailure");
    // Pinned images: a tag that is not `latest`, or a digest.
    for (const image of [minio.image, mc.c.image])
      expect(image).toMatch(/^[^:@]+(:(?!latest$)[\w.-]+|@sha256:[0-9a-f]{64})$/);

    // The URLs the broker hands out point at that same in-cluster name, path-style.
    const signed = new S3BlobStore({
      bucket: "reprise",
      prefix: "artifacts",
      client: s3Client(config.environment, {
        credentials: {
          accessKeyId: env.AWS_ACCESS_KEY_ID as string,
          secretAccessKey: env.AWS_SECRET_ACCESS_KEY as string,
        },
      }),
    });
    const get = await signed.presignGet(`sha256:${"a".repeat(64)}`, { expiresInSeconds: 600 });
    const url = new URL(get.url);
    expect(url.host).toBe(endpoint.host);
    expect(url.pathname).toBe(`/reprise/artifacts/blobs/sha256/${"a".repeat(64)}`);
  });

  it("try-it: the service and task pods may reach the store's S3 port", () => {
    const store = find(tryIt, "StatefulSet", "minio").spec.template.metadata.labels;
    const egress = find(tryIt, "NetworkPolicy", "reprise-to-minio");
    expect(egress.spec.podSelector).toEqual(
      find(tryIt, "NetworkPolicy", "reprise").spec.podSelector,
    );
    expect(egress.spec.egress).toEqual([
      {
        to: [{ podSelector: { matchLabels: { "app.kubernetes.io/name": "minio" } } }],
        ports: [{ port: 9000, protocol: "TCP" }],
      },
    ]);
    expect(store).toMatchObject({ "app.kubernetes.io/name": "minio" });
    const ingress = find(tryIt, "NetworkPolicy", "minio");
    expect(ingress.spec.podSelector.matchLabels).toEqual({ "app.kubernetes.io/name": "minio" });
    expect(ingress.spec.ingress).toEqual([
      { from: [{ podSelector: {} }, TASK_PODS], ports: [{ port: 9000, protocol: "TCP" }] },
    ]);
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
