/**
 * `push` to a branch (docs/design.md section 8): register the pushed commit (or record the branch of
 * one a client registered first), remember the repository's default branch as its production
 * branch, post `reprise/register`, activate it on the production branch, start the workflows
 * whose `on.push` matches.
 */
import { diffVersions } from "../core/diff/diff-versions.js";
import { triggerMatchesBranch } from "../core/triggers/branches.js";
import { githubRepoKey } from "../core/version/repo-key.js";
import type { VersionRecord } from "../db/types.js";
import { activateVersion } from "../runner/service.js";
import { registerOutput } from "./check-run-text.js";
import { postRegisterCheck } from "./checks.js";
import type { AppContext, DeliveryAttempt, Outcome, RepositoryPayload, Sender } from "./context.js";
import { registerFromGitHub } from "./register.js";
import { startOnce } from "./start.js";

export interface PushPayload {
  ref: string;
  before: string;
  after: string;
  deleted?: boolean;
  commits?: Array<{ id: string }>;
  head_commit?: { id: string; message?: string } | null;
  repository: RepositoryPayload;
  pusher?: { name?: string };
  sender?: Sender;
  installation?: { id: number };
}

const ZERO = /^0+$/;

export async function onPush(
  ctx: AppContext,
  p: PushPayload,
  delivery: DeliveryAttempt = { id: "", attempts: 1 },
): Promise<Outcome> {
  if (!p.ref.startsWith("refs/heads/")) return "ignored: not a branch";
  if (p.deleted || ZERO.test(p.after)) return "ignored: branch deleted";
  const branch = p.ref.slice("refs/heads/".length);
  const repoKey = githubRepoKey(p.repository.full_name, ctx.client.host);
  const name = ctx.client.name(repoKey);
  const octokit = await ctx.client.forRepo(repoKey, p.installation?.id);
  const before = p.before && !ZERO.test(p.before) ? p.before : null;
  // The push payload lists the pushed commits oldest first; the one before the head is its
  // parent. A merge commit's other parents are not in the payload (reading them costs a call).
  const commits = p.commits ?? [];
  const parent = commits.length >= 2 ? (commits[commits.length - 2]?.id ?? null) : before;
  const reg = await registerFromGitHub(ctx.store, octokit, name, repoKey, {
    sha: p.after,
    parents: parent ? [parent] : [],
    ref: branch,
    message: p.head_commit?.message ?? null,
  });
  if (reg.kind === "absent") return "no reprise.yaml";
  const { version, identicalTo } = reg;
  // What a workflow run's OIDC token must come from to activate (runner/server/auth.ts).
  const production = p.repository.default_branch ?? p.repository.master_branch ?? null;
  if (production) await ctx.store.production.setBranch(repoKey, production);

  const previous = await previousHead(ctx, repoKey, branch, [before, parent], version.sha);
  const diff =
    version.status === "registered"
      ? diffVersions(previous ? summary(previous) : null, summary(version))
      : null;
  await postRegisterCheck(
    octokit,
    name,
    version,
    registerOutput(version, diff, previous?.sha ?? null, identicalTo),
    delivery,
  );
  if (version.status !== "registered") return "invalid reprise.yaml";

  const actor = p.sender?.login ?? p.pusher?.name ?? "unknown";
  let activated = "";
  if (branch === production) {
    const { activation, changed } = await activateVersion(ctx.store, {
      repo: repoKey,
      sha: version.sha,
      actor,
      otherwise: `push to ${branch}`,
    });
    if (changed) activated = `; activated (${activation.reason})`;
  }

  const started: string[] = [];
  for (const workflow of Object.keys(version.workflows).sort()) {
    const wf = await ctx.store.versions.resolveWorkflow(repoKey, version.sha, workflow);
    if (!triggerMatchesBranch(wf.spec.on.push, branch)) continue;
    const { exec, started: fresh } = await startOnce(ctx, octokit, name, {
      repo: repoKey,
      at: { sha: version.sha },
      workflow,
      inputs: wf.spec.on.push?.inputs ?? {},
      trigger: { kind: "push", actor },
    });
    if (fresh) started.push(exec.id);
  }
  return `registered ${version.sha}${activated}${started.length ? `; started ${started.join(", ")}` : ""}`;
}

/**
 * What the check run compares with: the branch's head before this push (or the pushed commit's
 * parent) if registered, else the newest version from the branch, else (a new branch) the
 * production version.
 */
async function previousHead(
  ctx: AppContext,
  repo: string,
  branch: string,
  candidates: Array<string | null>,
  sha: string,
): Promise<VersionRecord | null> {
  for (const c of candidates) {
    if (!c || c === sha) continue;
    const v = await ctx.store.versions.get(repo, c);
    if (v?.status === "registered") return v;
  }
  const latest = await ctx.store.versions.latestOnBranch(repo, branch);
  if (latest && latest.sha !== sha) return latest;
  const production = await ctx.store.production.current(repo);
  if (!production || production.sha === sha) return null;
  return ctx.store.versions.get(repo, production.sha);
}

function summary(v: VersionRecord) {
  return { specDigest: v.specDigest ?? "", tasks: v.tasks, workflows: v.workflows };
}
