import { eq } from "drizzle-orm";
import type { Db } from "../connect.js";
import { checkRuns } from "../schema.js";

/** The GitHub check run that reports each execution. */
export class CheckRunStore {
  constructor(private readonly db: Db) {}

  async save(input: {
    executionId: string;
    repo: string;
    checkRunId: number;
    name: string;
  }): Promise<void> {
    await this.db
      .insert(checkRuns)
      .values(input)
      .onConflictDoUpdate({
        target: checkRuns.executionId,
        set: { checkRunId: input.checkRunId, name: input.name },
      });
  }

  async get(
    executionId: string,
  ): Promise<{ checkRunId: number; name: string; repo: string } | null> {
    const [r] = await this.db
      .select()
      .from(checkRuns)
      .where(eq(checkRuns.executionId, executionId));
    return r ? { checkRunId: r.checkRunId, name: r.name, repo: r.repo } : null;
  }
}
