/**
 * A loopback HTTP gate in front of s3rver that checks presigned requests the way S3 does. s3rver
 * checks a SigV4 signature's access key and expiry but never the signature itself, so behind it
 * alone a presigned URL would let its holder change the key or the size at will. This gate
 * recomputes the signature of every request carrying `X-Amz-Signature` in its query (AWS's
 * "Authenticating requests: using query parameters", written from the spec, not with the SDK
 * that signed it) from the method, path, query and the headers it names, and answers 403 as S3
 * does when they differ or the URL has expired. Everything else (the store's own
 * header-signed requests) passes untouched. It does not check bodies: neither does s3rver.
 */
import { createHash, createHmac } from "node:crypto";
import { createServer, type IncomingMessage, request, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export interface SignatureGate {
  endpoint: string;
  /** Presigned requests it refused, for tests to tell its refusals from s3rver's. */
  readonly refused: number;
  close(): Promise<void>;
}

export async function startSignatureGate(upstream: string, secret: string): Promise<SignatureGate> {
  const target = new URL(upstream);
  let refused = 0;
  const server = createServer((req, res) => {
    const why = presignedProblem(req, secret);
    if (why !== null) {
      refused++;
      res.writeHead(403, { "content-type": "application/xml" });
      res.end(
        `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${why.code}</Code><Message>${why.message}</Message></Error>`,
      );
      req.resume();
      return;
    }
    forward(req, res, target);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    get refused() {
      return refused;
    },
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function forward(req: IncomingMessage, res: ServerResponse, target: URL): void {
  const out = request(
    {
      host: target.hostname,
      port: target.port,
      method: req.method,
      path: req.url,
      headers: { ...req.headers, host: target.host },
    },
    (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    },
  );
  out.on("error", (e) => {
    res.destroy(e);
  });
  req.pipe(out);
}

/** Why S3 would refuse this presigned request, or null (also for requests not presigned). */
function presignedProblem(
  req: IncomingMessage,
  secret: string,
): { code: string; message: string } | null {
  const raw = req.url ?? "/";
  const q = raw.indexOf("?");
  const path = q < 0 ? raw : raw.slice(0, q);
  const params = (q < 0 ? "" : raw.slice(q + 1))
    .split("&")
    .filter((p) => p !== "")
    .map((p): [string, string] => {
      const eq = p.indexOf("=");
      const name = eq < 0 ? p : p.slice(0, eq);
      const value = eq < 0 ? "" : p.slice(eq + 1);
      return [decodeURIComponent(name), decodeURIComponent(value)];
    });
  const param = (name: string) => params.find(([n]) => n === name)?.[1];
  const signature = param("X-Amz-Signature");
  if (signature === undefined) return null;
  const date = param("X-Amz-Date") ?? "";
  const credential = param("X-Amz-Credential") ?? "";
  const signedHeaders = param("X-Amz-SignedHeaders") ?? "";
  const expires = Number(param("X-Amz-Expires"));
  const signedAt = Date.parse(
    date.replace(/^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/, "$1-$2-$3T$4:$5:$6Z"),
  );
  if (!Number.isFinite(signedAt) || !Number.isFinite(expires))
    return { code: "AuthorizationQueryParametersError", message: "bad X-Amz-Date or Expires" };
  if (Date.now() > signedAt + expires * 1000)
    return { code: "AccessDenied", message: "Request has expired" };

  const canonicalQuery = params
    .filter(([n]) => n !== "X-Amz-Signature")
    .map(([n, v]) => [rfc3986(n), rfc3986(v)] as const)
    .sort(([a, av], [b, bv]) => (a < b ? -1 : a > b ? 1 : av < bv ? -1 : av > bv ? 1 : 0))
    .map(([n, v]) => `${n}=${v}`)
    .join("&");
  const names = signedHeaders.split(";");
  const canonicalHeaders = names
    .map((n) => {
      const v = req.headers[n];
      const value = Array.isArray(v) ? v.join(",") : (v ?? "");
      return `${n}:${value.trim().replace(/\s+/g, " ")}\n`;
    })
    .join("");
  const canonicalRequest = [
    req.method,
    path,
    canonicalQuery,
    canonicalHeaders,
    signedHeaders,
    param("X-Amz-Content-Sha256") ?? "UNSIGNED-PAYLOAD",
  ].join("\n");
  const [, day = "", region = "", service = ""] = credential.split("/");
  const scope = `${day}/${region}/${service}/aws4_request`;
  const toSign = [
    "AWS4-HMAC-SHA256",
    date,
    scope,
    createHash("sha256").update(canonicalRequest).digest("hex"),
  ].join("\n");
  let key: Buffer = Buffer.from(`AWS4${secret}`);
  for (const part of [day, region, service, "aws4_request"]) key = hmac(key, part);
  const expected = createHmac("sha256", key).update(toSign).digest("hex");
  if (expected !== signature)
    return {
      code: "SignatureDoesNotMatch",
      message: "The request signature we calculated does not match the signature you provided.",
    };
  return null;
}

function hmac(key: Buffer, data: string): Buffer {
  return createHmac("sha256", key).update(data).digest();
}

/** SigV4's URI encoding: every byte but A-Z a-z 0-9 - _ . ~ percent-encoded. */
function rfc3986(s: string): string {
  return encodeURIComponent(s).replace(
    /[!'()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
}
