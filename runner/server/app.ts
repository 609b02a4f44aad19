/**
 * `reprise serve` is one Hono app (docs/design.md section 9): the JSON API under /api/v1 with its
 * OpenAPI document, the GitHub webhooks at /api/github/webhooks, health and metrics, and the web
 * UI. Everything it needs comes in `ServerDeps` (deps.ts), so tests build it on any store with
 * `app.request()` or serve it over real HTTP.
 */
import { Hono, type MiddlewareHandler } from "hono";
import { bodyLimit } from "hono/body-limit";
import { assertMigrated } from "../../db/migrate.js";
import { apiRoutes } from "./api.js";
import { isArtifactUpload } from "./artifacts-api.js";
import type { ServerDeps } from "./deps.js";
import { errorBody, onError } from "./errors.js";
import { hostCheck } from "./hosts.js";

/** Request bodies above this are refused with 413 (docs/design.md section 9). */
export const MAX_BODY_BYTES = 1024 * 1024;
/**
 * A registration (POST /repos/{repo}/versions): the spec plus the commit's raw tree objects,
 * base64-encoded (the tree objects themselves are capped at MAX_TREE_BYTES by the route).
 */
export const MAX_REGISTRATION_BYTES = 48 * 1024 * 1024;
/**
 * GitHub delivers webhook payloads up to 25 MB (a push of many commits, a big pull request); the
 * webhook route takes that much, the rest of the API keeps MAX_BODY_BYTES.
 */
export const MAX_WEBHOOK_BYTES = 25 * 1024 * 1024;
export const WEBHOOK_PATH = "/api/github/webhooks";

export function createApp(deps: ServerDeps): Hono {
  const app = new Hono();
  app.onError((e, c) =>
    onError(e, c, (err) => deps.log("error", "request failed", { err: err.stack ?? err.message })),
  );
  app.notFound((c) =>
    c.json(errorBody("not_found", `no route ${c.req.method} ${c.req.path}`), 404),
  );
  // Before anything else: a rebound name or another site's form reaches nothing (hosts.ts).
  app.use("*", hostCheck(deps.publicUrl, deps.hosts));
  // A declared Content-Length over the limit is refused before any of the body is read; a
  // chunked body is read up to the limit and refused there. Either way nothing reaches a handler.
  // Artifact uploads are streamed to the store and capped by their route (artifacts-api.ts): this
  // limit would hold them in memory.
  const apiLimit = limit(MAX_BODY_BYTES, "request bodies");
  // Webhooks: only a declared length is checked here; hono's bodyLimit would buffer a chunked
  // body whole before its signature is checked, so the App counts it as it streams
  // (app/signed-body.ts).
  const webhookLimit = declaredLimit(
    limit(MAX_WEBHOOK_BYTES, "webhook deliveries"),
    MAX_WEBHOOK_BYTES,
  );
  // A registration carries the commit's raw tree objects (api.ts): a larger limit, that route only.
  const registrationLimit = limit(MAX_REGISTRATION_BYTES, "registrations");
  app.use("/api/*", (c, next) =>
    c.req.path === WEBHOOK_PATH
      ? webhookLimit(c, next)
      : isArtifactUpload(c.req.method, c.req.path)
        ? next()
        : c.req.method === "POST" && /^\/api\/v1\/repos\/[^/]+\/versions\/?$/.test(c.req.path)
          ? registrationLimit(c, next)
          : apiLimit(c, next),
  );

  // Liveness: the process answers. Readiness: the database answers and is migrated.
  app.get("/healthz", (c) => c.json({ ok: true }));
  app.get("/readyz", async (c) => {
    try {
      await assertMigrated(deps.store.db);
      return c.json({ ok: true });
    } catch (e) {
      return c.json(
        { ok: false, error: { code: "not_ready", message: (e as Error).message } },
        503,
      );
    }
  });
  app.get("/metrics", async (c) => {
    const body = await deps.metrics.render(deps.store);
    return c.body(body, 200, { "content-type": deps.metrics.contentType });
  });

  const webhooks = deps.webhooks;
  if (webhooks) app.post(WEBHOOK_PATH, (c) => webhooks(c.req.raw));
  app.route("/api/v1", apiRoutes(deps));
  if (deps.ui) app.route("/", deps.ui);
  return app;
}

/** `refuse` for a declared Content-Length over `maxSize`; a body without one passes unread. */
function declaredLimit(refuse: MiddlewareHandler, maxSize: number): MiddlewareHandler {
  return (c, next) => {
    const declared = c.req.header("content-length");
    const chunked = c.req.header("transfer-encoding") !== undefined;
    return !chunked && declared !== undefined && Number.parseInt(declared, 10) > maxSize
      ? refuse(c, next)
      : next();
  };
}

function limit(maxSize: number, what: string): MiddlewareHandler {
  return bodyLimit({
    maxSize,
    onError: (c) =>
      c.json(
        errorBody(
          "payload_too_large",
          `${what} are limited to ${maxSize} bytes (${maxSize / 1024 / 1024} MiB)`,
        ),
        413,
        // The rest of a body this big is not worth reading to keep the connection.
        { connection: "close" },
      ),
  });
}
