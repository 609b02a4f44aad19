/**
 * What a GitHub Actions OIDC token may do (REPRISE_OIDC_RULES). Without rules, a workflow's token
 * may read, start (and abort, relaunch, upload inputs) and register in its own repository, and
 * activate production only when its `ref` is the repository's production branch
 * (`refs/heads/<branch>`: the GitHub default branch the App recorded, else
 * REPRISE_PRODUCTION_BRANCH, else main); never evict the cache. A rules file (YAML or JSON) lists
 * rules; the first rule whose every given field matches the token's claims decides its actions
 * (the production branch then gets no more than the rule says):
 *
 *   rules:
 *     - { repository: acme/ml, ref: refs/heads/main, allow: [read, start, register, activate] }
 *     - { environment: production, allow: [read, start, register, activate] }
 *     - { ref: "refs/pull/**", allow: [read] }
 *
 * `repository`, `ref` and `workflow` (matched against `job_workflow_ref`, else `workflow_ref`)
 * are globs; `environment` and `event` (`event_name`) are exact. No rule matches: the default.
 */
import { readFileSync } from "node:fs";
import picomatch from "picomatch";
import { parseDocument } from "yaml";
import { z } from "zod";

export const ACTIONS = ["read", "start", "register", "activate", "evict"] as const;
export type Action = (typeof ACTIONS)[number];

/** A workflow's token without a matching rule. */
export const OIDC_DEFAULT: readonly Action[] = ["read", "start", "register"];
/** A workflow's token of the production branch without a matching rule. */
export const OIDC_PRODUCTION_DEFAULT: readonly Action[] = [...OIDC_DEFAULT, "activate"];

const Rule = z
  .object({
    repository: z.string().min(1).optional(),
    ref: z.string().min(1).optional(),
    environment: z.string().min(1).optional(),
    workflow: z.string().min(1).optional(),
    event: z.string().min(1).optional(),
    allow: z.array(z.enum(ACTIONS)),
  })
  .strict();
const RulesFile = z.object({ rules: z.array(Rule) }).strict();
export type OidcRule = z.infer<typeof Rule>;

export interface OidcClaims {
  repository: string;
  ref?: unknown;
  environment?: unknown;
  job_workflow_ref?: unknown;
  workflow_ref?: unknown;
  event_name?: unknown;
}

/** The rules of the file at `path`; throws with the line to fix. */
export function loadOidcRules(path: string): OidcRule[] {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new Error(`REPRISE_OIDC_RULES: cannot read ${path}: ${(e as Error).message}`);
  }
  return parseOidcRules(text, path);
}

export function parseOidcRules(text: string, where = "REPRISE_OIDC_RULES"): OidcRule[] {
  const doc = parseDocument(text, { prettyErrors: false });
  const lineOf = (offset: number | undefined) =>
    offset === undefined ? 1 : text.slice(0, offset).split("\n").length;
  if (doc.errors.length > 0) {
    const err = doc.errors[0];
    throw new Error(`${where}:${lineOf(err?.pos[0])}: ${err?.message.split("\n")[0]}`);
  }
  const parsed = RulesFile.safeParse(doc.toJS());
  if (parsed.success) return parsed.data.rules;
  const issue = parsed.error.issues[0];
  const path = issue?.path ?? [];
  // The line of the deepest node the issue's path still names.
  let line = 1;
  for (let i = path.length; i >= 0; i--) {
    const node = doc.getIn(path.slice(0, i) as Array<string | number>, true) as
      | { range?: [number, number, number] }
      | undefined;
    if (node?.range) {
      line = lineOf(node.range[0]);
      break;
    }
  }
  const at = path.length > 0 ? `${path.join(".")}: ` : "";
  throw new Error(
    `${where}:${line}: ${at}${issue?.message ?? "invalid"} (expected rules: [{ repository?, ref?, environment?, workflow?, event?, allow: [${ACTIONS.join(", ")}] }])`,
  );
}

/**
 * The actions a token with `claims` gets: the first matching rule's, else the default, with
 * `activate` when its `ref` is `refs/heads/<productionBranch>`.
 */
export function oidcActions(
  rules: readonly OidcRule[],
  claims: OidcClaims,
  productionBranch: string,
): readonly Action[] {
  const str = (v: unknown) => (typeof v === "string" ? v : undefined);
  const glob = (pattern: string | undefined, value: string | undefined) =>
    pattern === undefined || (value !== undefined && picomatch.isMatch(value, pattern));
  const workflow = str(claims.job_workflow_ref) ?? str(claims.workflow_ref);
  for (const r of rules) {
    if (!glob(r.repository, claims.repository)) continue;
    if (!glob(r.ref, str(claims.ref))) continue;
    if (!glob(r.workflow, workflow)) continue;
    if (r.environment !== undefined && r.environment !== str(claims.environment)) continue;
    if (r.event !== undefined && r.event !== str(claims.event_name)) continue;
    return r.allow;
  }
  return str(claims.ref) === `refs/heads/${productionBranch}`
    ? OIDC_PRODUCTION_DEFAULT
    : OIDC_DEFAULT;
}
