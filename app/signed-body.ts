/**
 * A webhook body read while its signature is computed (issue 14, finding 9): the HMAC of
 * WEBHOOK_SECRET over the bytes as they arrive, compared at the end. The bytes of deliveries not
 * verified yet are counted across all of them: beyond `maxInFlight` a delivery is refused (503)
 * instead of read, so parallel 25 MiB bodies with a made-up signature cannot grow the process by
 * hundreds of MiB. A delivery that declares its length reserves all of it before anything is read.
 */
import { createHmac, timingSafeEqual } from "node:crypto";

/**
 * Bytes held at once by deliveries whose signature is not checked yet: two of GitHub's largest
 * (25 MB) fit, and thousands of ordinary ones (a few KiB).
 */
export const MAX_UNVERIFIED_BYTES = 64 * 1024 * 1024;

export type SignedBody =
  | { ok: true; body: string }
  | { ok: false; status: 400 | 401 | 413 | 503; code: string; message: string };

/** Bytes reserved by deliveries being read; `peak` is the most ever held at once. */
export class InFlight {
  #bytes = 0;
  #peak = 0;
  constructor(readonly max: number = MAX_UNVERIFIED_BYTES) {}

  get bytes(): number {
    return this.#bytes;
  }
  get peak(): number {
    return this.#peak;
  }

  take(n: number): boolean {
    if (this.#bytes + n > this.max) return false;
    this.#bytes += n;
    this.#peak = Math.max(this.#peak, this.#bytes);
    return true;
  }

  give(n: number): void {
    this.#bytes -= n;
  }
}

function tooLarge(max: number): SignedBody {
  return {
    ok: false,
    status: 413,
    code: "payload_too_large",
    message: `webhook deliveries are limited to ${max} bytes (${max / 1024 / 1024} MiB)`,
  };
}

/**
 * An unsigned delivery is refused unread, unless its length is unknown (chunked): then it is
 * read and dropped, to say 413 rather than 401 for one over the limit; nothing is kept.
 */
export async function unsignedSize(req: Request, maxBytes: number): Promise<"over" | "within"> {
  if (req.headers.get("content-length") !== null && !req.headers.has("transfer-encoding"))
    return "within";
  const reader = req.body?.getReader();
  let size = 0;
  try {
    while (reader) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.byteLength;
      if (size > maxBytes) {
        await reader.cancel().catch(() => {});
        return "over";
      }
    }
  } catch {
    // A broken body is refused as unsigned all the same.
  }
  return "within";
}

const SIGNATURE = /^sha256=([0-9a-f]{64})$/i;

export async function readSigned(
  req: Request,
  opts: { secret: string; signature: string; maxBytes: number; inFlight: InFlight },
): Promise<SignedBody> {
  const sig = SIGNATURE.exec(opts.signature.trim());
  // A signature that cannot match is refused before any of the body is read.
  if (!sig)
    return {
      ok: false,
      status: 401,
      code: "bad_signature",
      message: "X-Hub-Signature-256 is not sha256=<64 hex digits>",
    };
  const expected = Buffer.from(sig[1] as string, "hex");
  const declared = Number(req.headers.get("content-length") ?? Number.NaN);
  const busy: SignedBody = {
    ok: false,
    status: 503,
    code: "busy",
    message: `too many webhook bytes are being received unverified (over ${opts.inFlight.max} bytes): deliver again later`,
  };
  let held = 0;
  const hold = (n: number) => {
    if (!opts.inFlight.take(n)) return false;
    held += n;
    return true;
  };
  // Declared: reserved whole up front (the body limit has refused over maxBytes already).
  const reserved =
    Number.isSafeInteger(declared) && declared >= 0 ? Math.min(declared, opts.maxBytes) : 0;
  if (reserved > 0 && !hold(reserved)) {
    await req.body?.cancel().catch(() => {});
    return busy;
  }
  const hmac = createHmac("sha256", opts.secret);
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    const reader = req.body?.getReader();
    while (reader) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.byteLength;
      if (size > opts.maxBytes) {
        await reader.cancel().catch(() => {});
        return tooLarge(opts.maxBytes);
      }
      if (size > reserved && !hold(size - Math.max(reserved, size - value.byteLength))) {
        await reader.cancel().catch(() => {});
        return busy;
      }
      hmac.update(value);
      chunks.push(value);
    }
    const actual = hmac.digest();
    if (!timingSafeEqual(actual, expected))
      return {
        ok: false,
        status: 401,
        code: "bad_signature",
        message: "X-Hub-Signature-256 is missing or does not match WEBHOOK_SECRET",
      };
    return { ok: true, body: Buffer.concat(chunks, size).toString("utf8") };
  } catch (e) {
    return {
      ok: false,
      status: 400,
      code: "bad_request",
      message: `the body could not be read (${(e as Error).message})`,
    };
  } finally {
    opts.inFlight.give(held);
  }
}
