/**
 * Which repositories may use a secret (docs/design.md section 2, issue 14): REPRISE_LOCAL_SECRETS (a
 * runner variable, local executor) and REPRISE_KUBE_SECRETS (a Secret's name, kubernetes
 * executor) are lists of `NAME@REPOSITORY` entries separated by commas or whitespace: one
 * repository per entry (repeat the name for several), its key as Reprise spells it
 * (core/version/repo-key.ts: `github.com/OWNER/NAME`, `HOST/OWNER/NAME` on GitHub Enterprise,
 * `file:///ABSOLUTE/PATH`), or `*` for any repository, which has to be said. The entry is split
 * at its first `@`, so a `file://` path may contain one; it cannot contain a comma or whitespace
 * (use `*` for such a repository).
 */

/** The repository part of an entry that grants a secret to every repository. */
export const ANY_REPOSITORY = "*";

/** A secret (variable or Secret name) and the repositories that may use it ("*": any). */
export interface SecretGrant {
  readonly name: string;
  readonly repos: readonly string[];
}

/** What the names of one setting are: a pattern, and what to say of a name that does not fit. */
export interface GrantRules {
  name: RegExp;
  /** e.g. "an environment variable name (letters, digits and '_', not starting with a digit)" */
  nameIs: string;
}

const GITHUB_KEY = /^[A-Za-z0-9.-]+(:[0-9]{1,5})?\/[A-Za-z0-9-]{1,39}\/[A-Za-z0-9._-]{1,100}$/;

/** A repository key as an entry names it, normalised as localRepoKey does; null if it is none. */
function repoKeyOf(text: string): string | null {
  if (text === ANY_REPOSITORY) return text;
  if (text.startsWith("file:///")) return `file://${text.slice(7).replace(/\/+$/, "") || "/"}`;
  return GITHUB_KEY.test(text) ? text : null;
}

/** Entries `NAME@REPOSITORY`, merged by name; one problem per entry that is not one. */
export function parseSecretGrants(
  value: string | undefined,
  rules: GrantRules,
): { grants: SecretGrant[]; problems: string[] } {
  const byName = new Map<string, string[]>();
  const problems: string[] = [];
  for (const entry of (value ?? "").split(/[\s,]+/)) {
    if (entry === "") continue;
    const at = entry.indexOf("@");
    const name = at === -1 ? entry : entry.slice(0, at);
    if (!rules.name.test(name)) {
      problems.push(`${JSON.stringify(name)} is not ${rules.nameIs}`);
      continue;
    }
    if (at === -1) {
      problems.push(
        `${JSON.stringify(entry)} names no repository: write ${name}@REPOSITORY for each repository that may use it (e.g. ${name}@github.com/acme/ml), or ${name}@* for any repository`,
      );
      continue;
    }
    const repo = repoKeyOf(entry.slice(at + 1));
    if (repo === null) {
      problems.push(
        `${JSON.stringify(entry)}: ${JSON.stringify(entry.slice(at + 1))} is not a repository key: write HOST/OWNER/NAME (e.g. ${name}@github.com/acme/ml), file:///ABSOLUTE/PATH, or * for any repository`,
      );
      continue;
    }
    const repos = byName.get(name) ?? [];
    if (!repos.includes(repo)) repos.push(repo);
    byName.set(name, repos);
  }
  return { grants: [...byName].map(([name, repos]) => ({ name, repos })), problems };
}

/** Names -> the repositories that may use them, for lookups. */
export function grantMap(grants: readonly SecretGrant[]): ReadonlyMap<string, readonly string[]> {
  return new Map(grants.map((g) => [g.name, g.repos]));
}

/** Whether `repo` may use the secret that `repos` (its grant, or none) allows. */
export function granted(repos: readonly string[] | undefined, repo: string): boolean {
  return repos !== undefined && (repos.includes(ANY_REPOSITORY) || repos.includes(repo));
}
