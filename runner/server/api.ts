/**
 * The JSON API under /api/v1 (docs/design.md section 9), described by its own OpenAPI document at
 * /api/v1/openapi.json. Routes translate HTTP into runner calls (runner/service.ts,
 * runner/reports.ts) and the store's reads; every route checks that the caller may act on the
 * repository concerned. A repository is one path segment: its key URL-encoded
 * (`github.com%2Facme%2Fml`).
 */
import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { diffVersions } from "../../core/diff/diff-versions.js";
import { EXECUTION_STATES } from "../../core/engine/vocabulary.js";
import { GitObjectError, verifyCommit } from "../../core/version/git-objects.js";
import type { ExecutionRecord, VersionRecord } from "../../db/types.js";
import { diffable, executionDocument, iso, versionDocument } from "../documents.js";
import { lineage, nodeLogs } from "../reports.js";
import {
  activateVersion,
  RequestError,
  relaunchExecution,
  startExecution,
  type VersionRef,
} from "../service.js";
import { specWorkers } from "../spec-worker.js";
import { artifactRoutes } from "./artifacts-api.js";
import { type Action, authorize, type Principal } from "./auth.js";
import { readableOr404 } from "./by-id.js";
import type { ServerDeps } from "./deps.js";
import { ApiError, errorBody, onError } from "./errors.js";
import { finishedNodes } from "./finished-nodes.js";
import { type Env, ExecParam, jsonResponse, ok, PathName, RepoParam } from "./openapi.js";

const Sha = z.string().regex(/^[0-9a-f]{40}$/, "a full 40-hex commit SHA");
const Base64 = z.string().regex(/^[A-Za-z0-9+/]*={0,2}$/, "base64");
const Limit = z.coerce.number().int().min(1).max(500).optional();
/** Any JSON value (the body is JSON already; z.json() is recursive, which the OpenAPI generator cannot walk). */
const JsonValue = z.unknown().openapi({ description: "any JSON value" });

