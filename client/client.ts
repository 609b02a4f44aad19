/**
 * The client of the HTTP API (runner/server/api.ts), shared by the GitHub Action and the CLI
 * through REPRISE_SERVER: both talk to a server over HTTP only (docs/design.md section 1). Plain
 * fetch, no Node-only API. Reads, and the abort (asking twice is asking once), are
 * retried with backoff on network errors, 429 and 5xx; any other write is retried only when the
 * request never reached the server (connection refused), so nothing is started twice.
 */
import type { ArtifactRef } from "../core/artifacts/ref.js";
import type { ExecutionDocument } from "../core/report/document.js";
import { sleep } from "./sleep.js";

export class ApiClientError extends Error {
  override readonly name = "ApiClientError";
  constructor(
    /** The HTTP status, or 0 when the server could not be reached. */
    readonly status: number,
    readonly code: string,
    message: string,
    /** The whole error body (an invalid spec's `errors`, say). */
    readonly body: unknown = null,
  ) {
    super(message);
  }

  /** Worth asking again: the server was not reached, was busy (429) or failed (5xx). */
  get transient(): boolean {
    return transientStatus(this.status);
  }
}

function transientStatus(status: number): boolean {
  return status === 0 || status === 429 || status >= 500;
}

export interface ClientOptions {
  /** The server's base URL, e.g. https://reprise.example.com. */
  server: string;
  /** An API token or an OIDC token; a function is asked again for each request. */
  token: string | (() => Promise<string>) | null;
  /** Attempts for a retried request (default 5), and the first backoff (default 500 ms, doubling). */
  attempts?: number;
  backoffMs?: number;
  fetch?: typeof fetch;
}

export interface RegisterBody {
  sha: string;
  /** The branch to record; from an OIDC token, only its own `ref` claim at its `sha`. */
  ref: string | null;
  /** reprise.yaml at the commit. */
  spec: string;
  /** `git cat-file commit <sha>`, base64. */
  commit: string;
  /** Every tree object the commit reaches, base64. */
  trees: string[];
}

/** An artifact of a repository, as `GET /repos/{repo}/artifacts/{digest}` describes it. */
export interface ArtifactMetadata extends ArtifactRef {
  /** Where its bytes were first produced; null for an upload. */
  producer: { execution: string; node: string; taskDigest: string } | null;
  uploadedBy: string | null;
  createdAt: string;
  /** Whether its bytes are in the server's artifact store. */
  present: boolean;
}

/** What an upload answers: the artifact, and whether this upload recorded it (201) or not (200). */
export interface UploadedArtifact extends ArtifactMetadata {
  created: boolean;
}

/** One artifact an execution's node read (`input`) or wrote (`output`). */
export interface ExecutionArtifact {
  node: string;
  direction: "input" | "output";
  name: string;
  ref: ArtifactRef;
  producer: ArtifactMetadata["producer"];
  uploadedBy: string | null;
}

/** A request body: JSON (sent as such), or bytes (sent as they are). */
type Body = { json: unknown } | { bytes: Uint8Array | ReadableStream<Uint8Array>; type: string };

export class ApiClient {
  private readonly base: string;
  private readonly fetch: typeof fetch;

  constructor(private readonly opts: ClientOptions) {
    this.base = `${opts.server.replace(/\/+$/, "")}/api/v1`;
    this.fetch = opts.fetch ?? fetch;
  }

  /** A version, or null when the server has none for this SHA. */
  async version(repo: string, sha: string): Promise<Record<string, unknown> | null> {
    try {
      return await this.call("GET", `/repos/${enc(repo)}/versions/${sha}`);
    } catch (e) {
      if (e instanceof ApiClientError && e.status === 404) return null;
      throw e;
    }
  }

  register(repo: string, body: RegisterBody): Promise<Record<string, unknown>> {
    return this.call("POST", `/repos/${enc(repo)}/versions`, body);
  }

  start(
    repo: string,
    body: {
      workflow: string;
      sha?: string;
      production?: boolean;
      inputs?: Record<string, unknown>;
      overwriteCache?: boolean;
      pr?: number;
    },
  ): Promise<ExecutionDocument> {
    return this.call("POST", `/repos/${enc(repo)}/executions`, body);
  }

