/**
 * Who is calling (DESIGN.md section 9): a bearer API token (stored hashed, scoped to
 * repositories, optionally read-only) or a GitHub Actions OIDC token (verified against the
 * issuer's JWKS; its `repository` claim is the one repository it may act on). Webhooks carry a
 * signature instead and do not come through here.
 */
import { createRemoteJWKSet, type JWTPayload, jwtVerify } from "jose";
import { githubRepoKey } from "../../core/version/repo-key.js";
import type { Store } from "../../db/store.js";
import { ApiError } from "./errors.js";

export interface Principal {
  kind: "token" | "oidc" | "open";
  /** Who, for triggers and logs: the token id, the OIDC subject, or "anonymous". */
  subject: string;
  /** Repository keys it may act on; "*" for an open server. */
  repos: "*" | readonly string[];
  readOnly: boolean;
}

export interface OidcConfig {
  issuer: string;
  audience: string;
  /** Repository keys from the `repository` claim are `${githubHost}/OWNER/NAME`. */
  githubHost: string;
}

export interface AuthOptions {
  store: Store;
  oidc: OidcConfig | null;
  /** No credentials needed (loopback, nothing configured): every caller may do anything. */
  open: boolean;
}

const OPEN: Principal = { kind: "open", subject: "anonymous", repos: "*", readOnly: false };

export class Authenticator {
  private jwks: ReturnType<typeof createRemoteJWKSet> | null = null;

  constructor(private readonly opts: AuthOptions) {}

  get open(): boolean {
    return this.opts.open;
  }

  /** The caller of a request with this Authorization header; 401 when it proves nothing. */
  async principal(authorization: string | undefined): Promise<Principal> {
    if (!authorization) {
      if (this.opts.open) return OPEN;
      throw new ApiError(
        401,
        "unauthorized",
        "send Authorization: Bearer <API token or OIDC token>",
      );
    }
    const m = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
    if (!m)
      throw new ApiError(401, "unauthorized", "the Authorization header must be Bearer <token>");
    const token = m[1] as string;
    // A JWT has three dot-separated parts; API tokens are rp_<base64url>.
    if (token.split(".").length === 3) return this.oidc(token);
    const found = await this.opts.store.tokens.verify(token);
    if (!found) throw new ApiError(401, "unauthorized", "unknown, revoked or expired API token");
    return {
      kind: "token",
      subject: `token:${found.id}`,
      repos: found.repos,
      readOnly: found.readOnly,
    };
  }

  private async oidc(token: string): Promise<Principal> {
    const cfg = this.opts.oidc;
    if (!cfg)
      throw new ApiError(
        401,
        "unauthorized",
        "OIDC tokens are not accepted here: the server has no REPRISE_OIDC_ISSUER",
      );
    let payload: JWTPayload;
    try {
      this.jwks ??= createRemoteJWKSet(await jwksUri(cfg.issuer));
      ({ payload } = await jwtVerify(token, this.jwks, {
        issuer: cfg.issuer,
        audience: cfg.audience,
      }));
    } catch (e) {
      throw new ApiError(401, "unauthorized", `OIDC token refused: ${(e as Error).message}`);
    }
    const repository = payload.repository;
    if (typeof repository !== "string")
      throw new ApiError(401, "unauthorized", "OIDC token has no repository claim");
    let key: string;
    try {
      key = githubRepoKey(repository, cfg.githubHost);
    } catch {
      throw new ApiError(
        401,
        "unauthorized",
        `OIDC repository claim "${repository}" is not OWNER/NAME`,
      );
    }
    return {
      kind: "oidc",
      subject: payload.sub ?? `repo:${repository}`,
      repos: [key],
      readOnly: false,
    };
  }
}

/** The issuer's JWKS address, from its discovery document (GitHub: /.well-known/jwks). */
async function jwksUri(issuer: string): Promise<URL> {
  const url = `${issuer.replace(/\/+$/, "")}/.well-known/openid-configuration`;
  const res = await fetch(url);
  if (!res.ok) throw new Error(`${url} answered ${res.status}`);
  const doc = (await res.json()) as { jwks_uri?: unknown };
  if (typeof doc.jwks_uri !== "string") throw new Error(`${url} has no jwks_uri`);
  return new URL(doc.jwks_uri);
}

/** 403 unless `p` may read (or, with `write`, change) repository `repo`. */
export function authorize(p: Principal, repo: string, write: boolean): void {
  if (p.repos !== "*" && !p.repos.includes(repo))
    throw new ApiError(403, "forbidden", `this credential is not for ${repo}`);
  if (write && p.readOnly)
    throw new ApiError(403, "forbidden", `this credential is read-only for ${repo}`);
}
