/**
 * Registration and reading of versions. Registering is one transaction: the version row, its
 * content-addressed tasks and workflows (stored once however many versions share them), the
 * name mappings and the branch it was registered from, or none of it. The same SHA registered
 * twice, even concurrently, yields one version: the second insert waits for the first
 * transaction and then does nothing, and only the branch the second names is recorded.
 *
 * Branches are `version_refs` rows (schema.ts): the App's (or local git's) word and clients'
 * claims side by side. A branch either of the first two has recorded is read from their rows
 * alone; a client's claim counts only for a branch no one else has seen.
 */
import { and, asc, desc, eq, getTableColumns, inArray, lt, ne, type SQL, sql } from "drizzle-orm";
import type { TaskDefinition, WorkflowDefinition } from "../../core/hash/task-digest.js";
import { taskDefinition, workflowDefinition } from "../../core/hash/task-digest.js";
import type { Diagnostic } from "../../core/spec/diagnostics.js";
import type { Binding, TaskSpec, Triggers, WorkflowSpec } from "../../core/spec/types.js";
import type { BuildResult } from "../../core/version/build-version.js";
import type { Db } from "../connect.js";
import { NotFoundError } from "../errors.js";
import { type Queryable, rows, transaction } from "../query.js";
import {
  repositories,
  tasks,
  versionRefs,
  versions,
  versionTasks,
  versionWorkflows,
  workflows,
} from "../schema.js";
import type {
  Registrant,
  ResolvedWorkflow,
  TaskSettings,
  VersionRecord,
  VersionRef,
} from "../types.js";

/** Rows per INSERT: well under Postgres's 65,535 bind parameters for every table here. */
const CHUNK = 1_000;

export interface RegisterInput {
  repo: string;
  sha: string;
  parents: string[];
  /** The branch it is registered from (recorded as `by.source` says), or null. */
  ref: string | null;
  message: string | null;
  result: BuildResult;
  by: Registrant;
}

export interface TaskTimelineEntry {
  sha: string;
  parents: string[];
  ref: string | null;
  message: string | null;
  status: "registered" | "invalid";
  registeredAt: Date;
  digest: string | null;
}

export class VersionStore {
  constructor(private readonly db: Db) {}

  async ensureRepository(key: string): Promise<void> {
    await this.db.insert(repositories).values({ key }).onConflictDoNothing();
  }

  /**
   * Registers `sha` unless it is, and records the branch it comes from either way: the content
   * of a SHA is fixed (every registration is verified against its git object ids), but the App
   * seeing a commit a client registered first still records its branch.
   */
  async register(input: RegisterInput): Promise<{ version: VersionRecord; created: boolean }> {
    const { repo, sha, result } = input;
    const created = await transaction(this.db, async (tx) => {
      await tx.insert(repositories).values({ key: repo }).onConflictDoNothing();
      const inserted = await tx
        .insert(versions)
        .values({
          repo,
          sha,
          parents: input.parents,
          ref: input.ref,
          message: input.message,
          status: result.ok ? "registered" : "invalid",
          specDigest: result.ok ? result.version.specDigest : null,
          errors: result.ok ? [] : result.errors,
          warnings: result.warnings,
          registeredBy: input.by.actor,
        })
        .onConflictDoNothing()
        .returning({ sha: versions.sha });
      if (inserted.length > 0 && result.ok) await insertContent(tx, repo, sha, result);
      if (input.ref !== null) await insertRef(tx, repo, sha, input.ref, input.by);
      return inserted.length > 0;
    });
    const version = await this.get(repo, sha);
    if (!version) throw new NotFoundError(`version ${sha} of ${repo} vanished after registration`);
    return { version, created };
  }

  /**
   * Records that `by` saw registered version `sha` at the head of `ref` (the App's push of a
   * commit already registered). Nothing is written when `by.source`'s newest row for the branch
   * already names `sha` (a redelivery); true when a row was added.
   */
  async recordRef(repo: string, sha: string, ref: string, by: Registrant): Promise<boolean> {
    return transaction(this.db, async (tx) => {
      const [known] = await tx
        .select({ sha: versions.sha })
        .from(versions)
        .where(and(eq(versions.repo, repo), eq(versions.sha, sha)));
      if (!known) throw new NotFoundError(`${sha} of ${repo} is not registered; register it first`);
      return insertRef(tx, repo, sha, ref, by);
    });
  }

