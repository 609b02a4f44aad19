/**
 * Everything Reprise remembers. Versions, tasks, workflows, their mappings and the activation
 * history are immutable: triggers in the migrations refuse UPDATE, DELETE and TRUNCATE on them.
 * Times that decide ownership (leases, reservations) are the database's clock, never a runner's.
 */
import { sql } from "drizzle-orm";
import {
  bigint,
  bigserial,
  boolean,
  check,
  foreignKey,
  index,
  integer,
  jsonb,
  pgTable,
  primaryKey,
  text,
  timestamp,
} from "drizzle-orm/pg-core";
import {
  ATTEMPT_STATES,
  CACHE_STATUSES,
  ERROR_KINDS,
  EXECUTION_MODES,
  EXECUTION_STATES,
  NODE_STATES,
} from "../core/engine/vocabulary.js";
import { REF_SOURCES } from "./types.js";

const ts = (name: string) => timestamp(name, { withTimezone: true, mode: "date" });
const createdAt = () => ts("created_at").notNull().defaultNow();

export const repositories = pgTable("repositories", {
  key: text("key").primaryKey(),
  /**
   * The production branch: the GitHub default branch as the App's last registering push gave
   * it (`repository.default_branch`). null until then: REPRISE_PRODUCTION_BRANCH, else "main".
   */
  productionBranch: text("production_branch"),
  createdAt: createdAt(),
});

export const versions = pgTable(
  "versions",
  {
    repo: text("repo")
      .notNull()
      .references(() => repositories.key),
    sha: text("sha").notNull(),
    parents: text("parents").array().notNull().default(sql`'{}'::text[]`),
    ref: text("ref"),
    message: text("message"),
    /** "registered", or "invalid": errors recorded, nothing executable stored. */
    status: text("status", { enum: ["registered", "invalid"] }).notNull(),
    specDigest: text("spec_digest"),
    errors: jsonb("errors").notNull().default(sql`'[]'::jsonb`),
    warnings: jsonb("warnings").notNull().default(sql`'[]'::jsonb`),
    /**
     * Who registered it: "app" (the GitHub App read it from GitHub), "cli" (the CLI read a
     * local repository's git), or the API caller's subject (`token:<id>`, an OIDC `sub`).
     * "unknown" for versions registered before migration 0003.
     */
    registeredBy: text("registered_by").notNull(),
    registeredAt: ts("registered_at").notNull().defaultNow(),
  },
  (t) => [
    primaryKey({ columns: [t.repo, t.sha] }),
    index("versions_spec_digest").on(t.repo, t.specDigest),
  ],
);

/**
 * The branches a version is known under, append-only: a row each time a source saw the commit
 * at a branch's head. `source` "app" is GitHub's word (a signed push the App read), "git" a
 * local repository's own git (the CLI read it), "client" a claim posted through the API. A
 * branch that "app" or "git" has recorded is read from those rows alone, so a client's claim
 * never moves it; no one updates or deletes a row (triggers refuse).
 */
export const versionRefs = pgTable(
  "version_refs",
  {
    id: bigserial("id", { mode: "number" }).primaryKey(),
    repo: text("repo").notNull(),
    sha: text("sha").notNull(),
    ref: text("ref").notNull(),
    source: text("source", { enum: REF_SOURCES }).notNull(),
    /** "app", "cli", or the API caller's subject, as `versions.registered_by`. */
    recordedBy: text("recorded_by").notNull(),
    recordedAt: ts("recorded_at").notNull().defaultNow(),
  },
  (t) => [
    foreignKey({ columns: [t.repo, t.sha], foreignColumns: [versions.repo, versions.sha] }),
    index("version_refs_branch").on(t.repo, t.ref, t.source, t.id),
    index("version_refs_sha").on(t.repo, t.sha),
    check("version_refs_source", sql`${t.source} in ('app', 'git', 'client')`),
  ],
);

/** A task's definition: exactly what its digest covers, so one row serves every version. */
export const tasks = pgTable("tasks", {
  digest: text("digest").primaryKey(),
  definition: jsonb("definition").notNull(),
  createdAt: createdAt(),
});

export const workflows = pgTable("workflows", {
  digest: text("digest").primaryKey(),
  definition: jsonb("definition").notNull(),
  createdAt: createdAt(),
});

