/**
 * Artifacts through the API (`/repos/{repo}/artifacts/{digest}`): uploads of files and of
 * directories' manifests, presence, metadata, downloads, and an execution's artifacts.
 *
 * A repository reads an artifact only when it holds a row for it (db/schema.ts `artifacts`:
 * uploaded to it, or produced by one of its tasks), whatever the blob store holds: another
 * repository's digest answers 404 exactly as a digest nobody has, and an upload always sends and
 * verifies its bytes unless this repository holds the digest already, so an upload's answer
 * never tells whether someone else stored those bytes. The caller's credential is checked for
 * the repository in the path first (403), as on every route.
 *
 * Upload bodies are streamed into the store, hashed on the way, never held whole: the app's
 * 1 MiB body limit does not apply to them (`isArtifactUpload`); MAX_UPLOAD_BYTES does.
 */
import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { manifestBytes, manifestTotals, parseManifest } from "../../core/artifacts/manifest.js";
import { ARTIFACT_DIGEST, artifactRef } from "../../core/artifacts/ref.js";
import type { Store } from "../../db/store.js";
import type { ArtifactRecord } from "../../db/types.js";
import { inParallel } from "../artifacts/ingest.js";
import { executionArtifacts } from "../artifacts/listing.js";
import { BlobMismatchError, type BlobStore } from "../artifacts/store.js";
import { iso } from "../documents.js";
import { contentResponse, digestOf } from "./artifact-content.js";
import { authorize } from "./auth.js";
import type { ServerDeps } from "./deps.js";
import { ApiError } from "./errors.js";
import type { NodesOf } from "./finished-nodes.js";
import {
  type Env,
  ExecParam,
  errorResponse,
  errors,
  jsonResponse,
  ok,
  RepoParam,
} from "./openapi.js";

/**
 * One upload's bytes. Far above the datasets people send through one HTTP request; S3 itself
 * takes up to 5 TiB in one object, so a store never refuses what this lets through.
 */
export const MAX_UPLOAD_BYTES = 64 * 1024 ** 3;
/**
 * A directory's manifest (about 150 bytes an entry: some 400,000 files). It is read whole to be
 * checked, so it is held in memory once; core/artifacts/manifest.ts caps the entries too.
 */
export const MAX_MANIFEST_UPLOAD_BYTES = 64 * 1024 * 1024;
/** Digests looked up in one query: Postgres takes at most 65,535 parameters in a statement. */
const LOOKUP_BATCH = 5_000;
/** Blobs of a manifest checked for presence at once. */
const PARALLEL_CHECKS = 32;

const UPLOAD_PATH = /^\/api\/v1\/repos\/[^/]+\/artifacts\/[^/]+$/;

/** A request the app's body limit leaves alone: the route streams and caps its body itself. */
export function isArtifactUpload(method: string, path: string): boolean {
  return method === "PUT" && UPLOAD_PATH.test(path);
}

const Digest = z
  .string()
  .regex(ARTIFACT_DIGEST, "an artifact digest is sha256:<64 lowercase hex>")
  .openapi({
    param: { name: "digest", in: "path" },
    example: `sha256:${"0".repeat(64)}`,
    description: "the artifact's digest: a file's bytes' sha256, a directory's manifest's",
  });
const ArtifactParam = RepoParam.extend({ digest: Digest });

/** What the API says of an artifact the repository holds. */
export function artifactDocument(r: ArtifactRecord, present: boolean) {
  return {
    ...artifactRef(r.type, r.digest, r.size, r.files ?? 0),
    producer: r.producer,
    uploadedBy: r.uploadedBy,
    createdAt: iso(r.createdAt),
    present,
  };
}

/** The repository's record of `digest`; 404 when it holds none (never: when nobody does). */
export async function heldArtifact(
  store: Store,
  repo: string,
  digest: string,
): Promise<ArtifactRecord> {
  const record = await store.artifacts.get(repo, digest);
  if (!record) throw new ApiError(404, "not_found", `${digest} is not an artifact of ${repo}`);
  return record;
}

/** The server's blob store; a server built without one answers 503 on artifact routes. */
export function blobStoreOf(deps: Pick<ServerDeps, "artifacts">): BlobStore {
  if (!deps.artifacts)
    throw new ApiError(
      503,
      "unavailable",
      "this server has no artifact store: start it with REPRISE_ARTIFACTS (or its default under REPRISE_DATA_DIR)",
    );
  return deps.artifacts;
}

