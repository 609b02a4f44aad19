/**
 * Registration of a GitHub commit (docs/design.md sections 4 and 8), from what repository.ts reads of
 * it: the recursive tree listing and the reprise.yaml blob, two read calls whatever the number
 * of tasks.
 *
 * The branch is the App's word whoever registered the commit first: a commit a client posted
 * before the push is not read again (its content was verified against the same git object ids),
 * but its branch is recorded with the App's authority (db/store/versions.ts).
 */
import type { Store } from "../db/store.js";
import type { Registrant, VersionRecord } from "../db/types.js";
import type { Octokit, RepoName } from "./github-client.js";
import { readCommit } from "./repository.js";

export interface CommitFacts {
  sha: string;
  parents: string[];
  /** The branch it was pushed to, when known. */
  ref: string | null;
  message: string | null;
}

export type GitHubRegistration =
  | { kind: "absent" }
  | { kind: "registered"; version: VersionRecord; created: boolean; identicalTo: string | null };

/** What the App records as: GitHub's word. */
export const APP_REGISTRANT: Registrant = { source: "app", actor: "app" };

/** Registers `commit` of `repoKey` unless it already is; `absent` when it has no reprise.yaml. */
export async function registerFromGitHub(
  store: Store,
  octokit: Octokit,
  name: RepoName,
  repoKey: string,
  commit: CommitFacts,
): Promise<GitHubRegistration> {
  let version = await store.versions.get(repoKey, commit.sha);
  let created = false;
  if (version) {
    if (
      commit.ref !== null &&
      (await store.versions.recordRef(repoKey, commit.sha, commit.ref, APP_REGISTRANT))
    )
      version = (await store.versions.get(repoKey, commit.sha)) ?? version;
  } else {
    const read = await readCommit(octokit, name, commit.sha);
    if (!read) return { kind: "absent" };
    const stored = await store.versions.register({
      repo: repoKey,
      sha: commit.sha,
      parents: commit.parents,
      ref: commit.ref,
      message: commit.message,
      result: read,
      by: APP_REGISTRANT,
    });
    version = stored.version;
    created = stored.created;
  }
  const identicalTo = version.specDigest
    ? await store.versions.findEquivalent(repoKey, version.specDigest, version.sha)
    : null;
  return { kind: "registered", version, created, identicalTo };
}
