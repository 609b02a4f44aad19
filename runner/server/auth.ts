/**
 * Who is calling (docs/design.md section 9): a bearer API token (stored hashed, scoped to
 * repositories, optionally read-only) or a GitHub Actions OIDC token (verified against the
 * issuer's JWKS; its `repository` claim is the one repository it may act on). Webhooks carry a
 * signature instead and do not come through here.
 *
 * A workflow's token may activate production when it comes from the production branch: the
 * GitHub default branch the App recorded from the repository's pushes (the signed payload's
 * `repository.default_branch`, db/store/production.ts), else REPRISE_PRODUCTION_BRANCH, else
 * main. Read per request, so a default branch renamed on GitHub counts from its next push.
 */
import { createRemoteJWKSet, type JWTPayload, jwtVerify } from "jose";
import { githubRepoKey } from "../../core/version/repo-key.js";
import type { Store } from "../../db/store.js";
import { ApiError } from "./errors.js";
import { type Action, type OidcRule, oidcActions } from "./oidc-rules.js";

export type { Action } from "./oidc-rules.js";

export interface Principal {
  kind: "token" | "oidc" | "open";
  /** Who, for triggers and logs: the token id, the OIDC subject, or "anonymous". */
  subject: string;
  /** Repository keys it may act on; "*" for an open server. */
  repos: "*" | readonly string[];
  /** No action but `read` (the UI shows it). */
  readOnly: boolean;
  /** What it may do in its repositories: an API token all or `read`, an OIDC token by rules. */
  actions: readonly Action[];
  /** An OIDC token's `ref` and `sha` claims: what a registration it posts may record. */
  claims?: { ref: string | null; sha: string | null };
  /** An OIDC token's repository's production branch: what its `ref` must be to activate. */
  productionBranch?: string;
}

export interface OidcConfig {
  issuer: string;
  audience: string;
  /** Repository keys from the `repository` claim are `${githubHost}/OWNER/NAME`. */
  githubHost: string;
  /** REPRISE_OIDC_RULES, parsed at start (oidc-rules.ts); none: the default actions. */
  rules?: readonly OidcRule[];
  /**
   * REPRISE_PRODUCTION_BRANCH: the production branch of a repository the App has not reported
   * one for (no push registered through it yet, or no App). Default "main".
   */
  productionBranch?: string;
}

export interface AuthOptions {
  store: Store;
  oidc: OidcConfig | null;
  /** No credentials needed (REPRISE_AUTH=none, loopback only): every caller may do anything. */
  open: boolean;
}

const ALL: readonly Action[] = ["read", "start", "register", "activate", "evict"];

const OPEN: Principal = {
  kind: "open",
  subject: "anonymous",
  repos: "*",
  readOnly: false,
  actions: ALL,
};

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
        "send Authorization: Bearer <API token or OIDC token> (`reprise token create --repo OWNER/NAME` makes one; a server on a loopback address runs without credentials with REPRISE_AUTH=none)",
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
      actions: found.readOnly ? ["read"] : ALL,
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
    const productionBranch =
      (await this.opts.store.production.branch(key)) ?? cfg.productionBranch ?? "main";
    const actions = oidcActions(cfg.rules ?? [], { ...payload, repository }, productionBranch);
    const claim = (v: unknown) => (typeof v === "string" ? v : null);
    return {
      kind: "oidc",
      subject: payload.sub ?? `repo:${repository}`,
      repos: [key],
      readOnly: !actions.some((a) => a !== "read"),
      actions,
      claims: { ref: claim(payload.ref), sha: claim(payload.sha) },
      productionBranch,
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

/** 403 unless `p` may do `action` in repository `repo`. */
export function authorize(p: Principal, repo: string, action: Action): void {
  if (p.repos !== "*" && !p.repos.includes(repo))
    throw new ApiError(403, "forbidden", `this credential is not for ${repo}`);
  if (p.actions.includes(action)) return;
  if (p.readOnly) throw new ApiError(403, "forbidden", `this credential is read-only for ${repo}`);
  // From the production branch itself, only a rule can have withheld it: the message below.
  const production = p.productionBranch;
  if (
    p.kind === "oidc" &&
    action === "activate" &&
    production !== undefined &&
    p.claims?.ref !== `refs/heads/${production}`
  )
    throw new ApiError(
      403,
      "forbidden",
      `this OIDC token is for ${p.claims?.ref ?? "no ref"}: only a workflow run of ${repo}'s production branch (refs/heads/${production}) may activate. Run the workflow on ${production}, or grant activate in REPRISE_OIDC_RULES by ref, environment or workflow (e.g. "- { environment: production, allow: [read, start, register, activate] }"); the production branch is the GitHub default branch the App last saw pushed, else REPRISE_PRODUCTION_BRANCH`,
    );
  throw new ApiError(
    403,
    "forbidden",
    p.kind === "oidc"
      ? `this OIDC token may not ${action} in ${repo} (it may: ${p.actions.join(", ")}; REPRISE_OIDC_RULES grants more, by ref, environment or workflow)`
      : `this credential may not ${action} in ${repo}`,
  );
}
