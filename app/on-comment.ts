/**
 * `issue_comment` created on a pull request: the commands of commands.ts. The commenter needs
 * write permission; the head commit is read (pinned) once, when the comment is processed, and
 * every command runs at that commit. Each comment gets a reaction (+1: done, confused: refused
 * or failed) and one reply that links the executions or says what to do. On a fork's pull
 * request the executions are marked `fork` and their tasks get no secrets (docs/design.md section 2).
 */
import { InputFlagError, parseInputFlags } from "../core/engine/input-flags.js";
import { githubRepoKey } from "../core/version/repo-key.js";
import type { ExecutionRecord } from "../db/types.js";
import { RequestError } from "../runner/service.js";
import { executionUrl } from "./check-run-text.js";
import { type Command, HELP, parseCommands } from "./commands.js";
import {
  type AppContext,
  isBot,
  type Outcome,
  type RepositoryPayload,
  type Sender,
} from "./context.js";
import type { Octokit, RepoName } from "./github-client.js";
import { registerFromGitHub } from "./register.js";
import { ensureCheckRun, relaunchWithCheckRun, startWithCheckRun } from "./start.js";

export interface CommentPayload {
  action: string;
  issue: { number: number; pull_request?: unknown };
  comment: { id: number; body: string; user: Sender; created_at?: string };
  repository: RepositoryPayload;
  sender?: Sender;
  installation?: { id: number };
}

const WRITERS = new Set(["admin", "maintain", "write"]);

interface Pinned {
  repoKey: string;
  name: RepoName;
  octokit: Octokit;
  pr: number;
  headSha: string;
  headRef: string;
  baseSha: string;
  /** The head is a fork's (another repository, or one since deleted): no secrets. */
  fork: boolean;
  actor: string;
  /** When the comment was written: what this comment already did was done after it. */
  since: Date | null;
}

/** A command's answer: what to say, and whether it went well. */
type Answer = { ok: boolean; text: string };

export async function onComment(ctx: AppContext, p: CommentPayload): Promise<Outcome> {
  if (p.action !== "created") return `ignored: comment ${p.action}`;
  if (!p.issue.pull_request) return "ignored: not a pull request";
  if (isBot(p.sender) || isBot(p.comment.user)) return "ignored: a bot";
  const commands = parseCommands(p.comment.body);
  if (commands.length === 0) return "ignored: no command";
  const repoKey = githubRepoKey(p.repository.full_name, ctx.client.host);
  const name = ctx.client.name(repoKey);
  const octokit = await ctx.client.forRepo(repoKey, p.installation?.id);
  const actor = p.comment.user.login;
  const reply = async (ok: boolean, body: string) => {
    await octokit.rest.reactions.createForIssueComment({
      ...name,
      comment_id: p.comment.id,
      content: ok ? "+1" : "confused",
    });
    await octokit.rest.issues.createComment({ ...name, issue_number: p.issue.number, body });
  };

  const known = commands.filter((c) => c.kind !== "unknown");
  if (known.length === 0) {
    const problems = commands.map((c) =>
      c.kind === "unknown" ? `\`/${c.name}\` ${c.problem}` : "",
    );
    await reply(false, `@${actor} ${problems.join("; ")}.\n\n${HELP}`);
    return "answered: unknown command";
  }
  const { data: permission } = await octokit.rest.repos.getCollaboratorPermissionLevel({
    ...name,
    username: actor,
  });
  if (!WRITERS.has(permission.permission)) {
    await reply(
      false,
      `@${actor} sorry, Reprise commands need write permission on ${p.repository.full_name} (you have ${permission.permission}). Ask a maintainer to run it for you.`,
    );
    return `refused: ${actor} has ${permission.permission}`;
  }
  const { data: pull } = await octokit.rest.pulls.get({ ...name, pull_number: p.issue.number });
  const pinned: Pinned = {
    repoKey,
    name,
    octokit,
    pr: p.issue.number,
    headSha: pull.head.sha,
    headRef: pull.head.ref,
    baseSha: pull.base.sha,
    fork: isFork(pull),
    actor,
    since: p.comment.created_at ? new Date(p.comment.created_at) : null,
  };
  const answers: Answer[] = [];
  for (const c of commands) answers.push(await answer(ctx, pinned, c));
  const ok = answers.every((a) => a.ok);
  await reply(ok, answers.map((a) => a.text).join("\n\n"));
  return answers.map((a) => `${a.ok ? "ok" : "refused"}: ${a.text.split("\n")[0]}`).join("; ");
}