  async get(repo: string, sha: string): Promise<VersionRecord | null> {
    const [row] = await this.db
      .select({ ...getTableColumns(versions), shownRef: shownRef() })
      .from(versions)
      .where(and(eq(versions.repo, repo), eq(versions.sha, sha)));
    if (!row) return null;
    const [refRows, taskRows, workflowRows] = await Promise.all([
      this.db
        .select({
          ref: versionRefs.ref,
          source: versionRefs.source,
          recordedBy: versionRefs.recordedBy,
          recordedAt: versionRefs.recordedAt,
        })
        .from(versionRefs)
        .where(and(eq(versionRefs.repo, repo), eq(versionRefs.sha, sha)))
        .orderBy(asc(versionRefs.id)),
      this.db
        .select({ name: versionTasks.name, digest: versionTasks.taskDigest })
        .from(versionTasks)
        .where(and(eq(versionTasks.repo, repo), eq(versionTasks.sha, sha)))
        .orderBy(asc(versionTasks.name)),
      this.db
        .select({ name: versionWorkflows.name, digest: versionWorkflows.workflowDigest })
        .from(versionWorkflows)
        .where(and(eq(versionWorkflows.repo, repo), eq(versionWorkflows.sha, sha)))
        .orderBy(asc(versionWorkflows.name)),
    ]);
    return {
      ...toVersion(row),
      refs: refRows satisfies VersionRef[],
      tasks: Object.fromEntries(taskRows.map((t) => [t.name, t.digest])),
      workflows: Object.fromEntries(workflowRows.map((w) => [w.name, w.digest])),
    };
  }

  /** Newest first. The task and workflow maps are left empty; `get` fills them. */
  async list(repo: string, opts: { limit?: number; before?: Date } = {}): Promise<VersionRecord[]> {
    const rs = await this.db
      .select({ ...getTableColumns(versions), shownRef: shownRef() })
      .from(versions)
      .where(
        and(
          eq(versions.repo, repo),
          opts.before ? lt(versions.registeredAt, opts.before) : undefined,
        ),
      )
      .orderBy(desc(versions.registeredAt), desc(versions.sha))
      .limit(opts.limit ?? 50);
    return rs.map((r) => ({ ...toVersion(r), refs: [], tasks: {}, workflows: {} }));
  }

  /** Every repository key, sorted. */
  async repositories(): Promise<string[]> {
    const rs = await this.db
      .select({ key: repositories.key })
      .from(repositories)
      .orderBy(asc(repositories.key));
    return rs.map((r) => r.key);
  }

  /**
   * The valid version most recently recorded at the head of `branch`, or null. Once the App (or
   * local git) has recorded the branch, only its rows count: a client's claim never moves it.
   */
  async latestOnBranch(repo: string, branch: string): Promise<VersionRecord | null> {
    const [row] = await rows<{ sha: string }>(
      this.db,
      sql`select r.sha from version_refs r
          join versions v on v.repo = r.repo and v.sha = r.sha
          where r.repo = ${repo} and r.ref = ${branch} and v.status = 'registered'
            and (r.source <> 'client' or not exists (
              select 1 from version_refs o
              where o.repo = ${repo} and o.ref = ${branch} and o.source <> 'client'))
          order by r.id desc limit 1`,
    );
    return row ? this.get(repo, row.sha) : null;
  }

  /** The earliest other registered version with the same spec digest: "identical to <sha>". */
  async findEquivalent(
    repo: string,
    specDigest: string,
    exceptSha: string,
  ): Promise<string | null> {
    const [row] = await this.db
      .select({ sha: versions.sha })
      .from(versions)
      .where(
        and(
          eq(versions.repo, repo),
          eq(versions.specDigest, specDigest),
          ne(versions.sha, exceptSha),
        ),
      )
      .orderBy(asc(versions.registeredAt), asc(versions.sha))
      .limit(1);
    return row?.sha ?? null;
  }

  /** task name -> digest for each of `shas` that is registered (for diffs of many versions at once). */
  async taskDigests(
    repo: string,
    shas: readonly string[],
  ): Promise<Map<string, Record<string, string>>> {
    const out = new Map<string, Record<string, string>>();
    if (shas.length === 0) return out;
    const rs = await this.db
      .select({ sha: versionTasks.sha, name: versionTasks.name, digest: versionTasks.taskDigest })
      .from(versionTasks)
      .where(and(eq(versionTasks.repo, repo), inArray(versionTasks.sha, [...new Set(shas)])));
    for (const r of rs) {
      const map = out.get(r.sha) ?? {};
      map[r.name] = r.digest;
      out.set(r.sha, map);
    }
    return out;
  }

