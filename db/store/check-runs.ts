import { eq, sql } from "drizzle-orm";
import type { Db } from "../connect.js";
import { rows } from "../query.js";
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

  /**
   * Executions that have a check run and have ended, but whose final report is not in the
   * delivery inbox yet (as the delivery `${reportPrefix}<execution id>`), oldest first: what the
   * GitHub App still has to complete.
   */
  async endedUnreported(reportPrefix: string, limit = 100): Promise<string[]> {
    const rs = await rows<{ id: string }>(
      this.db,
      sql`select c.execution_id as id
            from check_runs c join executions e on e.id = c.execution_id
           where e.state in ('SUCCEEDED', 'FAILED', 'ABORTED')
             and not exists (select 1 from deliveries d where d.id = ${reportPrefix} || c.execution_id)
           order by c.created_at
           limit ${limit}`,
    );
    return rs.map((r) => r.id);
  }
}
