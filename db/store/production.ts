/**
 * The production pointer: an append-only history of activations; the current version is the
 * latest. Activations of one repository are serialized by locking its row. Also the production
 * branch, as the App last reported it.
 */
import { and, desc, eq, sql } from "drizzle-orm";
import type { Db } from "../connect.js";
import { NotFoundError } from "../errors.js";
import { rows, transaction } from "../query.js";
import { activations, repositories, versions } from "../schema.js";
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

  /**
   * The production branch the App last reported for `repo` (`repository.default_branch` of its
   * pushes), or null when it has reported none: the caller's fallback decides then.
   */
  async branch(repo: string): Promise<string | null> {
    const [row] = await this.db
      .select({ branch: repositories.productionBranch })
      .from(repositories)
      .where(eq(repositories.key, repo));
    return row?.branch ?? null;
  }

  /** Records `branch` as the production branch of a repository already registered. */
  async setBranch(repo: string, branch: string): Promise<void> {
    await this.db
      .update(repositories)
      .set({ productionBranch: branch })
      .where(
        and(
          eq(repositories.key, repo),
          sql`${repositories.productionBranch} is distinct from ${branch}`,
        ),
      );
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