export function artifactRoutes(api: OpenAPIHono<Env>, deps: ServerDeps, nodesOf: NodesOf): void {
  const { store } = deps;
  const actor = (c: Context<Env>) => c.get("principal").subject;
  const streamFailed = (e: Error) =>
    deps.log("warn", "an artifact download failed while it was sent", { err: e.message });

  api.openapi(
    createRoute({
      method: "put",
      path: "/repos/{repo}/artifacts/{digest}",
      summary:
        "Upload a file (its bytes), or with ?type=directory a directory (its manifest's canonical JSON, every file uploaded first)",
      description: `The body is streamed and hashed as it arrives: bytes that do not hash to the digest are refused (400) and nothing is stored. A file takes up to ${MAX_UPLOAD_BYTES} bytes, a manifest ${MAX_MANIFEST_UPLOAD_BYTES}. A digest this repository holds already answers 200 without reading the body.`,
      request: {
        params: ArtifactParam,
        query: z.object({ type: z.enum(["file", "directory"]).default("file") }),
        body: {
          required: false,
          content: {
            "application/octet-stream": {
              schema: z.any().openapi({ type: "string", format: "binary" }),
            },
          },
        },
      },
      responses: {
        ...ok("stored and recorded for the repository", 201),
        200: jsonResponse("the repository holds it already"),
      },
    }),
    async (c) => {
      const { repo, digest } = c.req.valid("param");
      const { type } = c.req.valid("query");
      authorize(c.get("principal"), repo, "start");
      const blobs = blobStoreOf(deps);
      const held = await store.artifacts.get(repo, digest);
      if (held && held.type !== type)
        throw new ApiError(
          409,
          "conflict",
          `${digest} is an artifact of ${repo} already, as a ${held.type}`,
        );
      const sent = declaredLength(c);
      const present = held !== null && (await blobs.has(digest));
      const max = type === "file" ? MAX_UPLOAD_BYTES : MAX_MANIFEST_UPLOAD_BYTES;
      // Answered without reading the body: closing the connection spares sending the rest.
      if ((present || (sent !== null && sent > max)) && sent !== 0) c.header("connection", "close");
      if (held && present) return c.json({ ...artifactDocument(held, true), created: false }, 200);
      if (sent !== null && sent > max)
        throw new ApiError(413, "payload_too_large", tooLarge(type, max));
      const body = bodyOf(c.req.raw);
      const totals =
        type === "file"
          ? await putFile(blobs, body, digest)
          : await putManifest(store, blobs, repo, body, digest);
      const record = await store.artifacts.recordUpload(
        repo,
        { digest, type, ...totals },
        actor(c),
      );
      return c.json({ ...artifactDocument(record, true), created: !held }, held ? 200 : 201);
    },
  );

  // Hono answers HEAD with the GET route's handler (without its body): the metadata route
  // answers it as the presence check, so the document names it on its own.
  api.openAPIRegistry.registerPath({
    method: "head",
    path: "/repos/{repo}/artifacts/{digest}",
    summary: "Whether the repository holds the artifact and its bytes are in the store",
    request: { params: ArtifactParam },
    responses: {
      200: { description: "held, and its bytes are stored" },
      400: errorResponse,
      401: errorResponse,
      403: errorResponse,
      404: { description: "not this repository's artifact, or its bytes are gone" },
    },
  });

  api.openapi(
    createRoute({
      method: "get",
      path: "/repos/{repo}/artifacts/{digest}",
      summary:
        "An artifact of the repository: its value, where it was first produced (or who uploaded it), and whether its bytes are stored",
      request: { params: ArtifactParam },
      responses: ok("the artifact", 200),
    }),
    async (c) => {
      const { repo, digest } = c.req.valid("param");
      authorize(c.get("principal"), repo, "read");
      const blobs = blobStoreOf(deps);
      const record = await heldArtifact(store, repo, digest);
      const present = await blobs.has(digest);
      // HEAD: the same answer without its body (Hono drops it), 404 when the bytes are gone.
      if (c.req.method === "HEAD" && !present)
        throw new ApiError(404, "artifact_gone", `${digest}'s bytes are gone`);
      return c.json(artifactDocument(record, present), 200);
    },
  );

  api.openapi(
    createRoute({
      method: "get",
      path: "/repos/{repo}/artifacts/{digest}/content",
      summary:
        "An artifact's bytes: a file as it is, a directory as a tar; always an attachment, except an image asked ?inline=1",
      description:
        "Sent with `Content-Security-Policy: default-src 'none'; sandbox` and `X-Content-Type-Options: nosniff`. `?inline=1` shows a PNG, JPEG or SVG (told from its bytes) inline; anything else still downloads. 404 `artifact_gone` when the bytes are no longer in the store.",
      request: {
        params: ArtifactParam,
        query: z.object({
          inline: z.enum(["0", "1"]).optional(),
          name: z.string().max(255).optional(),
        }),
      },
      responses: {
        200: {
          description: "the bytes",
          content: {
            "application/octet-stream": {
              schema: z.any().openapi({ type: "string", format: "binary" }),
            },
            "application/x-tar": { schema: z.any().openapi({ type: "string", format: "binary" }) },
          },
        },
        ...errors,
      },
    }),
    async (c) => {
      const { repo, digest } = c.req.valid("param");
      const q = c.req.valid("query");
      authorize(c.get("principal"), repo, "read");
      const blobs = blobStoreOf(deps);
      const record = await heldArtifact(store, repo, digest);
      return contentResponse(blobs, record, {
        inline: q.inline === "1",
        name: q.name ?? null,
        headOnly: c.req.method === "HEAD",
        onStreamError: streamFailed,
      });
    },
  );

  api.openapi(
    createRoute({
      method: "get",
      path: "/repos/{repo}/executions/{id}/artifacts",
      summary:
        "The artifacts an execution's nodes read and wrote, each with where it was first produced",
      request: { params: RepoParam.merge(ExecParam) },
      responses: ok("the artifacts", 200),
    }),
    async (c) => {
      const { repo, id } = c.req.valid("param");
      authorize(c.get("principal"), repo, "read");
      const exec = await store.executions.get(id);
      if (!exec || exec.repo !== repo)
        throw new ApiError(404, "not_found", `no execution "${id}" of ${repo}`);
      const artifacts = await executionArtifacts(store, exec, await nodesOf(exec));
      return c.json({ execution: exec.id, repo, artifacts }, 200);
    },
  );
}

