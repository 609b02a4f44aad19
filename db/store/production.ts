/**
 * The production pointer: an append-only history of activations; the current version is the
 * latest. Activations of one repository are serialized by locking its row.
 */
import { and, desc, eq, sql } from "drizzle-orm";
import type { Db } from "../connect.js";
import { NotFoundError } from "../errors.js";
import { rows, transaction } from "../query.js";
import { activations, versions } from "../schema.js";
import type { Activation } from "../types.js";

export class ProductionStore {
  constructor(private readonly db: Db) {}

  /**
   * Makes `sha` the production version. Activating the version already active changes nothing
   * (a redelivered push is harmless) and returns the current activation with `changed: false`.
   */
  async activate(input: {
    repo: string;
    sha: string;
    actor: string;
    reason: string;
  }): Promise<{ activation: Activation; changed: boolean }> {
    return transaction(this.db, async (tx) => {
      const locked = await rows(
        tx,
        sql`select key from repositories where key = ${input.repo} for update`,
      );
      if (locked.length === 0)
        throw new NotFoundError(`repository ${input.repo} is unknown; register a version first`);
      const [version] = await tx
        .select({ status: versions.status })
        .from(versions)
        .where(and(eq(versions.repo, input.repo), eq(versions.sha, input.sha)));
      if (!version)
        throw new NotFoundError(
          `${input.sha} of ${input.repo} is not registered; register it before activating`,
        );
      if (version.status !== "registered") {
        throw new NotFoundError(
          `${input.sha} of ${input.repo} has an invalid reprise.yaml and cannot be activated`,
        );
      }
      const [current] = await tx
        .select()
        .from(activations)
        .where(eq(activations.repo, input.repo))
        .orderBy(desc(activations.id))
        .limit(1);
      if (current?.sha === input.sha) return { activation: current, changed: false };
      const [row] = await tx
        .insert(activations)
        .values({
          repo: input.repo,
          sha: input.sha,
          previousSha: current?.sha ?? null,
          actor: input.actor,
          reason: input.reason,
        })
        .returning();
      return { activation: row as Activation, changed: true };
    });
  }

  async current(repo: string): Promise<Activation | null> {
    const [row] = await this.db
      .select()
      .from(activations)
      .where(eq(activations.repo, repo))
      .orderBy(desc(activations.id))
      .limit(1);
    return row ?? null;
  }

  /** Newest first. */
  async history(repo: string, limit = 50): Promise<Activation[]> {
    return this.db
      .select()
      .from(activations)
      .where(eq(activations.repo, repo))
      .orderBy(desc(activations.id))
      .limit(limit);
  }
}
