/** API tokens: stored as sha256 hashes, scoped to repositories, optionally read-only. */
import { createHash, randomBytes } from "node:crypto";
import { and, desc, eq, gt, isNull, or, sql } from "drizzle-orm";
import type { Db } from "../connect.js";
import { newTokenId } from "../ids.js";
import { apiTokens } from "../schema.js";
import type { ApiToken } from "../types.js";

export function hashToken(token: string): string {
  return createHash("sha256").update(token, "utf8").digest("hex");
}

export class TokenStore {
  constructor(private readonly db: Db) {}

  /** Creates a token and returns it once, in clear; only its hash is stored. */
  async create(input: {
    repos: string[];
    readOnly: boolean;
    description?: string;
    expiresAt?: Date | null;
  }): Promise<{ token: string; record: ApiToken }> {
    if (input.repos.length === 0) throw new Error("a token needs at least one repository");
    const token = `rp_${randomBytes(24).toString("base64url")}`;
    const [row] = await this.db
      .insert(apiTokens)
      .values({
        id: newTokenId(),
        tokenHash: hashToken(token),
        repos: input.repos,
        readOnly: input.readOnly,
        description: input.description ?? "",
        expiresAt: input.expiresAt ?? null,
      })
      .returning();
    return { token, record: toToken(row as typeof apiTokens.$inferSelect) };
  }

  /** The live (not revoked, not expired) token with this clear text, or null. */
  async verify(token: string): Promise<ApiToken | null> {
    const [row] = await this.db
      .select()
      .from(apiTokens)
      .where(
        and(
          eq(apiTokens.tokenHash, hashToken(token)),
          isNull(apiTokens.revokedAt),
          or(isNull(apiTokens.expiresAt), gt(apiTokens.expiresAt, sql`now()`)),
        ),
      );
    return row ? toToken(row) : null;
  }

  /** Live tokens (not revoked, not expired), newest first; never their clear text. */
  async list(): Promise<ApiToken[]> {
    const rs = await this.db
      .select()
      .from(apiTokens)
      .where(
        and(
          isNull(apiTokens.revokedAt),
          or(isNull(apiTokens.expiresAt), gt(apiTokens.expiresAt, sql`now()`)),
        ),
      )
      .orderBy(desc(apiTokens.createdAt));
    return rs.map(toToken);
  }

  async revoke(id: string): Promise<boolean> {
    const r = await this.db
      .update(apiTokens)
      .set({ revokedAt: sql`now()` })
      .where(eq(apiTokens.id, id))
      .returning({ id: apiTokens.id });
    return r.length > 0;
  }
}

function toToken(r: typeof apiTokens.$inferSelect): ApiToken {
  return {
    id: r.id,
    repos: r.repos,
    readOnly: r.readOnly,
    description: r.description,
    createdAt: r.createdAt,
    expiresAt: r.expiresAt,
  };
}
