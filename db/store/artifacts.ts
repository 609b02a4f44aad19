/**
 * The artifacts each repository holds (schema.ts `artifacts`): written with a node's success
 * (node-sql.ts, first producer wins) or by an upload, read for lineage and to decide whether a
 * repository may read a blob at all. Also what the store's garbage collection asks of the
 * database (runner/artifacts/gc.ts): which digests are referenced, and the removal of the rows of
 * the blobs it removes.
 */
import { and, eq, inArray, sql } from "drizzle-orm";
import type { Db } from "../connect.js";
import { rows } from "../query.js";
import { artifacts } from "../schema.js";
import type { ArtifactRecord } from "../types.js";

/** A row of `artifacts` as it is stored: what gc deletes, and puts back when it keeps the blob. */
export type ArtifactRow = typeof artifacts.$inferSelect;

/** A digest something references, and whether any reference says it is a directory. */
export interface ArtifactReference {
  digest: string;
  directory: boolean;
}

export interface ArtifactUpload {
  digest: string;
  type: "file" | "directory";
  size: number;
  files?: number | null;
}

export class ArtifactIndex {
  constructor(private readonly db: Db) {}

  /** Records an upload; an artifact the repository holds already keeps its lineage. */
  async recordUpload(repo: string, a: ArtifactUpload, uploadedBy: string): Promise<ArtifactRecord> {
    await this.db
      .insert(artifacts)
      .values({
        repo,
        digest: a.digest,
        type: a.type,
        size: a.size,
        files: a.type === "directory" ? (a.files ?? 0) : null,
        uploadedBy,
      })
      .onConflictDoNothing();
    return (await this.get(repo, a.digest)) as ArtifactRecord;
  }

  async get(repo: string, digest: string): Promise<ArtifactRecord | null> {
    const [r] = await this.db
      .select()
      .from(artifacts)
      .where(and(eq(artifacts.repo, repo), eq(artifacts.digest, digest)));
    return r ? toRecord(r) : null;
  }

  /** The records of these digests in one repository, by digest (absent: not the repository's). */
  async getMany(repo: string, digests: readonly string[]): Promise<Map<string, ArtifactRecord>> {
    const out = new Map<string, ArtifactRecord>();
    if (digests.length === 0) return out;
    const rs = await this.db
      .select()
      .from(artifacts)
      .where(and(eq(artifacts.repo, repo), inArray(artifacts.digest, [...new Set(digests)])));
    for (const r of rs) out.set(r.digest, toRecord(r));
    return out;
  }

  /**
   * Every artifact digest that must be kept (gc's roots; DESIGN: artifacts, retention), across
   * all repositories, since blobs are shared by content:
   *   - the outputs of every cache entry;
   *   - the inputs and outputs, and their nodes' inputs and outputs, of every execution of a
   *     version in a repository's production history (every sha `activations` ever named), so
   *     a rollback finds its results;
   *   - the same of every execution not finished (QUEUED, RUNNING, ABORTING);
   *   - every row recorded within the last `graceSeconds` (an upload about to be used).
   * A reference is any JSON object with an "artifact" key, at any depth: the documented values
   * are top-level, but a `json` value that holds one is kept too, since keeping costs only bytes.
   * With `among`, only those digests are returned, plus every directory (whose manifest says
   * which file blobs it keeps).
   */
  async references(
    graceSeconds: number,
    among: readonly string[] | null = null,
  ): Promise<ArtifactReference[]> {
    const only =
      among === null
        ? sql``
        : sql`having digest in (select jsonb_array_elements_text(${JSON.stringify(among)}::jsonb))
                  or bool_or(type = 'directory')`;
    const rs = await rows<{ digest: string; directory: boolean }>(
      this.db,
      sql`with live_executions as (
            select e.id, e.inputs, e.outputs from executions e
             where e.state in ('QUEUED', 'RUNNING', 'ABORTING')
                or (e.repo, e.sha) in (select a.repo, a.sha from activations a)
          ),
          docs(doc) as (
            select outputs from cache_entries
            union all select inputs from live_executions
            union all select outputs from live_executions
            union all select n.inputs from node_executions n join live_executions e on e.id = n.execution_id
            union all select n.outputs from node_executions n join live_executions e on e.id = n.execution_id
          ),
          refs(digest, type) as (
            select r ->> 'artifact', r ->> 'type'
              from docs
              cross join lateral jsonb_path_query(docs.doc, 'lax $.** ? (@.type() == "object" && exists(@.artifact))') as r
            union all
            select digest, type from artifacts
             where created_at > now() - make_interval(secs => ${graceSeconds})
          )
          select digest, coalesce(bool_or(type = 'directory'), false) as directory
            from refs
           where digest ~ '^sha256:[0-9a-f]{64}$'
           group by digest
           ${only}`,
    );
    return rs.map((r) => ({ digest: r.digest, directory: r.directory === true }));
  }

  /** Deletes the rows of these digests in every repository; returns them, to put back if need be. */
  async deleteDigests(digests: readonly string[]): Promise<ArtifactRow[]> {
    if (digests.length === 0) return [];
    return this.db
      .delete(artifacts)
      .where(inArray(artifacts.digest, [...new Set(digests)]))
      .returning();
  }

  /** Puts rows back as they were (gc kept the blob after all); a row recorded since wins. */
  async restore(rs: readonly ArtifactRow[]): Promise<void> {
    if (rs.length === 0) return;
    await this.db
      .insert(artifacts)
      .values([...rs])
      .onConflictDoNothing();
  }
}

function toRecord(r: typeof artifacts.$inferSelect): ArtifactRecord {
  return {
    repo: r.repo,
    digest: r.digest,
    type: r.type,
    size: r.size,
    files: r.files,
    producer:
      r.executionId && r.nodeId && r.taskDigest
        ? { execution: r.executionId, node: r.nodeId, taskDigest: r.taskDigest }
        : null,
    uploadedBy: r.uploadedBy,
    createdAt: r.createdAt,
  };
}
