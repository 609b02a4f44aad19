/**
 * The web UI (issue 7), mounted at / by `reprise serve`: server-rendered with hono/jsx, no
 * JavaScript, one stylesheet served from here, nothing fetched from elsewhere (the
 * Content-Security-Policy says so to the browser). It only reads, and shows a caller only the
 * repositories its credential may read.
 */
import { type Context, Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import type { Child } from "hono/jsx";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { isArtifactDigest } from "../../../core/artifacts/ref.js";
import { NotFoundError } from "../../../db/errors.js";
import { RequestError } from "../../service.js";
import { contentResponse } from "../artifact-content.js";
import { blobStoreOf, heldArtifact } from "../artifacts-api.js";
import { authorize, type Principal } from "../auth.js";
import { readableOr404 } from "../by-id.js";
import type { ServerDeps } from "../deps.js";
import { ApiError } from "../errors.js";
import { finishedNodes } from "../finished-nodes.js";
import { ASSETS } from "./assets.js";
import { Csrf, ErrorPage } from "./layout.js";
import { comparePage, comparePicker } from "./pages/compare.js";
import { executionPage } from "./pages/execution.js";
import { homePage, loginPage } from "./pages/home.js";
import { repoPage } from "./pages/repo.js";
import { runsPage } from "./pages/runs.js";
import { taskHistoryPage } from "./pages/task-history.js";
import { paths } from "./paths.js";
import {
  CSRF_FIELD,
  csrfToken,
  csrfValid,
  logIn,
  logOut,
  principalOf,
  safeNext,
} from "./session.js";

export { executionUrl, paths } from "./paths.js";

type Env = { Variables: { principal: Principal } };

/** Pages load only what this server serves, and are never framed. */
const SECURITY_HEADERS: Record<string, string> = {
  "content-security-policy":
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  "x-content-type-options": "nosniff",
  "referrer-policy": "same-origin",
};
/** A POST without the session's anti-forgery token (session.ts): another site's form, or an old page. */
const FORGED =
  "this form did not come from a page of this server (its anti-forgery token is missing or stale): reload the page and try again";
/** The login form posts one token; anything bigger is not one. */
const MAX_LOGIN_BYTES = 16 * 1024;

export function uiRoutes(deps: ServerDeps): Hono {
  const { store } = deps;
  const ui = new Hono<Env>();
  const secure = deps.publicUrl?.startsWith("https:") ?? false;
  const nodesOf = finishedNodes(store);

  const html = async (c: Context<Env>, body: unknown, status: ContentfulStatusCode = 200) => {
    for (const [k, v] of Object.entries(SECURITY_HEADERS)) c.header(k, v);
    c.header("cache-control", "no-store");
    // Without a doctype the browser lays the page out in quirks mode.
    const provided = <Csrf.Provider value={csrfToken(c, secure)}>{body as Child}</Csrf.Provider>;
    const markup = await (
      provided as unknown as { toString(): string | Promise<string> }
    ).toString();
    return c.html(`<!DOCTYPE html>${markup}`, status);
  };

  ui.onError((e, c) => {
    const p = c.get("principal") ?? null;
    const page = (status: ContentfulStatusCode, title: string, message: string) =>
      html(c, <ErrorPage principal={p} status={status} title={title} message={message} />, status);
    if (e instanceof ApiError && e.status === 401 && c.req.method === "GET")
      return c.redirect(paths.login(c.req.path), 303);
    if (e instanceof ApiError) return page(e.status, titleOf(e.status), e.message);
    if (e instanceof RequestError) return page(e.status, titleOf(e.status), e.message);
    if (e instanceof NotFoundError) return page(404, "Not found", e.message);
    deps.log("error", "UI request failed", { err: e.stack ?? e.message, path: c.req.path });
    return page(500, "Something went wrong", "internal error; the server log says more");
  });

  /** A page for a signed-in caller (or anyone, on an open server); others go to the login form. */
  const page =
    (render: (c: Context<Env>, p: Principal) => Promise<unknown>) => async (c: Context<Env>) => {
      const p = await principalOf(c, deps.auth);
      if (!p) {
        const url = new URL(c.req.url);
        return c.redirect(paths.login(`${url.pathname}${url.search}`), 303);
      }
      c.set("principal", p);
      return html(c, await render(c, p));
    };

  const execution = async (p: Principal, id: string) => {
    const exec = await store.executions.get(id);
    if (!exec) throw new ApiError(404, "not_found", `no execution "${id}"`);
    readableOr404(p, exec.repo, `no execution "${id}"`);
    return exec;
  };
  const repository = async (p: Principal, repo: string) => {
    authorize(p, repo, "read");
    if (!(await store.versions.repositories()).includes(repo))
      throw new ApiError(404, "not_found", `no repository "${repo}" is registered here`);
    return repo;
  };

  for (const asset of ASSETS)
    ui.get(paths.asset(asset.path), (c) =>
      c.body(asset.body, 200, {
        "content-type": asset.contentType,
        // The name carries the content's digest.
        "cache-control": "public, max-age=31536000, immutable",
        "x-content-type-options": "nosniff",
      }),
    );

  ui.get(
    "/",
    page((_c, p) => homePage(store, p)),
  );
  ui.get(
    "/repos/:repo",
    page(async (c, p) => repoPage(store, p, await repository(p, param(c, "repo")))),
  );
  ui.get(
    "/repos/:repo/workflows/:workflow",
    page(async (c, p) =>
      runsPage(store, p, await repository(p, param(c, "repo")), param(c, "workflow")),
    ),
  );
  ui.get(
    "/repos/:repo/tasks/:task",
    page(async (c, p) =>
      taskHistoryPage(store, p, await repository(p, param(c, "repo")), param(c, "task")),
    ),
  );
  ui.get(
    "/executions/:id",
    page(async (c, p) =>
      executionPage(
        store,
        deps.executor,
        nodesOf,
        p,
        await execution(p, param(c, "id")),
        c.req.query("node") ?? null,
        deps.artifacts ?? null,
      ),
    ),
  );
  // An artifact's bytes for the execution page's links and previews: the API's content route
  // (artifact-content.ts: attachment or inline image, sandboxed), reached with the UI's session.
  ui.get("/repos/:repo/artifacts/:digest", async (c) => {
    const p = await principalOf(c, deps.auth);
    if (!p) {
      const url = new URL(c.req.url);
      return c.redirect(paths.login(`${url.pathname}${url.search}`), 303);
    }
    c.set("principal", p);
    const repo = param(c, "repo");
    const digest = param(c, "digest");
    authorize(p, repo, "read");
    if (!isArtifactDigest(digest))
      throw new ApiError(
        400,
        "bad_request",
        `"${digest}" is not an artifact digest (sha256:<64 hex>)`,
      );
    const record = await heldArtifact(store, repo, digest);
    return contentResponse(blobStoreOf(deps), record, {
      inline: c.req.query("inline") === "1",
      name: c.req.query("name") ?? null,
      headOnly: c.req.method === "HEAD",
      onStreamError: (e) =>
        deps.log("warn", "an artifact download failed while it was sent", { err: e.message }),
    });
  });
  ui.get(
    "/compare",
    page(async (c, p) => {
      const a = c.req.query("a")?.trim() ?? "";
      const b = c.req.query("b")?.trim() ?? "";
      if (!a || !b) return comparePicker(p, a, b, a || b ? "name two executions: A and B" : null);
      return comparePage(store, nodesOf, p, await execution(p, a), await execution(p, b));
    }),
  );

  ui.get("/login", (c) => {
    if (deps.auth.open) return c.redirect(paths.home(), 303);
    return html(c, loginPage(safeNext(c.req.query("next")), null));
  });
  ui.post(
    "/login",
    bodyLimit({
      maxSize: MAX_LOGIN_BYTES,
      onError: (c) => c.text("a token is not that long", 413),
    }),
    async (c) => {
      const form = await c.req.parseBody();
      const next = safeNext(typeof form.next === "string" ? form.next : undefined);
      if (!csrfValid(c, form[CSRF_FIELD])) return html(c, loginPage(next, FORGED), 403);
      const token = typeof form.token === "string" ? form.token.trim() : "";
      const result = await logIn(c, deps.auth, token, secure);
      if (!result.ok) return html(c, loginPage(next, result.message), 401);
      return c.redirect(next, 303);
    },
  );
  ui.post(
    "/logout",
    bodyLimit({
      maxSize: MAX_LOGIN_BYTES,
      onError: (c) => c.text("a sign-out form is not that long", 413),
    }),
    async (c) => {
      const form = await c.req.parseBody().catch(() => ({}) as Record<string, unknown>);
      if (!csrfValid(c, form[CSRF_FIELD]))
        return html(
          c,
          <ErrorPage principal={null} status={403} title="Not allowed" message={FORGED} />,
          403,
        );
      logOut(c);
      return c.redirect(deps.auth.open ? paths.home() : paths.login(), 303);
    },
  );
  // Its variables are its own business: the app mounts it as a plain Hono.
  return ui as unknown as Hono;
}

/** A path parameter: the router only matched the route with it present. */
function param(c: Context<Env>, name: string): string {
  return c.req.param(name) ?? "";
}

function titleOf(status: number): string {
  if (status === 401) return "Sign in needed";
  if (status === 403) return "Not allowed";
  if (status === 404) return "Not found";
  return "Cannot show this";
}
