/**
 * The broker (ARTIFACTS.md, "The broker"): the HTTP listener through which an attempt's helper
 * containers, holding no storage credential, get presigned URLs for exactly that attempt's
 * blobs, and learn when its task container has ended. Stateless but for the key: what an attempt
 * may do is read from `lookup` (the executor's informers), so any runner replica sharing the key
 * serves any attempt, also after a restart.
 *
 * Statuses: 400 a malformed request, 401 a wrong or missing token, 404 a handle this runner does
 * not know, 410 an attempt that finished or moves no artifacts, 409 what the store refused as
 * asked (a missing input, parts it will not assemble), 413 a body over 1 MiB, 502 the store
 * failed (worth retrying). Every body is JSON; errors are `{"error": "message"}`.
 */
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { link, mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import {
  type ArtifactRef,
  type ArtifactType,
  isArtifactDigest,
} from "../../../core/artifacts/ref.js";
import { ArtifactShapeError, inParallel, readManifest } from "../../artifacts/ingest.js";
import {
  BlobMismatchError,
  BlobMissingError,
  BlobStoreError,
  type CompletedPart,
  type PresignedRequest,
  type PresigningBlobStore,
} from "../../artifacts/store.js";

/** Request bodies are read whole: 1,000 blobs or 10,000 parts fit in well under this. */
const MAX_BODY_BYTES = 1024 * 1024;
const MAX_UPLOAD_BLOBS = 1_000;
/** S3's most parts in one multipart upload. */
const MAX_PARTS = 10_000;
const MAX_WAIT_SECONDS = 30;
const DEFAULT_MULTIPART_BYTES = 1024 ** 3;
/** S3's largest single PUT: a blob above it can only go in parts. */
const MAX_PUT_BYTES = 5 * 1024 ** 3;
/** The part size asked of the store (a wish: it raises it to fit S3's limits). */
const DEFAULT_PART_BYTES = 64 * 1024 * 1024;
/** URLs outlive the Job's deadline by this, and never last less. */
const URL_MARGIN_SECONDS = 600;
/** An attempt with no deadline: a day (the store clamps to its own limit, S3's 7 days). */
const NO_DEADLINE_SECONDS = 24 * 3600;
const MIN_KEY_BYTES = 32;
/** HEADs to the store at once when asked about many blobs. */
const PARALLEL_LOOKUPS = 16;
/** After close(), requests still running this long are cut. */
const CLOSE_GRACE_MS = 5_000;
/** An attempt's handle (core/engine/attempt-name.ts): a DNS-1123 label. */
const HANDLE = /^[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?$/;
const ROUTE = /^\/v1\/attempts\/([^/]+)\/(inputs|task|uploads|uploads\/complete)$/;
const METHODS: Record<string, "GET" | "POST"> = {
  inputs: "POST",
  task: "GET",
  uploads: "POST",
  "uploads/complete": "POST",
};

export type TaskState =
  | { state: "waiting" | "running" }
  | { state: "terminated"; exitCode: number };

export interface BrokerAttempt {
  /** Artifact inputs by name. */
  inputs: Record<string, ArtifactRef>;
  /** Artifact outputs by name. */
  outputs: Record<string, ArtifactType>;
  /** Epoch ms when the Job's deadline falls (URLs expire then + 10 min); null: none. */
  deadlineMs: number | null;
  /** The Job is Complete or Failed. */
  finished: boolean;
  /** The `task` container's state, as last seen. */
  task: TaskState;
}

export interface BrokerOptions {
  /** "HOST:PORT" (REPRISE_KUBE_BROKER_LISTEN); port 0 picks a free one. */
  listen: string;
  /** What pods use (REPRISE_KUBE_BROKER_URL); default http://HOST:boundPort. */
  publicUrl?: string;
  /** The HMAC key of the attempts' tokens (at least 32 bytes; replicas share it). */
  key: Buffer;
  store: PresigningBlobStore;
  /** REPRISE_KUBE_MULTIPART_BYTES, default 1 GiB: blobs above are uploaded in parts. */
  multipartBytes?: number;
  /** The part size asked of the store for a multipart upload, default 64 MiB (a wish). */
  partBytes?: number;
  lookup(handle: string): BrokerAttempt | null;
  /** Calls back when what lookup(handle) returns may have changed; returns an unsubscribe. */
  onChange(handle: string, callback: () => void): () => void;
  log?: (message: string, fields: Record<string, unknown>) => void;
}

export interface Broker {
  /** Where pods reach it, without a trailing slash. */
  url: string;
  /** The token an attempt's helpers present (kept in its Secret). */
  token(handle: string): string;
  /** Stops listening; long polls are answered at once, running requests finish. */
  close(): Promise<void>;
}

/** base64url(HMAC-SHA256(key, "reprise-attempt:" + handle)). */
export function attemptToken(key: Buffer, handle: string): string {
  return createHmac("sha256", key).update(`reprise-attempt:${handle}`).digest("base64url");
}

/**
 * The broker's key: REPRISE_KUBE_BROKER_KEY (`value`, at least 32 characters) when set, else
 * `<dataDir>/kubernetes/broker.key`, 32 random bytes created 0600 on first use.
 */
export async function loadBrokerKey(value: string | undefined, dataDir: string): Promise<Buffer> {
  if (value !== undefined && value !== "") {
    const key = Buffer.from(value, "utf8");
    if (value.length < MIN_KEY_BYTES)
      throw new Error(
        `REPRISE_KUBE_BROKER_KEY is ${value.length} characters long: it must be at least ${MIN_KEY_BYTES} (e.g. the output of \`openssl rand -base64 32\`), the same on every runner replica`,
      );
    return key;
  }
  if (!dataDir)
    throw new Error(
      "the artifact broker needs a key: set REPRISE_KUBE_BROKER_KEY (at least 32 characters, the same on every runner replica) or REPRISE_DATA_DIR",
    );
  const dir = join(dataDir, "kubernetes");
  const path = join(dir, "broker.key");
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    // Written aside and linked in: a concurrent start never reads a half-written key.
    const aside = `${path}.${process.pid}.${randomBytes(4).toString("hex")}`;
    await writeFile(aside, randomBytes(MIN_KEY_BYTES), { mode: 0o600 });
    try {
      await link(aside, path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
    } finally {
      await rm(aside, { force: true });
    }
    const key = await readFile(path);
    if (key.length < MIN_KEY_BYTES)
      throw new Error(
        `${path} holds ${key.length} bytes, and a broker key needs ${MIN_KEY_BYTES}: delete it to have a new one made (running attempts' uploads then fail), or set REPRISE_KUBE_BROKER_KEY`,
      );
    return key;
  } catch (e) {
    if (e instanceof Error && e.message.startsWith(path)) throw e;
    throw new Error(
      `could not read or create the artifact broker's key ${path}: ${(e as Error).message}; fix the data directory's permissions, or set REPRISE_KUBE_BROKER_KEY`,
      { cause: e },
    );
  }
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export async function startBroker(options: BrokerOptions): Promise<Broker> {
  const { host, port } = parseListen(options.listen);
  const { key, store } = options;
  if (key.length < MIN_KEY_BYTES)
    throw new Error(`the artifact broker's key is ${key.length} bytes: it needs ${MIN_KEY_BYTES}`);
  const multipartBytes = options.multipartBytes ?? DEFAULT_MULTIPART_BYTES;
  if (!Number.isSafeInteger(multipartBytes) || multipartBytes < 1 || multipartBytes > MAX_PUT_BYTES)
    throw new Error(
      `REPRISE_KUBE_MULTIPART_BYTES must be a whole number of bytes from 1 to ${MAX_PUT_BYTES} (one S3 PUT's limit), got ${multipartBytes}`,
    );
  const partBytes = options.partBytes ?? DEFAULT_PART_BYTES;
  /** Long polls waiting; each, called, answers at once. */
  const waiting = new Set<() => void>();
  let closing = false;

  function attemptFor(handle: string): BrokerAttempt {
    const attempt = options.lookup(handle);
    if (attempt === null)
      throw new HttpError(
        404,
        `no attempt ${handle} is known to this runner: its Job is gone, or was never created`,
      );
    if (attempt.finished)
      throw new HttpError(410, `attempt ${handle} has finished: the broker no longer serves it`);
    if (Object.keys(attempt.inputs).length === 0 && Object.keys(attempt.outputs).length === 0)
      throw new HttpError(
        410,
        `attempt ${handle} moves no artifacts: the broker does not serve it`,
      );
    return attempt;
  }

  async function inputs(attempt: BrokerAttempt) {
    const expiresInSeconds = urlSeconds(attempt);
    const out: Array<{ name: string; ref: ArtifactRef; blobs: Record<string, PresignedRequest> }> =
      [];
    for (const [name, ref] of Object.entries(attempt.inputs)) {
      const blobs: Record<string, PresignedRequest> = {
        [ref.artifact]: await store.presignGet(ref.artifact, { expiresInSeconds }),
      };
      if (ref.type === "directory") {
        const manifest = await readManifest(store, ref.artifact).catch((e: unknown) => {
          if (e instanceof BlobMissingError || e instanceof ArtifactShapeError)
            throw new HttpError(409, `input ${name}: ${e.message}`);
          throw e;
        });
        for (const entry of manifest.entries)
          if (entry.kind !== "symlink" && !(entry.digest in blobs))
            blobs[entry.digest] = await store.presignGet(entry.digest, { expiresInSeconds });
      }
      out.push({ name, ref, blobs });
    }
    return { inputs: out };
  }

  async function uploads(attempt: BrokerAttempt, body: unknown) {
    const wanted = uploadsAsked(body);
    const expiresInSeconds = urlSeconds(attempt);
    const answers = new Map<string, Record<string, unknown>>();
    await inParallel([...wanted], PARALLEL_LOOKUPS, async ([digest, size]) => {
      if (await store.has(digest)) answers.set(digest, { digest, present: true });
      else if (size <= multipartBytes)
        answers.set(digest, {
          digest,
          put: await store.presignPut(digest, size, { expiresInSeconds }),
        });
      else {
        const {
          uploadId,
          partBytes: chosen,
          parts,
        } = await store.presignMultipart(digest, size, {
          expiresInSeconds,
          partBytes,
        });
        answers.set(digest, { digest, multipart: { uploadId, partBytes: chosen, parts } });
      }
    });
    return {
      blobs: (body as { blobs: Array<{ digest: string }> }).blobs.map((b) => answers.get(b.digest)),
    };
  }

  async function complete(body: unknown): Promise<void> {
    const { digest, uploadId, parts } = completionAsked(body);
    await store.completeMultipart(digest, uploadId, parts);
  }

  async function task(handle: string, attempt: BrokerAttempt, waitSeconds: number) {
    if (attempt.task.state !== "terminated" && waitSeconds > 0 && !closing)
      await changeOf(handle, attempt.task.state, waitSeconds * 1000);
    const now = attemptFor(handle).task;
    return now.state === "terminated"
      ? { state: now.state, exitCode: now.exitCode }
      : { state: now.state };
  }

  /** Resolves when the task's state is no longer `seen`, after `ms`, or when the broker closes. */
  function changeOf(handle: string, seen: TaskState["state"], ms: number): Promise<void> {
    return new Promise((resolve) => {
      let done = false;
      let unsubscribe = () => {};
      const finish = () => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        waiting.delete(finish);
        unsubscribe();
        resolve();
      };
      const changed = () => {
        const now = options.lookup(handle);
        if (now === null || now.finished || now.task.state !== seen) finish();
      };
      const timer = setTimeout(finish, ms);
      waiting.add(finish);
      unsubscribe = options.onChange(handle, changed);
      if (done) unsubscribe();
      // It may have changed between the first look and the subscription.
      changed();
    });
  }

  /** Answers; once closing, without keep-alive, so that the server's close can end. */
  function reply(res: ServerResponse, status: number, body: unknown): void {
    if (closing) res.setHeader("connection", "close");
    send(res, status, body);
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://broker");
    const route = ROUTE.exec(url.pathname);
    if (route === null) throw new HttpError(404, `no such route: ${url.pathname}`);
    const [, handleName = "", action = ""] = route;
    const method = METHODS[action] as string;
    if (req.method !== method) {
      res.setHeader("allow", method);
      throw new HttpError(405, `${url.pathname} takes ${method}, not ${req.method}`);
    }
    if (!HANDLE.test(handleName))
      throw new HttpError(404, `not an attempt's handle: ${handleName}`);
    if (!authorized(req.headers.authorization, key, handleName)) {
      res.setHeader("www-authenticate", "Bearer");
      throw new HttpError(
        401,
        `a wrong or missing token for attempt ${handleName}: send Authorization: Bearer <the attempt's broker-token> (replicas must share REPRISE_KUBE_BROKER_KEY)`,
      );
    }
    const body = method === "POST" ? await readJson(req) : null;
    const attempt = attemptFor(handleName);
    switch (action) {
      case "inputs":
        return reply(res, 200, await inputs(attempt));
      case "uploads":
        return reply(res, 200, await uploads(attempt, body));
      case "uploads/complete":
        await complete(body);
        return reply(res, 204, null);
      default: {
        const answer = await task(handleName, attempt, waitOf(url.searchParams.get("waitSeconds")));
        // Nobody is left to answer when the pod hung up during the wait.
        if (!res.destroyed) reply(res, 200, answer);
      }
    }
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((e: unknown) => {
      const failure = asHttpError(e);
      const handleName = ROUTE.exec(new URL(req.url ?? "/", "http://broker").pathname)?.[1];
      options.log?.("kubernetes broker: refused a request", {
        handle: handleName,
        method: req.method,
        path: req.url?.split("?")[0],
        status: failure.status,
        error: failure.message,
      });
      if (res.headersSent || res.destroyed) {
        res.destroy();
        return;
      }
      // A body left unread (too large) would hold the connection: close it after answering.
      if (!req.complete) res.setHeader("connection", "close");
      reply(res, failure.status, { error: failure.message });
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once("error", (e) =>
      reject(
        new Error(
          `the artifact broker could not listen on ${options.listen} (REPRISE_KUBE_BROKER_LISTEN): ${e.message}`,
          { cause: e },
        ),
      ),
    );
    server.listen(port, host, () => resolve());
  });
  const bound = (server.address() as AddressInfo).port;
  const url = (
    options.publicUrl ?? `http://${host.includes(":") ? `[${host}]` : host}:${bound}`
  ).replace(/\/+$/, "");

  return {
    url,
    token: (handleName) => attemptToken(key, handleName),
    async close() {
      if (closing) return;
      closing = true;
      for (const answer of [...waiting]) answer();
      await new Promise<void>((resolve) => {
        const cut = setTimeout(() => server.closeAllConnections(), CLOSE_GRACE_MS);
        server.close(() => {
          clearTimeout(cut);
          resolve();
        });
        server.closeIdleConnections();
      });
    },
  };
}

function parseListen(listen: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(listen);
  const port = Number(m?.[3]);
  if (m === null || port > 65_535)
    throw new Error(
      `REPRISE_KUBE_BROKER_LISTEN must be HOST:PORT (e.g. 0.0.0.0:8091, or 127.0.0.1:0 for a free port), got ${JSON.stringify(listen)}`,
    );
  return { host: (m[1] ?? m[2]) as string, port };
}

/** How long an attempt's URLs last: past its deadline by the margin, never less than it. */
function urlSeconds(attempt: BrokerAttempt, now = Date.now()): number {
  if (attempt.deadlineMs === null) return NO_DEADLINE_SECONDS;
  return Math.max(
    URL_MARGIN_SECONDS,
    Math.ceil((attempt.deadlineMs - now) / 1000) + URL_MARGIN_SECONDS,
  );
}

function authorized(header: string | undefined, key: Buffer, handle: string): boolean {
  const m = /^Bearer +([A-Za-z0-9_-]+)$/i.exec(header ?? "");
  if (!m) return false;
  const given = Buffer.from(m[1] as string);
  const wanted = Buffer.from(attemptToken(key, handle));
  return given.length === wanted.length && timingSafeEqual(given, wanted);
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const tooLarge = () => new HttpError(413, `the request's body is over ${MAX_BODY_BYTES} bytes`);
  if (Number(req.headers["content-length"] ?? 0) > MAX_BODY_BYTES) throw tooLarge();
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) throw tooLarge();
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString("utf8");
  if (text.trim() === "") return null;
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new HttpError(400, `the request's body is not JSON: ${(e as Error).message}`);
  }
}

/** The blobs an `uploads` request asks about, by digest (a digest listed twice is asked once). */
function uploadsAsked(body: unknown): Map<string, number> {
  const blobs = (body as { blobs?: unknown } | null)?.blobs;
  if (!Array.isArray(blobs))
    throw new HttpError(400, `expected {"blobs": [{"digest": "sha256:...", "size": N}, ...]}`);
  if (blobs.length > MAX_UPLOAD_BLOBS)
    throw new HttpError(
      400,
      `${blobs.length} blobs in one request: ask about at most ${MAX_UPLOAD_BLOBS} at a time`,
    );
  const wanted = new Map<string, number>();
  for (const [i, blob] of blobs.entries()) {
    const { digest, size } = (blob ?? {}) as { digest?: unknown; size?: unknown };
    if (!isArtifactDigest(digest))
      throw new HttpError(
        400,
        `blobs[${i}].digest must be sha256:<64 lowercase hex>, got ${JSON.stringify(digest)}`,
      );
    if (typeof size !== "number" || !Number.isSafeInteger(size) || size < 0)
      throw new HttpError(
        400,
        `blobs[${i}].size must be a whole number of bytes, got ${JSON.stringify(size)}`,
      );
    const before = wanted.get(digest);
    if (before !== undefined && before !== size)
      throw new HttpError(400, `blob ${digest} is listed with two sizes, ${before} and ${size}`);
    wanted.set(digest, size);
  }
  return wanted;
}

function completionAsked(body: unknown): {
  digest: string;
  uploadId: string;
  parts: CompletedPart[];
} {
  const { digest, uploadId, parts } = (body ?? {}) as Record<string, unknown>;
  const shape = `expected {"digest": "sha256:...", "uploadId": "...", "parts": [{"partNumber": N, "etag": "..."}, ...]}`;
  if (!isArtifactDigest(digest))
    throw new HttpError(
      400,
      `digest must be sha256:<64 lowercase hex>, got ${JSON.stringify(digest)}: ${shape}`,
    );
  if (typeof uploadId !== "string" || uploadId === "" || uploadId.length > 1024)
    throw new HttpError(
      400,
      `uploadId must be the upload's id, as the uploads answer gave it: ${shape}`,
    );
  if (!Array.isArray(parts) || parts.length === 0 || parts.length > MAX_PARTS)
    throw new HttpError(400, `parts must list from 1 to ${MAX_PARTS} parts: ${shape}`);
  const out: CompletedPart[] = [];
  for (const [i, part] of parts.entries()) {
    const { partNumber, etag } = (part ?? {}) as Record<string, unknown>;
    if (
      typeof partNumber !== "number" ||
      !Number.isSafeInteger(partNumber) ||
      typeof etag !== "string"
    )
      throw new HttpError(400, `parts[${i}] must be {"partNumber": N, "etag": "..."}: ${shape}`);
    out.push({ partNumber, etag });
  }
  return { digest, uploadId, parts: out };
}

function waitOf(raw: string | null): number {
  if (raw === null || raw === "") return 0;
  const n = Number(raw);
  if (!/^\d+$/.test(raw) || n > MAX_WAIT_SECONDS)
    throw new HttpError(
      400,
      `waitSeconds must be a whole number from 0 to ${MAX_WAIT_SECONDS}, got ${JSON.stringify(raw)}`,
    );
  return n;
}

function asHttpError(e: unknown): HttpError {
  if (e instanceof HttpError) return e;
  const message = (e as Error)?.message ?? String(e);
  // What the store refused as asked: asking again will not change it.
  if (
    e instanceof BlobMismatchError ||
    e instanceof BlobMissingError ||
    e instanceof ArtifactShapeError
  )
    return new HttpError(409, message);
  if (e instanceof BlobStoreError)
    return new HttpError(502, `the artifact store failed: ${message}`);
  // The store's refusal of a size it cannot take (over S3's limits).
  if (e instanceof RangeError) return new HttpError(400, message);
  return new HttpError(500, `the broker failed: ${message}`);
}

function send(res: ServerResponse, status: number, body: unknown): void {
  if (body === null) {
    res.writeHead(status).end();
    return;
  }
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(text),
  });
  res.end(text);
}
