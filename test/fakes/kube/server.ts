/**
 * The fake kube-apiserver's HTTP face: the real REST paths for jobs (batch/v1), pods, configmaps
 * and secrets (v1) in a namespace, list and watch (`?watch=true`, a chunked stream of
 * `{type, object}` lines resuming from `resourceVersion`, 410 Gone once compacted), pod logs, and
 * a Status body with every error. What a request does to the cluster is in cluster.ts.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { Cluster, Propagation } from "./cluster.js";
import {
  type KubeObject,
  matches,
  parseSelector,
  qualified,
  RESOURCES,
  type Resource,
  status,
  validate,
} from "./objects.js";
import type { StoreEvent } from "./store.js";

export type Verb = "create" | "get" | "list" | "watch" | "delete" | "log" | "other";

export interface RecordedRequest {
  method: string;
  verb: Verb;
  resource: string;
  namespace: string;
  name: string | null;
  /** Milliseconds the fake spent answering (a watch: until its headers went out). */
  ms: number;
}

export interface ServerOptions {
  /** The bearer token clients must present (from the kubeconfig). */
  token: string;
  /** Added to every create, to stand in for etcd's write latency. */
  createLatencyMs?: number;
}

interface OpenWatch {
  res: ServerResponse;
  stop(): void;
}

const PATH =
  /^\/(?:api\/v1|apis\/batch\/v1)\/namespaces\/([^/]+)\/(jobs|pods|configmaps|secrets)(?:\/([^/]+))?(?:\/(log))?$/;

export class FakeApiServer {
  readonly requests: RecordedRequest[] = [];
  readonly #server: Server;
  readonly #watches = new Set<OpenWatch>();
  readonly #options: ServerOptions;
  #failWatches = 0;