export function apiRoutes(deps: ServerDeps): OpenAPIHono<Env> {
  const { store } = deps;
  const api = new OpenAPIHono<Env>({
    defaultHook: (result, c) => {
      if (!result.success) {
        const issue = result.error.issues[0];
        const where = issue?.path.length ? `${issue.path.join(".")}: ` : "";
        return c.json(
          errorBody("bad_request", `${where}${issue?.message ?? "invalid request"}`),
          400,
        );
      }
    },
  });
  api.onError((e, c) =>
    onError(e, c, (err) => deps.log("error", "request failed", { err: err.stack ?? err.message })),
  );
  api.openAPIRegistry.registerComponent("securitySchemes", "bearer", {
    type: "http",
    scheme: "bearer",
    description: "an API token (`reprise token create`) or a GitHub Actions OIDC token",
  });
  api.use("*", async (c, next) => {
    if (c.req.path.endsWith("/openapi.json")) return next();
    c.set("principal", await deps.auth.principal(c.req.header("authorization")));
    await next();
  });

  const can = (c: Context<Env>, repo: string, action: Action = "read") =>
    authorize(c.get("principal"), repo, action);
  const execution = async (c: Context<Env>, id: string, action: Action = "read") => {
    const exec = await store.executions.get(id);
    if (!exec) throw new ApiError(404, "not_found", `no execution "${id}"`);
    readableOr404(c.get("principal"), exec.repo, `no execution "${id}"`);
    can(c, exec.repo, action);
    return exec;
  };
  // A finished execution's nodes never change: read and ordered once (finished-nodes.ts).
  const nodesOf = finishedNodes(store);
  const document = async (exec: ExecutionRecord) => executionDocument(exec, await nodesOf(exec));
  const actor = (c: Context<Env>) => c.get("principal").subject;
  const version = async (repo: string, sha: string): Promise<VersionRecord> => {
    const v = await store.versions.get(repo, sha);
    if (!v) throw new ApiError(404, "not_found", `${sha} of ${repo} is not registered`);
    return v;
  };

  // Repositories and versions ------------------------------------------------------------------

  api.openapi(
    createRoute({
      method: "get",
      path: "/repos",
      summary: "Repositories this credential may read",
      responses: ok("repository keys", 200),
    }),
    async (c) => {
      const p = c.get("principal");
      const all = await store.versions.repositories();
      return c.json({ repos: p.repos === "*" ? all : all.filter((r) => p.repos.includes(r)) }, 200);
    },
  );

  api.openapi(
    createRoute({
      method: "get",
      path: "/repos/{repo}/versions",
      summary: "Registered versions, newest first, with the production one marked",
      request: { params: RepoParam, query: z.object({ limit: Limit }) },
      responses: ok("versions", 200),
    }),
    async (c) => {
      const { repo } = c.req.valid("param");
      can(c, repo);
      const [list, current] = await Promise.all([
        store.versions.list(repo, { limit: c.req.valid("query").limit ?? 50 }),
        store.production.current(repo),
      ]);
      return c.json(
        {
          repo,
          versions: list.map((v) => ({
            ...versionDocument(v),
            production: v.sha === current?.sha,
          })),
        },
        200,
      );
    },
  );

  api.openapi(
    createRoute({
      method: "get",
      path: "/repos/{repo}/versions/{sha}",
      summary: "One version: its tasks and workflows, and its diff against its first parent",
      request: { params: RepoParam.extend({ sha: Sha }) },
      responses: ok("the version", 200),
    }),
    async (c) => {
      const { repo, sha } = c.req.valid("param");
      can(c, repo);
      const v = await version(repo, sha);
      const parentSha = v.parents[0];
      const parent = parentSha ? await store.versions.get(repo, parentSha) : null;
      return c.json(
        {
          ...versionDocument(v),
          parents: v.parents,
          // Who registered it, and every branch recorded for it by whom (db/store/versions.ts).
          registeredBy: v.registeredBy,
          refs: v.refs.map((r) => ({ ...r, recordedAt: r.recordedAt.toISOString() })),
          warnings: v.warnings,
          tasks: v.tasks,
          workflows: v.workflows,
          diff:
            parent && parent.status === "registered" && v.status === "registered"
              ? { from: parent.sha, ...diffVersions(diffable(parent), diffable(v)) }
              : null,
        },
        200,
      );
    },
  );

  api.openapi(
    createRoute({
      method: "get",
      path: "/repos/{repo}/diff",
      summary: "Tasks and workflows added, removed, changed or renamed between two versions",
      request: { params: RepoParam, query: z.object({ from: Sha, to: Sha }) },
      responses: ok("the diff", 200),
    }),
    async (c) => {
      const { repo } = c.req.valid("param");
      can(c, repo);
      const { from, to } = c.req.valid("query");
      const [a, b] = [await version(repo, from), await version(repo, to)];
      for (const v of [a, b])
        if (v.status !== "registered")
          throw new RequestError(
            "invalid_spec",
            `${v.sha} has an invalid reprise.yaml; nothing to compare`,
          );
      return c.json({ from, to, ...diffVersions(diffable(a), diffable(b)) }, 200);
    },
  );

  api.openapi(
    createRoute({
      method: "post",
      path: "/repos/{repo}/versions",
      summary:
        "Register a version from its raw git objects (the Action, when the App has not): the server recomputes their ids",
      request: {
        params: RepoParam,
        body: {
          content: {
            "application/json": {
              schema: z.object({
                sha: Sha,
                ref: z.string().min(1).max(255).nullable().default(null),
                commit: Base64.openapi({
                  description: "`git cat-file commit <sha>`, base64: it must hash to sha",
                }),
                trees: z.array(Base64).max(100_000).openapi({
                  description:
                    "every tree object the commit reaches (`git cat-file tree <id>`), base64",
                }),
                spec: z.string().openapi({
                  description: "reprise.yaml at the commit: it must hash to the root tree's entry",
                }),
              }),
            },
          },
        },
      },
      responses: {
        ...ok("registered", 201),
        200: jsonResponse("already registered"),
        422: jsonResponse(
          "the objects do not hash to the commit (verification_failed), or the spec is invalid: its errors, as diagnostics",
        ),
      },
    }),
    async (c) => {
      const { repo } = c.req.valid("param");
      can(c, repo, "register");
      const body = c.req.valid("json");
      const ref = claimedRef(c.get("principal"), body.sha, body.ref);
      const commit = verifiedCommit(body);
      // Off the event loop: a 1,000-task spec takes seconds to read (runner/spec-worker.ts).
      const result = await specWorkers().build(body.spec, commit.tree);
      const { version: v, created } = await store.versions.register({
        repo,
        sha: body.sha,
        parents: commit.parents,
        ref,
        message: commit.subject,
        result,
        // A claim: a branch the App has recorded is never moved by it (db/store/versions.ts).
        by: { source: "client", actor: actor(c) },
      });
      if (v.status !== "registered")
        return c.json(
          {
            error: {
              code: "invalid_spec",
              message: `reprise.yaml of ${body.sha.slice(0, 12)} is invalid (${v.errors.length} errors)`,
            },
            errors: v.errors,
            warnings: v.warnings,
          },
          422,
        );
      const identicalTo = v.specDigest
        ? await store.versions.findEquivalent(repo, v.specDigest, v.sha)
        : null;
      return c.json(
        { ...versionDocument(v), created, identicalTo, tasks: v.tasks, workflows: v.workflows },
        created ? 201 : 200,
      );
    },
  );

  // Executions ---------------------------------------------------------------------------------

  api.openapi(
    createRoute({
      method: "get",
      path: "/repos/{repo}/executions",
      summary: "Executions, newest first, filtered",
      request: {
        params: RepoParam,
        query: z.object({
          workflow: z.string().optional(),
          state: z.enum(EXECUTION_STATES).optional(),
          sha: Sha.optional(),
          pr: z.coerce.number().int().min(1).optional(),
          limit: Limit,
        }),
      },
      responses: ok("executions", 200),
    }),
    async (c) => {
      const { repo } = c.req.valid("param");
      can(c, repo);
      const q = c.req.valid("query");
      const list = await store.executions.list({
        repo,
        ...(q.workflow ? { workflow: q.workflow } : {}),
        ...(q.state ? { state: q.state } : {}),
        ...(q.sha ? { sha: q.sha } : {}),
        ...(q.pr !== undefined ? { pr: q.pr } : {}),
        limit: q.limit ?? 50,
      });
      return c.json({ repo, executions: list.map(executionSummary) }, 200);
    },
  );

  api.openapi(
    createRoute({
      method: "post",
      path: "/repos/{repo}/executions",
      summary: "Start a workflow at a SHA, a branch's latest version, or the production version",
      request: {
        params: RepoParam,
        body: {
          content: {
            "application/json": {
              schema: z
                .object({
                  workflow: z.string().min(1),
                  sha: Sha.optional(),
                  ref: z.string().min(1).max(255).optional(),
                  production: z.boolean().optional(),
                  inputs: z.record(z.string(), JsonValue).default({}),
                  overwriteCache: z.boolean().default(false),
                  pr: z.number().int().min(1).optional(),
                })
                .refine((b) => [b.sha, b.ref, b.production].filter((x) => x).length === 1, {
                  message: "give exactly one of sha, ref or production: true",
                }),
            },
          },
        },
      },
      responses: ok("the execution's document", 201),
    }),
    async (c) => {
      const { repo } = c.req.valid("param");
      can(c, repo, "start");
      const body = c.req.valid("json");
      let at: VersionRef;
      if (body.sha) at = { sha: body.sha };
      else if (body.production) at = { production: true };
      else {
        const latest = await store.versions.latestOnBranch(repo, body.ref as string);
        if (!latest)
          throw new ApiError(
            404,
            "not_found",
            `no registered version of ${repo} on branch "${body.ref}"`,
          );
        at = { sha: latest.sha };
      }
      const p = c.get("principal");
      const exec = await startExecution(store, {
        repo,
        at,
        workflow: body.workflow,
        inputs: body.inputs as Record<string, never>,
        trigger: {
          kind: p.kind === "oidc" ? "action" : "api",
          actor: actor(c),
          ...(body.pr ? { pr: body.pr } : {}),
        },
        overwriteCache: body.overwriteCache,
      });
      return c.json(await document(exec), 201);
    },
  );

  api.openapi(
    createRoute({
      method: "get",
      path: "/executions/{id}",
      summary: "An execution's document (the same as `reprise status --json`)",
      request: { params: ExecParam },
      responses: ok("the document", 200),
    }),
    async (c) => c.json(await document(await execution(c, c.req.valid("param").id)), 200),
  );

  api.openapi(
    createRoute({
      method: "post",
      path: "/executions/{id}/relaunch",
      summary: "Run an execution's workflow and inputs again (the cache decides what runs)",
      request: {
        params: ExecParam,
        body: {
          required: false,
          content: {
            "application/json": {
              schema: z.object({
                sha: Sha.optional(),
                recover: z.boolean().default(false),
                overwriteCache: z.boolean().default(false),
              }),
            },
          },
        },
      },
      responses: ok("the new execution's document", 201),
    }),
    async (c) => {
      const parent = await execution(c, c.req.valid("param").id, "start");
      const body = c.req.valid("json") ?? { recover: false, overwriteCache: false };
      const exec = await relaunchExecution(store, {
        parent: parent.id,
        sha: body.sha ?? null,
        recover: body.recover,
        overwriteCache: body.overwriteCache,
        trigger: {
          kind: "api",
          actor: actor(c),
          ...(parent.trigger.pr ? { pr: parent.trigger.pr } : {}),
        },
      });
      return c.json(await document(exec), 201);
    },
  );

  api.openapi(
    createRoute({
      method: "post",
      path: "/executions/{id}/abort",
      summary: "Ask an execution to stop (its runner kills what runs)",
      request: { params: ExecParam },
      responses: ok("the document", 200),
    }),
    async (c) => {
      const exec = await execution(c, c.req.valid("param").id, "start");
      if (!(await store.executions.requestAbort(exec.id)))
        throw new ApiError(
          409,
          "conflict",
          `execution ${exec.id} has already finished (${exec.state})`,
        );
      return c.json(await document((await store.executions.get(exec.id)) as ExecutionRecord), 200);
    },
  );

  api.openapi(
    createRoute({
      method: "get",
      path: "/executions/{id}/nodes/{node}/logs",
      summary: "A node's log tail, for its last attempt or the one asked for",
      request: {
        params: ExecParam.extend({ node: PathName }),
        query: z.object({
          attempt: z.coerce.number().int().min(1).optional(),
          tail: z.coerce
            .number()
            .int()
            .min(1)
            .max(1024 * 1024)
            .default(64 * 1024),
        }),
      },
      responses: ok("the log", 200),
    }),
    async (c) => {
      const { id, node } = c.req.valid("param");
      const exec = await execution(c, id);
      const q = c.req.valid("query");
      const [entry] = await nodeLogs(store, deps.executor, exec, {
        node,
        attempt: q.attempt ?? null,
        tail: q.tail,
      });
      return c.json({ execution: exec.id, ...entry }, 200);
    },
  );

  api.openapi(
    createRoute({
      method: "get",
      path: "/executions/{id}/nodes/{node}/lineage",
      summary: "Where a node's outputs were computed, through cache hits and recoveries",
      request: { params: ExecParam.extend({ node: PathName }) },
      responses: ok("the lineage", 200),
    }),
    async (c) => {
      const { id, node } = c.req.valid("param");
      return c.json(await lineage(store, await execution(c, id), node), 200);
    },
  );

  // Production ---------------------------------------------------------------------------------

  api.openapi(
    createRoute({
      method: "get",
      path: "/repos/{repo}/production",
      summary: "The production version and its activation history, newest first",
      request: { params: RepoParam, query: z.object({ limit: Limit }) },
      responses: ok("production", 200),
    }),
    async (c) => {
      const { repo } = c.req.valid("param");
      can(c, repo);
      const history = await store.production.history(repo, c.req.valid("query").limit ?? 50);
      return c.json({ repo, current: history[0] ?? null, history }, 200);
    },
  );

  api.openapi(
    createRoute({
      method: "post",
      path: "/repos/{repo}/production",
      summary: 'Activate a registered version (a revert\'s reads "rollback to <sha>")',
      request: {
        params: RepoParam,
        body: {
          content: {
            "application/json": {
              schema: z.object({ sha: Sha, reason: z.string().min(1).max(1000).optional() }),
            },
          },
        },
      },
      responses: ok("the activation", 200),
    }),
    async (c) => {
      const { repo } = c.req.valid("param");
      can(c, repo, "activate");
      const body = c.req.valid("json");
      const { activation, changed } = await activateVersion(store, {
        repo,
        sha: body.sha,
        actor: actor(c),
        reason: body.reason ?? null,
        otherwise: "activated through the API",
      });
      return c.json({ ...activation, changed }, 200);
    },
  );

  // Cache ----------------------------------------------------------------------------------------

  api.openapi(
    createRoute({
      method: "get",
      path: "/repos/{repo}/cache",
      summary: "Memo cache entries and hits per task",
      request: { params: RepoParam },
      responses: ok("cache stats", 200),
    }),
    async (c) => {
      const { repo } = c.req.valid("param");
      can(c, repo);
      const tasks = (await store.cache.stats(repo)).map((s) => ({
        task: s.taskName,
        taskDigest: s.taskDigest,
        entries: s.entries,
        hits: s.hits,
        lastHitAt: iso(s.lastHitAt),
      }));
      return c.json({ repo, tasks }, 200);
    },
  );

  api.openapi(
    createRoute({
      method: "delete",
      path: "/repos/{repo}/cache",
      summary:
        "Evict entries matching every filter given: task (name or digest), key, source execution",
      request: {
        params: RepoParam,
        query: z
          .object({
            task: z.string().min(1).optional(),
            key: z.string().min(1).optional(),
            execution: z.string().min(1).optional(),
          })
          .refine((q) => q.task || q.key || q.execution, {
            message: "give at least one of task, key or execution",
          }),
      },
      responses: ok("how many entries were evicted", 200),
    }),
    async (c) => {
      const { repo } = c.req.valid("param");
      can(c, repo, "evict");
      const q = c.req.valid("query");
      const task = q.task;
      const evicted = await store.cache.evict(repo, {
        ...(q.key ? { key: q.key } : {}),
        ...(task ? (task.startsWith("sha256:") ? { taskDigest: task } : { taskName: task }) : {}),
        ...(q.execution ? { sourceExecution: q.execution } : {}),
      });
      return c.json({ repo, evicted }, 200);
    },
  );

  artifactRoutes(api, deps, nodesOf);

  api.doc31("/openapi.json", {
    openapi: "3.1.0",
    info: { title: "Reprise API", version: "1", description: "Versioned workflows inside GitHub" },
    security: [{ bearer: [] }],
  });
  return api;
}