  /**
   * Every version of `repo`, oldest first, with the digest task `name` has in it (null: the
   * version has no such task, or its spec is invalid): what a task's history is computed from.
   */
  async taskTimeline(repo: string, name: string): Promise<TaskTimelineEntry[]> {
    const rs = await this.db
      .select({
        sha: versions.sha,
        parents: versions.parents,
        ref: shownRef(),
        message: versions.message,
        status: versions.status,
        registeredAt: versions.registeredAt,
        digest: versionTasks.taskDigest,
      })
      .from(versions)
      .leftJoin(
        versionTasks,
        and(
          eq(versionTasks.repo, versions.repo),
          eq(versionTasks.sha, versions.sha),
          eq(versionTasks.name, name),
        ),
      )
      .where(eq(versions.repo, repo))
      .orderBy(asc(versions.registeredAt), asc(versions.sha));
    return rs;
  }

  /** A workflow of a registered version, rebuilt from its immutable rows. */
  async resolveWorkflow(
    repo: string,
    sha: string,
    workflow: string,
    db: Queryable = this.db,
  ): Promise<ResolvedWorkflow> {
    const [version] = await db
      .select({ status: versions.status })
      .from(versions)
      .where(and(eq(versions.repo, repo), eq(versions.sha, sha)));
    if (!version) throw new NotFoundError(`${sha} of ${repo} is not registered; register it first`);
    if (version.status !== "registered") {
      throw new NotFoundError(
        `${sha} of ${repo} has an invalid reprise.yaml: fix its errors and register a new commit`,
      );
    }
    const [mapping] = await db
      .select({
        digest: versionWorkflows.workflowDigest,
        nodeTasks: versionWorkflows.nodeTasks,
        triggers: versionWorkflows.triggers,
        definition: workflows.definition,
      })
      .from(versionWorkflows)
      .innerJoin(workflows, eq(workflows.digest, versionWorkflows.workflowDigest))
      .where(
        and(
          eq(versionWorkflows.repo, repo),
          eq(versionWorkflows.sha, sha),
          eq(versionWorkflows.name, workflow),
        ),
      );
    if (!mapping) {
      const names = await db
        .select({ name: versionWorkflows.name })
        .from(versionWorkflows)
        .where(and(eq(versionWorkflows.repo, repo), eq(versionWorkflows.sha, sha)));
      throw new NotFoundError(
        `${sha.slice(0, 12)} has no workflow "${workflow}" (it has: ${names.map((n) => n.name).join(", ") || "none"})`,
      );
    }
    const nodeTasks = mapping.nodeTasks as Record<string, string>;
    const names = [...new Set(Object.values(nodeTasks))];
    const taskRows = await db
      .select({
        name: versionTasks.name,
        digest: versionTasks.taskDigest,
        settings: versionTasks.settings,
        definition: tasks.definition,
      })
      .from(versionTasks)
      .innerJoin(tasks, eq(tasks.digest, versionTasks.taskDigest))
      .where(
        and(
          eq(versionTasks.repo, repo),
          eq(versionTasks.sha, sha),
          inArray(versionTasks.name, names),
        ),
      );
    const resolvedTasks: ResolvedWorkflow["tasks"] = {};
    for (const t of taskRows) {
      resolvedTasks[t.name] = {
        digest: t.digest,
        spec: toTaskSpec(t.name, t.definition as TaskDefinition, t.settings as TaskSettings),
      };
    }
    const def = mapping.definition as WorkflowDefinition;
    const spec: WorkflowSpec = {
      name: workflow,
      inputs: def.inputs,
      nodes: Object.fromEntries(
        Object.entries(def.nodes).map(([id, n]) => [
          id,
          {
            id,
            task: nodeTasks[id] as string,
            inputs: n.inputs as Record<string, Binding>,
            after: n.after,
          },
        ]),
      ),
      outputs: def.outputs,
      on: mapping.triggers as Triggers,
    };
    return { repo, sha, digest: mapping.digest, spec, tasks: resolvedTasks };
  }
}

/** An arbitrary constant: with a hash of repository and branch, the lock that serializes a branch's rows. */
const REF_LOCK = 7_262_012;

/**
 * Adds a `version_refs` row unless `by.source`'s newest row for the branch already names `sha`,
 * so a redelivered push adds nothing while a branch moved back to `sha` (a revert by force push)
 * is recorded again. Inside a transaction: the branch's lock, held to its end, makes concurrent
 * registrations of one commit add one row. True when a row was added.
 */
async function insertRef(
  tx: Queryable,
  repo: string,
  sha: string,
  ref: string,
  by: Registrant,
): Promise<boolean> {
  await tx.execute(
    sql`select pg_advisory_xact_lock(${REF_LOCK}::int, hashtext(${`${repo}\n${ref}`}::text))`,
  );
  const added = await rows<{ id: number }>(
    tx,
    sql`insert into version_refs (repo, sha, ref, source, recorded_by)
        select ${repo}, ${sha}, ${ref}, ${by.source}, ${by.actor}
        where (select h.sha from version_refs h
               where h.repo = ${repo} and h.ref = ${ref} and h.source = ${by.source}
               order by h.id desc limit 1) is distinct from ${sha}
        returning id`,
  );
  return added.length > 0;
}

