/**
 * Registering a version (docs/design.md section 4): read the spec and tree listing at a commit, build
 * the version in core (on a spec worker thread: spec-worker.ts), store it. Registering a SHA twice is a no-op; an invalid spec is recorded
 * as a failed registration with its errors.
 */

import { SPEC_FILE } from "../core/spec/diagnostics.js";
import type { BuildResult } from "../core/version/build-version.js";
import { localRepoKey } from "../core/version/repo-key.js";
import type { Store } from "../db/store.js";
import type { Registrant, VersionRecord } from "../db/types.js";
import { commitInfo, snapshotAt } from "./sources/local-git.js";
import { specWorkers } from "./spec-worker.js";

export interface Registered {
  version: VersionRecord;
  created: boolean;
  /** An earlier version with the same spec digest, when this one is equivalent to it. */
  identicalTo: string | null;
}

export type Checked = Registered | { invalid: Extract<BuildResult, { ok: false }>; sha: string };

/**
 * For the CLI (issue 4): an invalid spec is reported and nothing is registered, so fixing the
 * file and amending the commit leaves no trace. A valid one is registered as usual.
 */
export async function registerLocalCommitIfValid(
  store: Store,
  root: string,
  ref: string,
): Promise<Checked> {
  return registerAt(store, root, ref, false);
}

export async function registerLocalCommit(
  store: Store,
  root: string,
  ref: string,
): Promise<Registered> {
  return registerAt(store, root, ref, true) as Promise<Registered>;
}

/** Reads the commit once, builds its version once, and stores it (an invalid one only if asked). */
async function registerAt(
  store: Store,
  root: string,
  ref: string,
  recordInvalid: boolean,
): Promise<Checked> {
  const repo = localRepoKey(root);
  const info = await commitInfo(root, ref);
  const existing = await store.versions.get(repo, info.sha);
  if (existing) {
    // Registered already (from another branch, say): this branch is recorded all the same.
    const moved =
      info.branch !== null && (await store.versions.recordRef(repo, info.sha, info.branch, GIT));
    const version = (moved && (await store.versions.get(repo, info.sha))) || existing;
    return { version, created: false, identicalTo: await equivalent(store, version) };
  }
  const result = await buildAt(root, info.sha);
  if (!result.ok && !recordInvalid) return { invalid: result, sha: info.sha };
  const { version, created } = await store.versions.register({
    repo,
    sha: info.sha,
    parents: info.parents,
    ref: info.branch,
    message: info.subject,
    result,
    by: GIT,
  });
  return { version, created, identicalTo: await equivalent(store, version) };
}

/** The CLI read the local repository's own git: the branch is git's word, not a claim. */
const GIT: Registrant = { source: "git", actor: "cli" };

async function buildAt(root: string, sha: string): Promise<BuildResult> {
  const snap = await snapshotAt(root, sha);
  if (snap.spec !== null) return specWorkers().build(snap.spec, snap.tree);
  const message = `no ${SPEC_FILE} at the root of ${sha.slice(0, 12)}`;
  return {
    ok: false,
    warnings: [],
    errors: [
      { severity: "error", code: "E_REQUIRED", message, line: 1, col: 1, path: "(document)" },
    ],
  };
}

async function equivalent(store: Store, v: VersionRecord): Promise<string | null> {
  return v.specDigest ? store.versions.findEquivalent(v.repo, v.specDigest, v.sha) : null;
}