/** Tree objects, decoded, at most this many bytes in all (100,000 entries take about 7 MB). */
const MAX_TREE_BYTES = 32 * 1024 * 1024;

/**
 * The posted objects, checked against their ids (core/version/git-objects.ts): 422 naming the
 * object that does not match, so nothing but the commit's own content is ever registered.
 */
function verifiedCommit(body: { sha: string; commit: string; trees: string[]; spec: string }) {
  const trees = body.trees.map((t) => Buffer.from(t, "base64"));
  const total = trees.reduce((n, t) => n + t.length, 0);
  if (total > MAX_TREE_BYTES)
    throw new ApiError(
      413,
      "payload_too_large",
      `the tree objects take ${total} bytes, over the ${MAX_TREE_BYTES}-byte limit: register this commit through the GitHub App`,
    );
  try {
    return verifyCommit({
      sha: body.sha,
      commit: Buffer.from(body.commit, "base64"),
      trees,
      spec: Buffer.from(body.spec, "utf8"),
    });
  } catch (e) {
    if (e instanceof GitObjectError)
      throw new ApiError(422, "verification_failed", `${body.sha.slice(0, 12)}: ${e.message}`);
    throw e;
  }
}

/**
 * The branch a client's registration records. An OIDC token's is GitHub's word: a posted ref
 * must be its `ref` claim's branch, at its `sha` claim. An API token's is recorded as it is
 * posted (a write token may do anything in its repositories); the App's push records its own.
 */
function claimedRef(p: Principal, sha: string, ref: string | null): string | null {
  if (ref === null || p.kind !== "oidc") return ref;
  const claims = p.claims ?? { ref: null, sha: null };
  // GitHub's tokens always carry `sha`; an issuer's that lacks it is held to the ref alone.
  if (claims.ref !== `refs/heads/${ref}` || (claims.sha !== null && claims.sha !== sha))
    throw new ApiError(
      403,
      "forbidden",
      `this OIDC token is for ${claims.ref ?? "no ref"} at ${claims.sha?.slice(0, 12) ?? "no sha"}: it may record ${sha.slice(0, 12)} on branch "${ref}" only from a workflow run of that branch at that commit (post ref: null otherwise)`,
    );
  return ref;
}

function executionSummary(e: ExecutionRecord) {
  return {
    id: e.id,
    workflow: e.workflow,
    sha: e.sha,
    status: e.state,
    mode: e.mode,
    parent: e.parentId,
    trigger: e.trigger,
    inputs: e.inputs,
    outputs: e.outputs,
    error: e.error,
    createdAt: iso(e.createdAt),
    startedAt: iso(e.startedAt),
    finishedAt: iso(e.finishedAt),
  };
}
