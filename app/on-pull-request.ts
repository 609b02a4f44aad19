/**
 * `pull_request` opened / synchronize / reopened: start the workflows whose `on.pull_request`
 * matches the base branch, at the head commit. Not for forks: their code runs only when someone
 * with write permission asks (`/relaunch`, `/run`).
 */
import { triggerMatchesBranch } from "../core/triggers/branches.js";
import { githubRepoKey } from "../core/version/repo-key.js";
import type { AppContext, Outcome, RepositoryPayload, Sender } from "./context.js";
import { registerFromGitHub } from "./register.js";
import { startOnce } from "./start.js";

export interface PullRequestPayload {
  action: string;
  number: number;
  pull_request: {
    head: { sha: string; ref: string; repo: { full_name: string } | null };
    base: { ref: string; repo: { full_name: string } };
  };
  repository: RepositoryPayload;
  sender?: Sender;
  installation?: { id: number };
}

const ACTIONS = new Set(["opened", "synchronize", "reopened"]);

export async function onPullRequest(ctx: AppContext, p: PullRequestPayload): Promise<Outcome> {
  if (!ACTIONS.has(p.action)) return `ignored: pull_request ${p.action}`;
  const pr = p.pull_request;
  if (pr.head.repo?.full_name !== p.repository.full_name)
    return "ignored: a fork's pull request runs on a command from someone with write permission";
  const repoKey = githubRepoKey(p.repository.full_name, ctx.client.host);
  const name = ctx.client.name(repoKey);
  const octokit = await ctx.client.forRepo(repoKey, p.installation?.id);
  const reg = await registerFromGitHub(ctx.store, octokit, name, repoKey, {
    sha: pr.head.sha,
    parents: [],
    ref: pr.head.ref,
    message: null,
  });
  if (reg.kind === "absent") return "no reprise.yaml";
  if (reg.version.status !== "registered") return "invalid reprise.yaml";
  const actor = p.sender?.login ?? "unknown";
  const started: string[] = [];
  for (const workflow of Object.keys(reg.version.workflows).sort()) {
    const wf = await ctx.store.versions.resolveWorkflow(repoKey, pr.head.sha, workflow);
    if (!triggerMatchesBranch(wf.spec.on.pullRequest, pr.base.ref)) continue;
    const { exec, started: fresh } = await startOnce(ctx, octokit, name, {
      repo: repoKey,
      at: { sha: pr.head.sha },
      workflow,
      inputs: wf.spec.on.pullRequest?.inputs ?? {},
      trigger: { kind: "pull_request", actor, pr: p.number },
    });
    if (fresh) started.push(exec.id);
  }
  return started.length ? `started ${started.join(", ")}` : "no workflow matches";
}
