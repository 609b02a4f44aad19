/**
 * One presigned request to the store, sent with exactly its signed headers, its body streamed
 * (node:http, so Content-Length is the signed one and a file goes from disk to the socket without
 * being held). Answers: a body stream for a GET, the ETag for a PUT; S3's refusals as errors
 * that say what S3 said; failures in transit as TransientError (the caller retries).
 */
import { request as httpRequest, type IncomingMessage } from "node:http";
import { request as httpsRequest } from "node:https";
import type { Readable } from "node:stream";
import type { SignedRequest } from "./client.js";
import { networkCode, retryAfterMs, TransientError, transientStatus } from "./retry.js";

/** The store has no blob at that URL (S3's 404, NoSuchKey). */
export class NotFoundError extends Error {
  override readonly name = "NotFoundError";
}

/** The store refused the request (403: signature, expiry; other 4xx). */
export class RefusedError extends Error {
  override readonly name = "RefusedError";
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
  }
}

/** A connection that sends nothing for this long is taken for lost. */
const IDLE_MS = 60_000;

/** Sends `signed` and resolves once the response's head arrives (a 2xx), with its body unread. */
export function send(
  signed: SignedRequest,
  body: { length: number; open: () => Readable } | null,
  signal?: AbortSignal,
): Promise<IncomingMessage> {
  const url = new URL(signed.url);
  const what = `${signed.method} ${url.origin}${url.pathname}`;
  const request = url.protocol === "https:" ? httpsRequest : httpRequest;
  const headers: Record<string, string> = { ...signed.headers };
  // S3 takes no chunked upload: a body always goes with its length (signed or not).
  if (body !== null && !Object.keys(headers).some((h) => h.toLowerCase() === "content-length"))
    headers["content-length"] = String(body.length);
  return new Promise((resolve, reject) => {
    const req = request(url, { method: signed.method, headers, signal });
    req.setTimeout(IDLE_MS, () =>
      req.destroy(Object.assign(new Error(`no data for ${IDLE_MS} ms`), { code: "ETIMEDOUT" })),
    );
    req.once("error", (e) => reject(inTransit(what, e)));
    req.once("response", (res) => {
      const status = res.statusCode ?? 0;
      if (status >= 200 && status < 300) {
        resolve(res);
        return;
      }
      readText(res).then((text) => reject(refusal(what, status, text, res)), reject);
    });
    if (body === null) req.end();
    else {
      const source = body.open();
      source.once("error", (e) => req.destroy(e));
      req.once("error", () => source.destroy());
      source.pipe(req);
    }
  });
}

/** Sends a PUT and returns the ETag it answered with (a multipart upload's part needs it). */
export async function put(
  signed: SignedRequest,
  body: { length: number; open: () => Readable },
  signal?: AbortSignal,
): Promise<string | null> {
  const res = await send(signed, body, signal);
  const etag = res.headers.etag ?? null;
  res.resume();
  await new Promise<void>((resolve, reject) => {
    res.once("end", resolve);
    res.once("error", (e) =>
      reject(inTransit(`${signed.method} ${new URL(signed.url).origin}`, e)),
    );
  });
  return etag;
}

export function inTransit(what: string, e: unknown): Error {
  const code = networkCode(e);
  if (code === null) return e as Error;
  return new TransientError(`${what} failed in transit (${code}): ${(e as Error).message}`, null, {
    cause: e,
  });
}

function refusal(what: string, status: number, text: string, res: IncomingMessage): Error {
  const code = /<Code>([^<]*)<\/Code>/.exec(text)?.[1];
  const message = /<Message>([^<]*)<\/Message>/.exec(text)?.[1];
  const said = [code, message].filter(Boolean).join(": ") || text.trim().slice(0, 200);
  const answer = `${what} answered ${status}${said ? ` (${said})` : ""}`;
  if (transientStatus(status))
    return new TransientError(answer, retryAfterMs(header(res, "retry-after")));
  if (status === 404) return new NotFoundError(answer);
  const hint =
    status === 403
      ? /expired/i.test(said)
        ? ": the presigned URL expired (they last the Job's deadline plus 10 minutes)"
        : ": the store refused the presigned URL (its signature, or the runner's credentials it was signed with)"
      : "";
  return new RefusedError(`${answer}${hint}`, status);
}

function header(res: IncomingMessage, name: string): string | undefined {
  const v = res.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

async function readText(res: IncomingMessage): Promise<string> {
  let text = "";
  res.setEncoding("utf8");
  try {
    for await (const chunk of res) {
      if (text.length < 64 * 1024) text += chunk;
    }
  } catch {
    // The status says enough; a body cut short adds nothing.
  }
  return text;
}
