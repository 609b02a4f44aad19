/**
 * The pod's client of the runner's broker (../ARTIFACTS.md, "The broker"): JSON over HTTP with
 * the attempt's bearer token. Failures in transit (no answer, 5xx, 429) are retried with backoff;
 * an answer that says no is an error naming what to check.
 */
import type { ArtifactRef } from "../../../../core/artifacts/ref.js";
import type { PresignedRequest } from "../../../artifacts/store.js";
import {
  networkCode,
  type RetryPolicy,
  retryAfterMs,
  TransientError,
  transientStatus,
  withRetries,
} from "./retry.js";

/** A presigned request as it arrives in JSON (`expires` is a string there, and not needed). */
export type SignedRequest = Pick<PresignedRequest, "method" | "url" | "headers">;

export interface InputAnswer {
  name: string;
  ref: ArtifactRef;
  blobs: Record<string, SignedRequest>;
}

export type TaskState =
  | { state: "waiting" | "running" }
  | { state: "terminated"; exitCode: number };

export type UploadAnswer =
  | { digest: string; present: true }
  | { digest: string; put: SignedRequest }
  | {
      digest: string;
      multipart: { uploadId: string; partBytes: number; parts: SignedRequest[] };
    };

export interface CompletedPart {
  partNumber: number;
  etag: string;
}

/** The broker refused, or could not be reached after every retry. */
export class BrokerError extends Error {
  override readonly name = "BrokerError";
  constructor(
    message: string,
    /** The HTTP status of the refusal; null when it never answered. */
    readonly status: number | null,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** Most blobs one `uploads` request may ask about (the broker's limit). */
export const MAX_UPLOAD_BLOBS = 1000;
/** The long poll's longest wait the broker grants. */
export const MAX_WAIT_SECONDS = 30;
/** Beyond the time a request may legitimately take, how long before it counts as lost. */
const REQUEST_SLACK_MS = 30_000;

export interface BrokerClientOptions {
  /** REPRISE_BROKER_URL */
  url: string;
  /** REPRISE_BROKER_TOKEN */
  token: string;
  /** REPRISE_ATTEMPT: the attempt's handle. */
  attempt: string;
  retry: RetryPolicy;
  signal?: AbortSignal;
  log?: (line: string) => void;
}

export class BrokerClient {
  readonly #base: string;
  constructor(readonly options: BrokerClientOptions) {
    this.#base = `${options.url.replace(/\/+$/, "")}/v1/attempts/${encodeURIComponent(options.attempt)}`;
  }

  async inputs(): Promise<InputAnswer[]> {
    const body = (await this.#call("POST", "/inputs", {})) as { inputs?: unknown };
    if (!Array.isArray(body?.inputs)) throw this.#unexpected("/inputs", body);
    return body.inputs as InputAnswer[];
  }

  /**
   * The task container's state, waiting at most `waitSeconds` for a change. `retry` overrides
   * the client's policy (the long poll retries without end: the Job's deadline ends it).
   */
  async task(waitSeconds: number, retry?: RetryPolicy): Promise<TaskState> {
    const wait = Math.max(0, Math.min(MAX_WAIT_SECONDS, Math.floor(waitSeconds)));
    const body = (await this.#call("GET", `/task?waitSeconds=${wait}`, undefined, {
      timeoutMs: wait * 1000 + REQUEST_SLACK_MS,
      retry,
    })) as TaskState;
    if (body?.state === "terminated" ? typeof body.exitCode !== "number" : !body?.state)
      throw this.#unexpected("/task", body);
    return body;
  }

  async uploads(blobs: ReadonlyArray<{ digest: string; size: number }>): Promise<UploadAnswer[]> {
    const body = (await this.#call("POST", "/uploads", { blobs })) as { blobs?: unknown };
    if (!Array.isArray(body?.blobs) || body.blobs.length !== blobs.length)
      throw this.#unexpected("/uploads", body);
    return body.blobs as UploadAnswer[];
  }

  async complete(digest: string, uploadId: string, parts: CompletedPart[]): Promise<void> {
    await this.#call("POST", "/uploads/complete", { digest, uploadId, parts });
  }

  async #call(
    method: "GET" | "POST",
    route: string,
    body: unknown,
    opts: { timeoutMs?: number; retry?: RetryPolicy } = {},
  ): Promise<unknown> {
    const { token, signal, log } = this.options;
    const url = this.#base + route;
    const where = `the broker (${method} ${url})`;
    return withRetries(
      opts.retry ?? this.options.retry,
      signal,
      async () => {
        let res: Response;
        try {
          res = await fetch(url, {
            method,
            headers: {
              authorization: `Bearer ${token}`,
              accept: "application/json",
              ...(body === undefined ? {} : { "content-type": "application/json" }),
            },
            ...(body === undefined ? {} : { body: JSON.stringify(body) }),
            signal: AbortSignal.any([
              AbortSignal.timeout(opts.timeoutMs ?? REQUEST_SLACK_MS),
              ...(signal ? [signal] : []),
            ]),
          });
        } catch (e) {
          const code = networkCode(e);
          if (code === null && signal?.aborted) throw e;
          throw new TransientError(
            `could not reach ${where}: ${code ?? (e as Error).message}; check REPRISE_BROKER_URL (the runner's REPRISE_KUBE_BROKER_URL) and that the runner is up and reachable from the pod`,
            null,
            { cause: e },
          );
        }
        const text = await res.text().catch(() => "");
        if (res.ok) {
          if (res.status === 204 || text === "") return null;
          try {
            return JSON.parse(text) as unknown;
          } catch {
            throw new BrokerError(
              `${where} answered ${res.status} with something that is not JSON: ${text.slice(0, 200)}`,
              res.status,
            );
          }
        }
        const said = errorOf(text);
        if (transientStatus(res.status))
          throw new TransientError(
            `${where} answered ${res.status}${said ? `: ${said}` : ""}`,
            retryAfterMs(res.headers.get("retry-after")),
          );
        throw new BrokerError(refusal(res.status, this.options.attempt, where, said), res.status);
      },
      (e, waitMs) => log?.(`${e.message}; trying again in ${waitMs} ms`),
    ).catch((e: unknown) => {
      if (e instanceof BrokerError || !(e instanceof Error) || e.name === "StoppedError") throw e;
      throw new BrokerError(e.message, null, { cause: e });
    });
  }

  #unexpected(route: string, body: unknown): BrokerError {
    return new BrokerError(
      `the broker's ${route} answer is not what this helper understands: ${JSON.stringify(body)?.slice(0, 300)} (is the runner a different version of Reprise than the helper image, REPRISE_KUBE_HELPER_IMAGE?)`,
      null,
    );
  }
}

function errorOf(text: string): string | null {
  try {
    const e = (JSON.parse(text) as { error?: unknown }).error;
    return typeof e === "string" ? e : null;
  } catch {
    return text.trim().slice(0, 300) || null;
  }
}

function refusal(status: number, attempt: string, where: string, said: string | null): string {
  const why =
    status === 401
      ? `it refused the token for attempt ${attempt}: REPRISE_BROKER_TOKEN is not this attempt's (the attempt's Secret, key broker-token), or the runners' REPRISE_KUBE_BROKER_KEY changed`
      : status === 404
        ? `it knows no attempt ${attempt} (REPRISE_ATTEMPT): the runner has not seen its Job`
        : status === 410
          ? `attempt ${attempt} is finished, or uses no artifacts`
          : `it answered ${status}`;
  return `${where}: ${why}${said ? ` (${said})` : ""}`;
}