  relaunch(
    id: string,
    body: { sha?: string; recover?: boolean; overwriteCache?: boolean },
  ): Promise<ExecutionDocument> {
    return this.call("POST", `/executions/${enc(id)}/relaunch`, body);
  }

  execution(id: string): Promise<ExecutionDocument> {
    return this.call("GET", `/executions/${enc(id)}`);
  }

  /** Asks the execution to stop; 409 when it has finished (or is stopping already). */
  abort(id: string): Promise<ExecutionDocument> {
    return this.call("POST", `/executions/${enc(id)}/abort`, undefined, true);
  }

  /** The last `tail` bytes of a node's log (its last attempt), or null when it has none. */
  async logTail(id: string, node: string, tail: number): Promise<string | null> {
    return (await this.logs(id, node, { tail })).log;
  }

  /** A node's log: the last `tail` bytes of its last attempt, or of `attempt`. */
  logs(
    id: string,
    node: string,
    opts: { tail: number; attempt?: number | null },
  ): Promise<{ log: string | null } & Record<string, unknown>> {
    const attempt = opts.attempt ? `&attempt=${opts.attempt}` : "";
    return this.call(
      "GET",
      `/executions/${enc(id)}/nodes/${enc(node)}/logs?tail=${opts.tail}${attempt}`,
    );
  }

  /** Registered versions, newest first, the production one marked. */
  versions(
    repo: string,
    limit: number,
  ): Promise<{ repo: string; versions: Array<Record<string, unknown>> }> {
    return this.call("GET", `/repos/${enc(repo)}/versions?limit=${limit}`);
  }

  /** The production version and its activation history, newest first. */
  production(repo: string): Promise<{
    repo: string;
    current: Record<string, unknown> | null;
    history: Array<Record<string, unknown>>;
  }> {
    return this.call("GET", `/repos/${enc(repo)}/production`);
  }

  /** Makes a registered version the production one (activating it twice is activating it once). */
  activate(repo: string, body: { sha: string; reason?: string }): Promise<Record<string, unknown>> {
    return this.call("POST", `/repos/${enc(repo)}/production`, body, true);
  }

  /**
   * Uploads a file's bytes as artifact `digest` (the sha256 of the bytes) of `repo`: refused
   * (400, `digest_mismatch`) when they hash to something else. Bytes are sent again after a
   * network error or a 5xx (the same bytes under the same digest are one artifact); a stream
   * cannot be read twice, so it is sent once.
   */
  uploadFile(
    repo: string,
    digest: string,
    bytes: Uint8Array | ReadableStream<Uint8Array>,
  ): Promise<UploadedArtifact> {
    const body = { bytes, type: "application/octet-stream" };
    const path = `/repos/${enc(repo)}/artifacts/${enc(digest)}`;
    return this.send("PUT", path, body, bytes instanceof Uint8Array).then((r) => this.parsed(r));
  }

  /**
   * Records a directory of `repo` from its manifest's canonical bytes (core/artifacts/manifest.ts
   * `manifestBytes`), whose sha256 is `digest`: every file it lists must be uploaded first
   * (422 `missing_artifact` names the first that is not).
   */
  putManifest(repo: string, digest: string, manifest: Uint8Array): Promise<UploadedArtifact> {
    const body = { bytes: manifest, type: "application/json" };
    const path = `/repos/${enc(repo)}/artifacts/${enc(digest)}?type=directory`;
    return this.send("PUT", path, body, true).then((r) => this.parsed(r));
  }

  /** Whether `repo` holds the artifact and the server has its bytes (an upload can be skipped). */
  async headArtifact(repo: string, digest: string): Promise<boolean> {
    try {
      await this.send("HEAD", `/repos/${enc(repo)}/artifacts/${enc(digest)}`, undefined, true);
      return true;
    } catch (e) {
      if (e instanceof ApiClientError && e.status === 404) return false;
      throw e;
    }
  }

  /** An artifact of `repo`, or null when it is not one of its artifacts. */
  async artifactMetadata(repo: string, digest: string): Promise<ArtifactMetadata | null> {
    try {
      return await this.call("GET", `/repos/${enc(repo)}/artifacts/${enc(digest)}`);
    } catch (e) {
      if (e instanceof ApiClientError && e.status === 404) return null;
      throw e;
    }
  }