/**
 * Whether the pull request's head lives in another repository than its base: a fork, whose
 * code gets no secrets. A head repository GitHub no longer knows (a deleted fork) counts as one.
 */
function isFork(pull: {
  head: { repo: { full_name: string } | null };
  base: { repo: { full_name: string } };
}): boolean {
  const head = pull.head.repo?.full_name;
  return head === undefined || head.toLowerCase() !== pull.base.repo.full_name.toLowerCase();
}

function trigger(at: Pinned) {
  return {
    kind: "comment" as const,
    actor: at.actor,
    pr: at.pr,
    ...(at.fork ? { fork: true } : {}),
  };
}

/** Said of every execution a command starts on a fork's pull request. */
function forkNote(at: Pinned): string {
  return at.fork ? " The code comes from a fork, so its tasks run without their secrets." : "";
}

async function answer(ctx: AppContext, at: Pinned, c: Command): Promise<Answer> {
  try {
    switch (c.kind) {
      case "relaunch":
        return await relaunch(ctx, at, c);
      case "run":
        return await run(ctx, at, c);
      case "cancel":
        return await cancel(ctx, at, c);
      default:
        return { ok: false, text: `\`/${c.name}\` ${c.problem}.\n\n${HELP}` };
    }
  } catch (e) {
    if (e instanceof RequestError || e instanceof InputFlagError)
      return { ok: false, text: `\`/${c.kind}\`: ${(e as Error).message}` };
    throw e;
  }
}

/** Registers the head commit if no push did; a clear error when it cannot run. */
async function headVersion(ctx: AppContext, at: Pinned): Promise<void> {
  const reg = await registerFromGitHub(ctx.store, at.octokit, at.name, at.repoKey, {
    sha: at.headSha,
    parents: [],
    // A fork's branch is not this repository's: its name ("main", say) is not recorded.
    ref: at.fork ? null : at.headRef,
    message: null,
  });
  if (reg.kind === "absent")
    throw new RequestError(
      "not_found",
      `the head commit ${at.headSha.slice(0, 12)} has no reprise.yaml at its root: add one and push`,
    );
}

/**
 * The execution this very comment already started, when its delivery is processed again after a
 * failure (say, GitHub refused the reply): same commenter, pull request, head commit, created
 * after the comment was written. Its check run is opened if that is what failed. A later comment
 * asking the same again is newer than that execution, so it starts another.
 */
async function actedBefore(
  ctx: AppContext,
  at: Pinned,
  same: (e: ExecutionRecord) => boolean,
): Promise<ExecutionRecord | null> {
  if (!at.since) return null;
  const since = at.since.getTime();
  const recent = await ctx.store.executions.list({ repo: at.repoKey, pr: at.pr, limit: 20 });
  const done = recent.find(
    (e) =>
      e.trigger.kind === "comment" &&
      e.trigger.actor === at.actor &&
      e.sha === at.headSha &&
      e.createdAt.getTime() >= since &&
      same(e),
  );
  if (done) await ensureCheckRun(ctx, at.octokit, at.name, done, `asked by comment (${at.actor})`);
  return done ?? null;
}

function link(ctx: AppContext, e: ExecutionRecord): string {
  const url = executionUrl(ctx.publicUrl, e.id);
  return url ? `[${e.id}](${url})` : `\`${e.id}\``;
}