/** The Content-Length the client declared; null when it sent none (a chunked body). */
function declaredLength(c: Context): number | null {
  const header = c.req.header("content-length");
  if (header === undefined || c.req.header("transfer-encoding")) return null;
  if (!/^\d{1,16}$/.test(header.trim()))
    throw new ApiError(400, "bad_request", `Content-Length "${header}" is not a number of bytes`);
  return Number(header.trim());
}

function tooLarge(type: "file" | "directory", max: number): string {
  return type === "file"
    ? `an uploaded file is limited to ${max} bytes (${max / 1024 ** 3} GiB)`
    : `a directory's manifest is limited to ${max} bytes (${max / 1024 ** 2} MiB)`;
}

/** A request body as it arrives, counted; `failed` when the client's stream broke (not ours). */
interface Body {
  chunks: AsyncIterable<Uint8Array>;
  readonly bytes: number;
  readonly failed: Error | null;
}

function bodyOf(req: Request): Body {
  let bytes = 0;
  let failed: Error | null = null;
  const source = req.body;
  async function* chunks(): AsyncGenerator<Uint8Array> {
    if (!source) return;
    const reader = source.getReader();
    try {
      for (;;) {
        let next: Awaited<ReturnType<typeof reader.read>>;
        try {
          next = await reader.read();
        } catch (e) {
          failed = e as Error;
          throw e;
        }
        if (next.done) return;
        bytes += next.value.byteLength;
        yield next.value;
      }
    } finally {
      // Stopped early (refused): let go of the rest of the body.
      await reader.cancel().catch(() => undefined);
    }
  }
  return {
    chunks: chunks(),
    get bytes() {
      return bytes;
    },
    get failed() {
      return failed;
    },
  };
}

function cutOff(body: Body): ApiError {
  return new ApiError(
    400,
    "bad_request",
    `the upload ended early after ${body.bytes} bytes (${body.failed?.message ?? "cut off"}): nothing was stored; send it again`,
  );
}