  /** An artifact's bytes: a file's as they are, a directory's as a tar. */
  async artifactContent(repo: string, digest: string): Promise<ReadableStream<Uint8Array>> {
    const res = await this.send(
      "GET",
      `/repos/${enc(repo)}/artifacts/${enc(digest)}/content`,
      undefined,
      true,
    );
    return res.body ?? new ReadableStream({ start: (c) => c.close() });
  }

  /** The artifacts an execution's nodes read and wrote, each with where it was first produced. */
  executionArtifacts(
    repo: string,
    id: string,
  ): Promise<{ execution: string; repo: string; artifacts: ExecutionArtifact[] }> {
    return this.call("GET", `/repos/${enc(repo)}/executions/${enc(id)}/artifacts`);
  }

  /** `idempotent`: sending it twice does what sending it once does, so it is retried as a read. */
  private async call<T>(
    method: string,
    path: string,
    body?: unknown,
    idempotent = method === "GET",
  ): Promise<T> {
    return this.parsed(
      await this.send(method, path, body === undefined ? undefined : { json: body }, idempotent),
    );
  }

  private async parsed<T>(res: Response): Promise<T> {
    const text = await res.text();
    try {
      return (text ? JSON.parse(text) : null) as T;
    } catch {
      // Not JSON: nothing this client asks for answers so; the caller sees null.
      return null as T;
    }
  }

  /** The response to a request that succeeded (2xx), after the retries `idempotent` allows. */
  private async send(
    method: string,
    path: string,
    body: Body | undefined,
    idempotent: boolean,
  ): Promise<Response> {
    // A stream is read once: it cannot be sent a second time.
    const once = body !== undefined && "bytes" in body && !(body.bytes instanceof Uint8Array);
    const attempts = once ? 1 : (this.opts.attempts ?? 5);
    let wait = this.opts.backoffMs ?? 500;
    for (let attempt = 1; ; attempt++) {
      const headers: Record<string, string> = { accept: "application/json" };
      const token =
        typeof this.opts.token === "function" ? await this.opts.token() : this.opts.token;
      if (token) headers.authorization = `Bearer ${token}`;
      if (body !== undefined)
        headers["content-type"] = "json" in body ? "application/json" : body.type;
      let res: Response;
      try {
        res = await this.fetch(`${this.base}${path}`, {
          method,
          headers,
          ...(body === undefined
            ? {}
            : "json" in body
              ? { body: JSON.stringify(body.json) }
              : // A stream body needs `duplex: "half"` in Node's fetch (a request sent as it is read).
                {
                  body: body.bytes as Uint8Array<ArrayBuffer>,
                  ...(once ? { duplex: "half" } : {}),
                }),
        });
      } catch (e) {
        const reached = !refused(e);
        if (attempt < attempts && (idempotent || !reached)) {
          await sleep(wait);
          wait *= 2;
          continue;
        }
        throw new ApiClientError(
          0,
          "unreachable",
          `cannot reach the Reprise server at ${this.opts.server}: ${cause(e)}`,
        );
      }
      if (idempotent && transientStatus(res.status) && attempt < attempts) {
        await res.body?.cancel().catch(() => undefined);
        await sleep(wait);
        wait *= 2;
        continue;
      }
      if (res.ok) return res;
      const text = await res.text();
      let parsed: unknown = null;
      try {
        parsed = text ? JSON.parse(text) : null;
      } catch {
        // Not JSON: a proxy's error page, say; reported below with the status.
      }
      const err = (parsed as { error?: { code?: string; message?: string } } | null)?.error;
      throw new ApiClientError(
        res.status,
        err?.code ?? "http_error",
        err?.message ??
          `${method} ${path} answered ${res.status}${text ? `: ${text.slice(0, 200)}` : ""}`,
        parsed,
      );
    }
  }
}

const enc = encodeURIComponent;

function cause(e: unknown): string {
  const c = (e as { cause?: { code?: string; message?: string } }).cause;
  return c?.code ?? c?.message ?? (e as Error).message;
}

/** The connection was refused: the request never reached a server, so it may be sent again. */
function refused(e: unknown): boolean {
  const code = (e as { cause?: { code?: string } }).cause?.code;
  return code === "ECONNREFUSED" || code === "ENOTFOUND" || code === "EAI_AGAIN";
}