/**
 * The branch a version is shown under: the first the App or local git recorded for it, else the
 * one its registrant named (`versions.ref`, kept as posted). The outer columns are named in full:
 * drizzle leaves a one-table query's columns unqualified, which inside this subquery would name
 * version_refs' own.
 */
function shownRef(): SQL<string | null> {
  return sql<string | null>`coalesce((select r.ref from version_refs r
    where r.repo = "versions"."repo" and r.sha = "versions"."sha" and r.source <> 'client'
    order by r.id limit 1), "versions"."ref")`;
}

async function insertContent(
  tx: Queryable,
  repo: string,
  sha: string,
  result: Extract<BuildResult, { ok: true }>,
): Promise<void> {
  const { spec, tasks: digests, workflows: wfDigests } = result.version;
  const taskDigestByName: Record<string, `sha256:${string}`> = {};
  const taskRows: Array<typeof tasks.$inferInsert> = [];
  const mappingRows: Array<typeof versionTasks.$inferInsert> = [];
  for (const [name, task] of Object.entries(spec.tasks)) {
    const d = digests[name];
    if (!d) throw new Error(`task ${name} has no digest`);
    taskDigestByName[name] = d.digest;
    taskRows.push({ digest: d.digest, definition: taskDefinition(task, d.sourcesDigest) });
    const settings: TaskSettings = {
      retries: task.retries,
      timeoutSeconds: task.timeoutSeconds,
      resources: task.resources,
      cache: task.cache,
      secrets: task.secrets,
      sources: task.sources,
      sourcesDigest: d.sourcesDigest,
      sourceFiles: d.sourceFiles,
    };
    mappingRows.push({ repo, sha, name, taskDigest: d.digest, settings });
  }
  const workflowRows: Array<typeof workflows.$inferInsert> = [];
  const wfMappingRows: Array<typeof versionWorkflows.$inferInsert> = [];
  for (const [name, wf] of Object.entries(spec.workflows)) {
    const d = wfDigests[name];
    if (!d) throw new Error(`workflow ${name} has no digest`);
    workflowRows.push({ digest: d, definition: workflowDefinition(wf, taskDigestByName) });
    const nodeTasks = Object.fromEntries(Object.values(wf.nodes).map((n) => [n.id, n.task]));
    wfMappingRows.push({ repo, sha, name, workflowDigest: d, nodeTasks, triggers: wf.on });
  }
  // Two tasks of one version may share a digest: insert each definition once.
  const uniqueTasks = [...new Map(taskRows.map((r) => [r.digest, r])).values()];
  const uniqueWorkflows = [...new Map(workflowRows.map((r) => [r.digest, r])).values()];
  for (const chunk of chunks(uniqueTasks))
    await tx.insert(tasks).values(chunk).onConflictDoNothing();
  for (const chunk of chunks(uniqueWorkflows))
    await tx.insert(workflows).values(chunk).onConflictDoNothing();
  for (const chunk of chunks(mappingRows)) await tx.insert(versionTasks).values(chunk);
  for (const chunk of chunks(wfMappingRows)) await tx.insert(versionWorkflows).values(chunk);
}

function chunks<T>(rows: T[]): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < rows.length; i += CHUNK) out.push(rows.slice(i, i + CHUNK));
  return out;
}

function toVersion(
  row: typeof versions.$inferSelect & { shownRef: string | null },
): Omit<VersionRecord, "refs" | "tasks" | "workflows"> {
  return {
    repo: row.repo,
    sha: row.sha,
    parents: row.parents,
    ref: row.shownRef,
    message: row.message,
    status: row.status,
    specDigest: row.specDigest,
    errors: row.errors as Diagnostic[],
    warnings: row.warnings as Diagnostic[],
    registeredBy: row.registeredBy,
    registeredAt: row.registeredAt,
  };
}

export function toTaskSpec(name: string, def: TaskDefinition, s: TaskSettings): TaskSpec {
  return {
    name,
    image: def.image,
    command: def.command,
    env: def.env,
    workdir: def.workdir,
    sources: s.sources,
    inputs: def.inputs,
    outputs: def.outputs,
    cache: s.cache,
    retries: s.retries,
    timeoutSeconds: s.timeoutSeconds,
    resources: s.resources,
    secrets: s.secrets,
  };
}