/** A task name in a version, and the settings its digest leaves out (retries, timeout...). */
export const versionTasks = pgTable(
  "version_tasks",
  {
    repo: text("repo").notNull(),
    sha: text("sha").notNull(),
    name: text("name").notNull(),
    taskDigest: text("task_digest")
      .notNull()
      .references(() => tasks.digest),
    settings: jsonb("settings").notNull(),
  },
  (t) => [
    primaryKey({ columns: [t.repo, t.sha, t.name] }),
    foreignKey({ columns: [t.repo, t.sha], foreignColumns: [versions.repo, versions.sha] }),
    index("version_tasks_digest").on(t.taskDigest),
  ],
);

export const versionWorkflows = pgTable(
  "version_workflows",
  {
    repo: text("repo").notNull(),
    sha: text("sha").notNull(),
    name: text("name").notNull(),
    workflowDigest: text("workflow_digest")
      .notNull()
      .references(() => workflows.digest),
    /** node id -> task name: two names may share a digest but not their settings. */
    nodeTasks: jsonb("node_tasks").notNull(),
    triggers: jsonb("triggers").notNull(),
  },
  (t) => [
    primaryKey({ columns: [t.repo, t.sha, t.name] }),
    foreignKey({ columns: [t.repo, t.sha], foreignColumns: [versions.repo, versions.sha] }),
  ],
);

export const executions = pgTable(
  "executions",
  {
    id: text("id").primaryKey(),
    repo: text("repo").notNull(),
    sha: text("sha").notNull(),
    workflow: text("workflow").notNull(),
    workflowDigest: text("workflow_digest").notNull(),
    inputs: jsonb("inputs").notNull(),
    trigger: jsonb("trigger").notNull(),
    parentId: text("parent_id"),
    mode: text("mode", { enum: EXECUTION_MODES }).notNull(),
    overwriteCache: boolean("overwrite_cache").notNull().default(false),
    state: text("state", { enum: EXECUTION_STATES }).notNull(),
    outputs: jsonb("outputs"),
    error: jsonb("error"),
    leaseOwner: text("lease_owner"),
    /** Bumped on every claim: a write carrying an older token is refused (fencing). */
    leaseToken: bigint("lease_token", { mode: "number" }).notNull().default(0),
    leaseExpiresAt: ts("lease_expires_at"),
    createdAt: createdAt(),
    startedAt: ts("started_at"),
    finishedAt: ts("finished_at"),
    updatedAt: ts("updated_at").notNull().defaultNow(),
  },
  (t) => [
    foreignKey({ columns: [t.repo, t.sha], foreignColumns: [versions.repo, versions.sha] }),
    foreignKey({ columns: [t.parentId], foreignColumns: [t.id] }),
    index("executions_active")
      .on(t.state, t.leaseExpiresAt)
      .where(sql`state in ('QUEUED', 'RUNNING', 'ABORTING')`),
    index("executions_repo_created").on(t.repo, t.createdAt),
  ],
);

export const nodeExecutions = pgTable(
  "node_executions",
  {
    executionId: text("execution_id")
      .notNull()
      .references(() => executions.id),
    nodeId: text("node_id").notNull(),
    taskName: text("task_name").notNull(),
    taskDigest: text("task_digest").notNull(),
    state: text("state", { enum: NODE_STATES }).notNull(),
    cacheStatus: text("cache_status", { enum: CACHE_STATUSES }),
    cacheKey: text("cache_key"),
    /** Why the cache did not serve a cacheable node (a hit whose artifact is gone, say). */
    cacheReason: text("cache_reason"),
    inputs: jsonb("inputs"),
    outputs: jsonb("outputs"),
    /** Attempts started, user and system alike. */
    attempts: integer("attempts").notNull().default(0),
    userFailures: integer("user_failures").notNull().default(0),
    systemFailures: integer("system_failures").notNull().default(0),
    sourceExecutionId: text("source_execution_id"),
    sourceNodeId: text("source_node_id"),
    error: jsonb("error"),
    startedAt: ts("started_at"),
    finishedAt: ts("finished_at"),
    updatedAt: ts("updated_at").notNull().defaultNow(),
  },
  (t) => [primaryKey({ columns: [t.executionId, t.nodeId] })],
);

export const attempts = pgTable(
  "attempts",
  {
    executionId: text("execution_id").notNull(),
    nodeId: text("node_id").notNull(),
    attempt: integer("attempt").notNull(),
    /** The executor's deterministic handle (process dir, Job name): how a restart re-attaches. */
    handle: text("handle").notNull(),
    state: text("state", { enum: ATTEMPT_STATES }).notNull(),
    errorKind: text("error_kind", { enum: ERROR_KINDS }),
    errorReason: text("error_reason"),
    errorMessage: text("error_message"),
    exitCode: integer("exit_code"),
    logRef: text("log_ref"),
    startedAt: ts("started_at").notNull().defaultNow(),
    finishedAt: ts("finished_at"),
  },
  (t) => [
    primaryKey({ columns: [t.executionId, t.nodeId, t.attempt] }),
    foreignKey({
      columns: [t.executionId, t.nodeId],
      foreignColumns: [nodeExecutions.executionId, nodeExecutions.nodeId],
    }),
  ],
);