async function relaunch(
  ctx: AppContext,
  at: Pinned,
  c: Extract<Command, { kind: "relaunch" }>,
): Promise<Answer> {
  let parentId = c.execution;
  if (!parentId) {
    // This pull request's latest execution; before any, the latest at its base commit.
    const [latest] = await ctx.store.executions.list({ repo: at.repoKey, pr: at.pr, limit: 1 });
    const [atBase] = latest
      ? [latest]
      : await ctx.store.executions.list({ repo: at.repoKey, sha: at.baseSha, limit: 1 });
    if (!atBase)
      return {
        ok: false,
        text: "`/relaunch`: this pull request has no execution yet to relaunch: use `/run WORKFLOW`, or name one (`/relaunch EXECUTION`).",
      };
    parentId = atBase.id;
  }
  const parent = await ctx.store.executions.get(parentId);
  if (!parent || parent.repo !== at.repoKey)
    return {
      ok: false,
      text: `\`/relaunch\`: no execution \`${parentId}\` in this repository: copy its id from a check run's details.`,
    };
  await headVersion(ctx, at);
  const mode = c.recover ? "recover" : "normal";
  const exec =
    (await actedBefore(ctx, at, (e) => e.parentId === parent.id && e.mode === mode)) ??
    (await relaunchWithCheckRun(ctx, at.octokit, at.name, {
      parent: parent.id,
      sha: at.headSha,
      recover: c.recover,
      overwriteCache: c.noCache,
      // Said either way: the head of this pull request decides, not the parent's.
      trigger: { ...trigger(at), fork: at.fork },
    }));
  return {
    ok: true,
    text: `Relaunched \`${parent.workflow}\` (${link(ctx, parent)}) as ${link(ctx, exec)} at ${at.headSha.slice(0, 12)}${c.recover ? " in recover mode" : ""}${c.noCache ? " without the cache" : ""}; the check run \`reprise/${exec.workflow}\` follows it.${forkNote(at)}`,
  };
}

async function run(
  ctx: AppContext,
  at: Pinned,
  c: Extract<Command, { kind: "run" }>,
): Promise<Answer> {
  await headVersion(ctx, at);
  const version = await ctx.store.versions.get(at.repoKey, at.headSha);
  if (version && version.status === "registered" && !(c.workflow in version.workflows))
    throw new RequestError(
      "not_found",
      `no workflow "${c.workflow}" at ${at.headSha.slice(0, 12)} (its workflows: ${Object.keys(version.workflows).join(", ") || "none"})`,
    );
  const declared =
    version?.status === "registered"
      ? (await ctx.store.versions.resolveWorkflow(at.repoKey, at.headSha, c.workflow)).spec.inputs
      : {};
  const inputs = parseInputFlags(c.inputs, declared);
  const exec =
    (await actedBefore(ctx, at, (e) => e.parentId === null && e.workflow === c.workflow)) ??
    (await startWithCheckRun(ctx, at.octokit, at.name, {
      repo: at.repoKey,
      at: { sha: at.headSha },
      workflow: c.workflow,
      inputs,
      trigger: trigger(at),
    }));
  return {
    ok: true,
    text: `Started \`${c.workflow}\` as ${link(ctx, exec)} at ${at.headSha.slice(0, 12)}.${forkNote(at)}`,
  };
}

async function cancel(
  ctx: AppContext,
  at: Pinned,
  c: Extract<Command, { kind: "cancel" }>,
): Promise<Answer> {
  let id = c.execution;
  if (!id) {
    const list = await ctx.store.executions.list({ repo: at.repoKey, pr: at.pr, limit: 20 });
    const running = list.find((e) => e.state === "QUEUED" || e.state === "RUNNING");
    if (!running)
      return {
        ok: false,
        text: "`/cancel`: this pull request has no queued or running execution.",
      };
    id = running.id;
  }
  const exec = await ctx.store.executions.get(id);
  if (!exec || exec.repo !== at.repoKey)
    return { ok: false, text: `\`/cancel\`: no execution \`${id}\` in this repository.` };
  if (!(await ctx.store.executions.requestAbort(exec.id)))
    return {
      ok: false,
      text: `\`/cancel\`: ${link(ctx, exec)} has already ended (${exec.state}).`,
    };
  return {
    ok: true,
    text: `Cancelling ${link(ctx, exec)}; its check run will say when it stopped.`,
  };
}