  constructor(
    private readonly cluster: Cluster,
    options: ServerOptions,
  ) {
    this.#options = options;
    this.#server = createServer((req, res) => {
      this.#handle(req, res).catch((e: unknown) => {
        if (!res.headersSent) send(res, 500, status(500, "InternalError", String(e)));
        else res.end();
      });
    });
    // The executor keeps its watches open; do not let Node's idle timeouts cut them.
    this.#server.requestTimeout = 0;
    this.#server.headersTimeout = 0;
    this.#server.keepAliveTimeout = 60_000;
  }

  async listen(): Promise<string> {
    await new Promise<void>((resolve) => this.#server.listen(0, "127.0.0.1", resolve));
    const { port } = this.#server.address() as AddressInfo;
    return `http://127.0.0.1:${port}`;
  }

  /**
   * Ends every open watch with a 410 Gone ERROR event after forgetting the history, as etcd
   * compaction does: a client must relist to carry on.
   */
  expireWatches(): void {
    this.cluster.store.compact();
    for (const w of [...this.#watches]) {
      writeEvent(w.res, "ERROR", gone(this.cluster.store.horizon));
      w.stop();
    }
  }

  /** Answers the next `count` watch requests with 500, as an apiserver in trouble would. */
  failNextWatches(count: number): void {
    this.#failWatches = count;
  }

  /** Ends every open watch cleanly, as an apiserver does when a watch reaches its timeout. */
  closeWatches(): void {
    for (const w of [...this.#watches]) w.stop();
  }

  get openWatches(): number {
    return this.#watches.size;
  }

  async close(): Promise<void> {
    this.closeWatches();
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = performance.now();
    const url = new URL(req.url ?? "/", "http://fake");
    const m = PATH.exec(url.pathname);
    const method = req.method ?? "GET";
    const watching = url.searchParams.get("watch") === "true";
    const verb: Verb = !m
      ? "other"
      : m[4] === "log"
        ? "log"
        : method === "POST"
          ? "create"
          : method === "DELETE"
            ? "delete"
            : method === "GET"
              ? m[3]
                ? "get"
                : watching
                  ? "watch"
                  : "list"
              : "other";
    const record = () =>
      this.requests.push({
        method,
        verb,
        resource: m?.[2] ?? url.pathname,
        namespace: m?.[1] ?? "",
        name: m?.[3] ?? null,
        ms: performance.now() - started,
      });
    if (req.headers.authorization !== `Bearer ${this.#options.token}`) {
      record();
      send(res, 401, status(401, "Unauthorized", "Unauthorized"));
      return;
    }
    // The fake's own control endpoint: what it was asked, for benchmarks in another process.
    if (url.pathname === "/fake/requests") {
      send(res, 200, this.requests);
      return;
    }
    if (!m) {
      record();
      send(res, 404, status(404, "NotFound", `the server could not find ${url.pathname}`));
      return;
    }
    const namespace = m[1] as string;
    const resource = RESOURCES[m[2] as Resource["plural"]];
    const name = m[3] ? decodeURIComponent(m[3]) : null;
    // The group must match the path: pods under /apis/batch/v1 do not exist.
    if ((resource.group === "batch") !== url.pathname.startsWith("/apis/batch/")) {
      record();
      send(res, 404, status(404, "NotFound", "the server could not find the resource"));
      return;
    }
    try {
      switch (verb) {
        case "create":
          return await this.#create(req, res, resource, namespace);
        case "get":
          return this.#get(res, resource, namespace, name as string);
        case "list":
          return this.#list(res, resource, namespace, url);
        case "watch":
          if (this.#failWatches > 0) {
            this.#failWatches -= 1;
            send(res, 500, status(500, "InternalError", "etcdserver: request timed out"));
            return;
          }
          return this.#watch(res, resource, namespace, url);
        case "delete":
          return await this.#delete(req, res, resource, namespace, name as string, url);
        case "log":
          return this.#log(res, namespace, name as string, url);
        default: {
          send(res, 405, status(405, "MethodNotAllowed", `${method} is not supported`));
          return;
        }
      }
    } finally {
      record();
    }
  }

  async #create(
    req: IncomingMessage,
    res: ServerResponse,
    resource: Resource,
    namespace: string,
  ): Promise<void> {
    const body = (await readJson(req)) as KubeObject | null;
    if (this.#options.createLatencyMs) await sleep(this.#options.createLatencyMs);
    if (!body || typeof body !== "object" || !body.metadata) {
      send(res, 400, status(400, "BadRequest", "the body is not an object with metadata"));
      return;
    }
    if (body.metadata.namespace && body.metadata.namespace !== namespace) {
      send(
        res,
        400,
        status(400, "BadRequest", "the namespace of the object does not match the request"),
      );
      return;
    }
    body.metadata.namespace = namespace;
    body.apiVersion = resource.apiVersion;
    body.kind = resource.kind;
    const problems = validate(resource, body);
    if (problems.length > 0) {
      const what = `${resource.kind} "${body.metadata.name}" is invalid: ${problems.join(", ")}`;
      send(res, 422, status(422, "Invalid", what, { name: body.metadata.name }));
      return;
    }
    const created = this.cluster.create(resource.plural, body);
    if (!created) {
      send(
        res,
        409,
        status(
          409,
          "AlreadyExists",
          `${qualified(resource)} "${body.metadata.name}" already exists`,
          {
            name: body.metadata.name,
            group: resource.group,
            kind: resource.plural,
          },
        ),
      );
      return;
    }
    send(res, 201, created);
  }

  #get(res: ServerResponse, resource: Resource, namespace: string, name: string): void {
    const obj = this.cluster.store.get(resource.plural, namespace, name);
    if (!obj) {
      send(res, 404, notFound(resource, name));
      return;
    }
    send(res, 200, obj);
  }

  #list(res: ServerResponse, resource: Resource, namespace: string, url: URL): void {
    const selector = parseSelector(url.searchParams.get("labelSelector") ?? "");
    if (selector instanceof Error) {
      send(res, 400, status(400, "BadRequest", selector.message));
      return;
    }
    const items = this.cluster.store.list(resource.plural, namespace, (o) =>
      matches(o.metadata.labels, selector),
    );
    send(res, 200, {
      apiVersion: resource.apiVersion,
      kind: `${resource.kind}List`,
      metadata: { resourceVersion: String(this.cluster.store.resourceVersion) },
      items,
    });
  }

  #watch(res: ServerResponse, resource: Resource, namespace: string, url: URL): void {
    const selector = parseSelector(url.searchParams.get("labelSelector") ?? "");
    if (selector instanceof Error) {
      send(res, 400, status(400, "BadRequest", selector.message));
      return;
    }
    const store = this.cluster.store;
    const rvParam = url.searchParams.get("resourceVersion") ?? "";
    res.writeHead(200, { "Content-Type": "application/json", "Transfer-Encoding": "chunked" });
    res.flushHeaders();
    const wanted = (e: StoreEvent) =>
      e.resource === resource.plural &&
      e.namespace === namespace &&
      matches(e.object.metadata.labels, selector);
    // No version ("" or "0"): the current state as ADDED events, then what follows.
    if (rvParam === "" || rvParam === "0") {
      for (const obj of store.list(resource.plural, namespace, (o) =>
        matches(o.metadata.labels, selector),
      )) {
        writeEvent(res, "ADDED", obj);
      }
    } else {
      const replay = store.since(Number(rvParam));
      if (replay === null) {
        writeEvent(res, "ERROR", gone(store.horizon, Number(rvParam)));
        res.end();
        return;
      }
      for (const e of replay) if (wanted(e)) writeEvent(res, e.type, e.object);
    }
    let timer: NodeJS.Timeout | undefined;
    const unsubscribe = store.subscribe((e) => {
      if (wanted(e)) writeEvent(res, e.type, e.object);
    });
    const open: OpenWatch = {
      res,
      stop: () => {
        unsubscribe();
        if (timer) clearTimeout(timer);
        this.#watches.delete(open);
        res.end();
      },
    };
    this.#watches.add(open);
    const timeout = Number(url.searchParams.get("timeoutSeconds") ?? "0");
    if (timeout > 0) timer = setTimeout(open.stop, timeout * 1000);
    res.on("close", open.stop);
  }

  async #delete(
    req: IncomingMessage,
    res: ServerResponse,
    resource: Resource,
    namespace: string,
    name: string,
    url: URL,
  ): Promise<void> {
    const body = (await readJson(req)) as { propagationPolicy?: string } | null;
    const policy = url.searchParams.get("propagationPolicy") ?? body?.propagationPolicy ?? null;
    if (policy !== null && !["Background", "Foreground", "Orphan"].includes(policy)) {
      send(res, 400, status(400, "BadRequest", `invalid propagationPolicy ${policy}`));
      return;
    }
    const deleted = this.cluster.delete(
      resource.plural,
      namespace,
      name,
      (policy as Propagation | null) ?? undefined,
    );
    if (!deleted) {
      send(res, 404, notFound(resource, name));
      return;
    }
    send(
      res,
      200,
      status(200, "", "", { name, group: resource.group, kind: resource.plural, uid: deleted }),
    );
  }

  #log(res: ServerResponse, namespace: string, name: string, url: URL): void {
    const pod = this.cluster.store.get("pods", namespace, name);
    if (!pod) {
      send(res, 404, notFound(RESOURCES.pods, name));
      return;
    }
    const container = url.searchParams.get("container") ?? pod.spec.containers[0].name;
    const log = this.cluster.kubelet.log(pod, container);
    if (log === null) {
      const msg = `container "${container}" in pod "${name}" is waiting to start: ContainerCreating`;
      send(res, 400, status(400, "BadRequest", msg));
      return;
    }
    let text = log;
    const tailLines = Number(url.searchParams.get("tailLines") ?? "0");
    if (tailLines > 0) {
      const lines = text.split(/(?<=\n)/);
      text = lines.slice(-tailLines).join("");
    }
    const limitBytes = Number(url.searchParams.get("limitBytes") ?? "0");
    let body = Buffer.from(text);
    if (limitBytes > 0) body = body.subarray(0, limitBytes);
    res.writeHead(200, { "Content-Type": "text/plain", "Content-Length": body.length });
    res.end(body);
  }
}

function notFound(resource: Resource, name: string) {
  return status(404, "NotFound", `${qualified(resource)} "${name}" not found`, {
    name,
    group: resource.group,
    kind: resource.plural,
  });
}

function gone(horizon: number, asked?: number) {
  const what = asked === undefined ? "" : `${asked} `;
  return status(410, "Expired", `too old resource version: ${what}(${horizon})`);
}

function writeEvent(res: ServerResponse, type: string, object: object): void {
  res.write(`${JSON.stringify({ type, object })}\n`);
}

function send(res: ServerResponse, code: number, body: object): void {
  const text = JSON.stringify(body);
  res.writeHead(code, {
    "Content-Type": "application/json",
    "Content-Length": Buffer.byteLength(text),
  });
  res.end(text);
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  if (chunks.length === 0) return null;
  const text = Buffer.concat(chunks).toString("utf8");
  if (text.trim() === "") return null;
  return JSON.parse(text);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