export const cacheEntries = pgTable(
  "cache_entries",
  {
    key: text("key").primaryKey(),
    repo: text("repo").notNull(),
    taskName: text("task_name").notNull(),
    taskDigest: text("task_digest").notNull(),
    identity: jsonb("identity").notNull(),
    outputs: jsonb("outputs").notNull(),
    sourceExecutionId: text("source_execution_id").notNull(),
    sourceNodeId: text("source_node_id").notNull(),
    createdAt: createdAt(),
    lastHitAt: ts("last_hit_at"),
    hitCount: integer("hit_count").notNull().default(0),
  },
  (t) => [
    index("cache_entries_task").on(t.repo, t.taskDigest),
    index("cache_entries_source").on(t.sourceExecutionId),
  ],
);

/**
 * The artifacts a repository holds (file and directory values), with the execution, node and
 * task digest that first produced each (null for an upload). The bytes are blobs of the
 * artifact store, shared by content; this row is what lets a repository read them, so a token
 * for one repository never reads another's artifact, even knowing its digest.
 */
export const artifacts = pgTable(
  "artifacts",
  {
    repo: text("repo").notNull(),
    digest: text("digest").notNull(),
    type: text("type", { enum: ["file", "directory"] }).notNull(),
    size: bigint("size", { mode: "number" }).notNull(),
    files: integer("files"),
    executionId: text("execution_id"),
    nodeId: text("node_id"),
    taskDigest: text("task_digest"),
    /** Who uploaded it, when no task produced it. */
    uploadedBy: text("uploaded_by"),
    createdAt: createdAt(),
  },
  (t) => [
    primaryKey({ columns: [t.repo, t.digest] }),
    index("artifacts_digest").on(t.digest),
    index("artifacts_execution").on(t.executionId),
  ],
);

export const cacheReservations = pgTable("cache_reservations", {
  key: text("key").primaryKey(),
  repo: text("repo").notNull(),
  /** execution/node/attempt of the holder: the fencing owner. */
  owner: text("owner").notNull(),
  expiresAt: ts("expires_at").notNull(),
  createdAt: createdAt(),
});

export const activations = pgTable(
  "activations",
  {
    id: bigserial("id", { mode: "number" }).primaryKey(),
    repo: text("repo").notNull(),
    sha: text("sha").notNull(),
    previousSha: text("previous_sha"),
    actor: text("actor").notNull(),
    reason: text("reason").notNull(),
    activatedAt: ts("activated_at").notNull().defaultNow(),
  },
  (t) => [
    foreignKey({ columns: [t.repo, t.sha], foreignColumns: [versions.repo, versions.sha] }),
    index("activations_repo").on(t.repo, t.id),
  ],
);

/** The durable inbox of GitHub webhook deliveries: each X-GitHub-Delivery is stored once. */
export const deliveries = pgTable(
  "deliveries",
  {
    id: text("id").primaryKey(),
    event: text("event").notNull(),
    action: text("action"),
    payload: jsonb("payload").notNull(),
    receivedAt: ts("received_at").notNull().defaultNow(),
    lockedUntil: ts("locked_until"),
    attempts: integer("attempts").notNull().default(0),
    processedAt: ts("processed_at"),
    outcome: text("outcome"),
  },
  (t) => [index("deliveries_pending").on(t.receivedAt).where(sql`processed_at is null`)],
);

export const apiTokens = pgTable("api_tokens", {
  id: text("id").primaryKey(),
  /** sha256 of the token; the token itself is shown once and never stored. */
  tokenHash: text("token_hash").notNull().unique(),
  repos: text("repos").array().notNull(),
  readOnly: boolean("read_only").notNull().default(false),
  description: text("description").notNull().default(""),
  createdAt: createdAt(),
  expiresAt: ts("expires_at"),
  revokedAt: ts("revoked_at"),
});

export const checkRuns = pgTable("check_runs", {
  executionId: text("execution_id")
    .primaryKey()
    .references(() => executions.id),
  repo: text("repo").notNull(),
  checkRunId: bigint("check_run_id", { mode: "number" }).notNull(),
  name: text("name").notNull(),
  createdAt: createdAt(),
});
