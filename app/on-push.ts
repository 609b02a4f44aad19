/**
 * `push` to a branch (DESIGN.md section 8): register the pushed commit, post `reprise/register`,
 * activate it on the production branch, start the workflows whose `on.push` matches.
 */
import { diffVersions } from "../../core/diff/diff-versions.js";
import { triggerMatchesBranch } from "../../core/triggers/branches.js";
import { githubRepoKey } from "../../core/version/repo-key.js";
import type { VersionRecord } from "../../db/types.js";
import { activateVersion } from "../service.js";
import { ANNOTATIONS_PER_REQUEST, registerOutput } from "./check-run-text.js";
import type { Octokit, RepoName } from "./client.js";
import type { AppContext, Outcome, RepositoryPayload, Sender } from "./context.js";
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
export const REGISTER_CHECK = "reprise/register";

/** The delivery being processed: its id, and how many times it was taken up (1 the first time). */
export interface DeliveryAttempt {
  id: string;
  attempts: number;
}

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
  const production = p.repository.default_branch ?? p.repository.master_branch ?? null;
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

/** Creates the check run with the first 50 annotations, then adds the rest 50 at a time. */
/**
 * Posts `reprise/register`, its external_id the delivery's id. A delivery taken up again (its
 * first attempt cut short after posting, by a crash or a database outage) finds the check run it
 * posted and rewrites it rather than posting a second: one read, on retries only.
 */
async function postRegisterCheck(
  octokit: Octokit,
  name: RepoName,
  version: VersionRecord,
  { conclusion, output }: ReturnType<typeof registerOutput>,
  delivery: DeliveryAttempt,
): Promise<void> {
  const all = output.annotations ?? [];
  const fields = {
    ...name,
    name: REGISTER_CHECK,
    status: "completed" as const,
    conclusion,
    completed_at: new Date().toISOString(),
    output: { ...output, annotations: all.slice(0, ANNOTATIONS_PER_REQUEST) },
    ...(delivery.id ? { external_id: delivery.id } : {}),
  };
  const posted =
    delivery.attempts > 1 && delivery.id
      ? (
          await octokit.rest.checks.listForRef({
            ...name,
            ref: version.sha,
            check_name: REGISTER_CHECK,
            filter: "all",
            per_page: 100,
          })
        ).data.check_runs.find((c) => c.external_id === delivery.id)
      : undefined;
  // Annotations add up over a check run's updates: a retry sends what the first attempt did not.
  let id: number;
  let sent: number;
  if (posted) {
    id = posted.id;
    sent = posted.output.annotations_count;
    await octokit.rest.checks.update({
      ...fields,
      check_run_id: id,
      output: { title: output.title, summary: output.summary },
    });
  } else {
    id = (await octokit.rest.checks.create({ ...fields, head_sha: version.sha })).data.id;
    sent = ANNOTATIONS_PER_REQUEST;
  }
  for (let i = sent; i < all.length; i += ANNOTATIONS_PER_REQUEST) {
    await octokit.rest.checks.update({
      ...name,
      check_run_id: id,
      output: {
        title: output.title,
        summary: output.summary,
        annotations: all.slice(i, i + ANNOTATIONS_PER_REQUEST),
      },
    });
  }
}