async function putFile(blobs: BlobStore, body: Body, digest: string): Promise<{ size: number }> {
  try {
    const { size } = await blobs.putStream(body.chunks, digest, MAX_UPLOAD_BYTES);
    return { size };
  } catch (e) {
    if (body.failed) throw cutOff(body);
    if (e instanceof BlobMismatchError) {
      if (body.bytes > MAX_UPLOAD_BYTES)
        throw new ApiError(413, "payload_too_large", tooLarge("file", MAX_UPLOAD_BYTES));
      throw new ApiError(400, "digest_mismatch", `${e.message}: nothing was stored`);
    }
    throw e;
  }
}

/**
 * A directory: its manifest is checked whole (the digest, the form, and that every file is this
 * repository's and stored) before it is stored, so a directory row always names a complete tree.
 */
async function putManifest(
  store: Store,
  blobs: BlobStore,
  repo: string,
  body: Body,
  digest: string,
): Promise<{ size: number; files: number }> {
  const parts: Uint8Array[] = [];
  try {
    for await (const chunk of body.chunks) {
      if (body.bytes > MAX_MANIFEST_UPLOAD_BYTES)
        throw new ApiError(
          413,
          "payload_too_large",
          tooLarge("directory", MAX_MANIFEST_UPLOAD_BYTES),
        );
      parts.push(chunk);
    }
  } catch (e) {
    if (body.failed) throw cutOff(body);
    throw e;
  }
  const bytes = Buffer.concat(parts);
  const actual = digestOf(bytes);
  if (actual !== digest)
    throw new ApiError(
      400,
      "digest_mismatch",
      `the bytes sent hash to ${actual}, not ${digest}: nothing was stored`,
    );
  const parsed = parseManifest(bytes);
  if (!parsed.ok) throw new ApiError(422, "invalid_manifest", parsed.reason);
  let canonical: Buffer;
  try {
    canonical = manifestBytes(parsed.manifest);
  } catch (e) {
    // RFC 8785 has no form for a lone surrogate, which a JSON escape can still spell.
    throw new ApiError(
      422,
      "invalid_manifest",
      `the manifest has no canonical form: ${(e as Error).message}`,
    );
  }
  if (!canonical.equals(bytes))
    throw new ApiError(
      422,
      "invalid_manifest",
      `the manifest is not in canonical form (RFC 8785 JSON, entries sorted by path, no other keys): its canonical form hashes to ${digestOf(canonical)}; send that, under that digest`,
    );
  const files = parsed.manifest.entries.filter((e) => e.kind !== "symlink");
  const digests = [...new Set(files.map((e) => e.digest))];
  const rows = new Map<string, ArtifactRecord>();
  for (let i = 0; i < digests.length; i += LOOKUP_BATCH)
    for (const [d, r] of await store.artifacts.getMany(repo, digests.slice(i, i + LOOKUP_BATCH)))
      rows.set(d, r);
  for (const e of files) {
    const row = rows.get(e.digest);
    const where = `file ${JSON.stringify(e.path)} (${e.digest})`;
    if (!row)
      throw new ApiError(
        422,
        "missing_artifact",
        `${where} is not an artifact of ${repo}: upload it first (PUT /api/v1/repos/${encodeURIComponent(repo)}/artifacts/${e.digest})`,
      );
    if (row.type !== "file")
      throw new ApiError(422, "invalid_manifest", `${where} is a ${row.type} here, not a file`);
    if (row.size !== e.size)
      throw new ApiError(
        422,
        "invalid_manifest",
        `${where} is ${row.size} bytes, the manifest says ${e.size}`,
      );
  }
  const gone = new Set<string>();
  await inParallel(digests, PARALLEL_CHECKS, async (d) => {
    if (!(await blobs.has(d))) gone.add(d);
  });
  const lost = files.find((e) => gone.has(e.digest));
  if (lost)
    throw new ApiError(
      422,
      "missing_artifact",
      `the bytes of file ${JSON.stringify(lost.path)} (${lost.digest}) are gone from the artifact store: upload it again first`,
    );
  await blobs.putStream([bytes], digest, bytes.length);
  return manifestTotals(parsed.manifest);
}
