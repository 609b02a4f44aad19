/**
 * The GitHub Action (docs/design.md section 8): register the commit if the server lacks it, start the
 * workflow (or relaunch an execution), follow it, and report it as the check run
 * `reprise/<workflow>` with the same rendering as the GitHub App. `main` is what tests call;
 * run.ts only catches and calls setFailed.
 */
import * as core from "@actions/core";
import { Octokit } from "@octokit/rest";
import { parse as parseYaml } from "yaml";
import { resolveSha } from "../../client/checkout.js";
import { ApiClient, ApiClientError } from "../../client/client.js";
import { followExecution } from "../../client/follow.js";
import { InvalidSpecError, ensureRegistered as register } from "../../client/register.js";
import { executionOutput } from "../../core/report/check-run.js";
import { type ExecutionDocument, summaryLines } from "../../core/report/document.js";
import { SPEC_FILE } from "../../core/spec/diagnostics.js";
import { githubRepoKey } from "../../core/version/repo-key.js";

export interface ActionInputs {
  server: string;
  workflow: string;
  inputs: string;
  ref: string;
  wait: boolean;
  timeoutSeconds: number | null;
  apiToken: string;
  relaunchOf: string;
  recover: boolean;
  overwriteCache: boolean;
  githubToken: string;
}

/** What the action does to the world besides HTTP: the runner's logging, outputs, state, summary. */
export interface ActionDeps {
  info(message: string): void;
  warning(message: string): void;
  /** An error annotation (on a file line when given). */
  error(message: string, where?: { file: string; line: number; col?: number }): void;
  setOutput(name: string, value: string): void;
  saveState(name: string, value: string): void;
  getState(name: string): string;
  summary(markdown: string): Promise<void>;
  /** The job's OIDC token for this audience (ACTIONS_ID_TOKEN_REQUEST_URL). */
  idToken(audience: string): Promise<string>;
  /** Between polls; tests shorten it. */
  pollMs?: number;
}

export interface ActionResult {
  executionId: string;
  status: string;
  outputs: Record<string, unknown>;
  url: string;
}

export function readInputs(get: (name: string) => string): ActionInputs {
  const bool = (name: string, dflt: boolean) => {
    const v = get(name).trim().toLowerCase();
    if (v === "") return dflt;
    if (v === "true") return true;
    if (v === "false") return false;
    throw new Error(`input ${name}: "${v}" is not true or false`);
  };
  const timeout = get("timeout").trim();
  if (timeout !== "" && !/^\d+$/.test(timeout))
    throw new Error(`input timeout: "${timeout}" is not a whole number of seconds`);
  return {
    server: get("server").trim(),
    workflow: get("workflow").trim(),
    inputs: get("inputs"),
    ref: get("ref").trim(),
    wait: bool("wait", true),
    timeoutSeconds: timeout === "" ? null : Number(timeout),
    apiToken: get("api-token").trim(),
    relaunchOf: get("relaunch-of").trim(),
    recover: bool("recover", false),
    overwriteCache: bool("overwrite-cache", false),
    githubToken: get("github-token").trim(),
  };
}

export function coreDeps(): ActionDeps {
  return {
    info: core.info,
    warning: core.warning,
    error: (message, where) =>
      core.error(
        message,
        where
          ? {
              file: where.file,
              startLine: where.line,
              ...(where.col ? { startColumn: where.col } : {}),
            }
          : {},
      ),
    setOutput: core.setOutput,
    saveState: core.saveState,
    getState: core.getState,
    summary: async (markdown) => {
      await core.summary.addRaw(markdown, true).write();
    },
    idToken: (audience) => core.getIDToken(audience),
  };
}

interface Context {
  client: ApiClient;
  repo: string;
  server: string;
}

function context(
  inputs: ActionInputs,
  env: NodeJS.ProcessEnv | Record<string, string | undefined>,
  deps: ActionDeps,
): Context {
  if (!/^https?:\/\/\S+$/.test(inputs.server))
    throw new Error(`input server: "${inputs.server}" is not an http(s) URL`);
  const server = inputs.server.replace(/\/+$/, "");
  const repository = env.GITHUB_REPOSITORY;
  if (!repository)
    throw new Error("GITHUB_REPOSITORY is not set: run this in a GitHub Actions job");
  const host = new URL(env.GITHUB_SERVER_URL ?? "https://github.com").host;
  let oidc: string | null = null;
  const token = inputs.apiToken
    ? inputs.apiToken
    : async () => {
        // One token for the whole step; it is valid for several minutes.
        oidc ??= await deps.idToken(server).catch((e: Error) => {
          throw new Error(
            `no GitHub OIDC token (${e.message}): give the job \`permissions: { id-token: write }\`, or pass api-token`,
          );
        });
        return oidc;
      };
  return {
    client: new ApiClient({ server, token }),
    repo: githubRepoKey(repository, host),
    server,
  };
}

export async function main(args: {
  inputs: ActionInputs;
  env: NodeJS.ProcessEnv | Record<string, string | undefined>;
  deps: ActionDeps;
}): Promise<ActionResult> {
  const { inputs, env, deps } = args;
  if (!inputs.workflow && !inputs.relaunchOf)
    throw new Error("give the input workflow (or relaunch-of, to relaunch an execution)");
  const ctx = context(inputs, env, deps);
  const workspace = env.GITHUB_WORKSPACE ?? process.cwd();
  const given = parseInputs(inputs.inputs);
  const sha = inputs.ref
    ? await resolveSha(workspace, inputs.ref)
    : (env.GITHUB_SHA ?? (await resolveSha(workspace, "HEAD")));

  const doc = await explain(async () => {
    await ensureRegistered(ctx, workspace, sha, env, deps);
    if (inputs.relaunchOf)
      return ctx.client.relaunch(inputs.relaunchOf, {
        sha,
        recover: inputs.recover,
        overwriteCache: inputs.overwriteCache,
      });
    const pr = pullRequest(env);
    return ctx.client.start(ctx.repo, {
      workflow: inputs.workflow,
      sha,
      inputs: given,
      overwriteCache: inputs.overwriteCache,
      ...(pr ? { pr } : {}),
    });
  });
  deps.saveState(STATE.execution, doc.id);
  const url = `${ctx.server}/executions/${doc.id}`;
  deps.info(`execution ${doc.id} of ${doc.workflow} at ${sha.slice(0, 12)}: ${url}`);
  deps.setOutput("execution-id", doc.id);
  deps.setOutput("url", url);

  const checks = checkRuns(inputs, env, deps);
  const checkId = await checks.start(doc, sha, url, inputs.wait);
  if (checkId !== null) deps.saveState(STATE.checkRun, String(checkId));
  if (!inputs.wait) {
    // Handed off: the execution outlives the step, and a later cancellation of the job leaves it.
    deps.saveState(STATE.settled, "detached");
    deps.setOutput("status", doc.status);
    deps.setOutput("outputs", JSON.stringify(doc.outputs ?? {}));
    return { executionId: doc.id, status: doc.status, outputs: doc.outputs ?? {}, url };
  }

  const done = await follow(ctx, doc, inputs.timeoutSeconds, deps);
  const failed = await report(ctx, checks, checkId, done, deps);
  // Told: a cancellation from here on (a later step's) leaves the execution and its check run.
  deps.saveState(STATE.settled, done.status);
  deps.setOutput("status", done.status);
  deps.setOutput("outputs", JSON.stringify(done.outputs ?? {}));
  if (done.status !== "SUCCEEDED") {
    const why = failed
      ? `node "${failed.id}" (task ${failed.task}) failed: ${failed.error?.message.split("\n")[0] ?? ""}`
      : (done.error?.message ?? done.status.toLowerCase());
    deps.error(`reprise/${done.workflow} ${done.status}: ${why}`);
    throw new Error(`execution ${done.id} ${done.status}: ${why} (${url})`);
  }
  return { executionId: done.id, status: done.status, outputs: done.outputs ?? {}, url };
}

/**
 * What the main step leaves for the post step (core.saveState; the runner hands it over as
 * STATE_*): the execution it started, its check run, and whether it let go of the execution
 * (followed to its end, or `wait: false`), after which a cancelled job leaves it alone.
 */
const STATE = { execution: "execution", checkRun: "check-run", settled: "settled" } as const;

/** How long the post step follows an aborted execution to its end, for the check run. */
const POST_FOLLOW_MS = 60_000;

/**
 * The post step (action.yml `post`, `post-if: cancelled()`): the runner killed the main step while
 * it followed the execution, so abort that execution, follow it to ABORTED (its runner kills the
 * task), and complete the check run the main step left in progress. Nothing to do when the main
 * step started no execution or had let go of it.
 */
export async function abortStarted(args: {
  inputs: ActionInputs;
  env: NodeJS.ProcessEnv | Record<string, string | undefined>;
  deps: ActionDeps;
}): Promise<void> {
  const { inputs, env, deps } = args;
  const id = deps.getState(STATE.execution);
  if (!id || deps.getState(STATE.settled)) return;
  const ctx = context(inputs, env, deps);
  let doc: ExecutionDocument;
  try {
    doc = await ctx.client.abort(id);
    deps.info(`the job was cancelled: asked execution ${id} to stop`);
  } catch (e) {
    // 409: it had finished, or is stopping already; either way it is not ours to change.
    if (!(e instanceof ApiClientError && e.status === 409)) throw e;
    doc = await ctx.client.execution(id);
    deps.info(`the job was cancelled: execution ${id} is ${doc.status} already`);
  }
  const followed = await followExecution(ctx.client, doc, {
    intervalMs: deps.pollMs ?? 2_000,
    timeoutMs: POST_FOLLOW_MS,
  });
  doc = followed.doc;
  const checkRun = deps.getState(STATE.checkRun);
  const checks = checkRun ? checkRuns(inputs, env, deps) : null;
  if (followed.ended === "finished") {
    deps.info(`execution ${id} ${doc.status}`);
    if (checks) await report(ctx, checks, Number(checkRun), doc, deps);
    return;
  }
  deps.warning(
    `execution ${id} is still ${doc.status} ${POST_FOLLOW_MS / 1000} s after the abort: its runner will stop it`,
  );
  await checks?.complete(Number(checkRun), {
    conclusion: "cancelled",
    output: {
      title: "cancelled",
      summary: `The job was cancelled; execution [${id}](${ctx.server}/executions/${id}) was asked to stop (${doc.status} when the job ended).`,
    },
  });
}

/** The end of an execution, told: check run completed, job summary written; the failed node. */
async function report(
  ctx: Context,
  checks: ReturnType<typeof checkRuns>,
  checkId: number | null,
  done: ExecutionDocument,
  deps: ActionDeps,
): Promise<ExecutionDocument["nodes"][number] | undefined> {
  const failed = done.nodes.find((n) => n.status === "FAILED");
  const log = failed
    ? await ctx.client.logTail(done.id, failed.id, 16 * 1024).catch(() => null)
    : null;
  const rendered = executionOutput(
    done,
    failed && log ? { node: failed.id, log } : null,
    ctx.server,
  );
  await checks.complete(checkId, rendered);
  await deps
    .summary(
      `## reprise/${done.workflow}: ${rendered.output.title}\n\n${rendered.output.summary}\n`,
    )
    .catch((e: Error) => deps.warning(`could not write the job summary: ${e.message}`));
  return failed;
}

/** The server's refusals, as messages that say what to do. */
async function explain<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (!(e instanceof ApiClientError)) throw e;
    if (e.status === 0) throw new Error(e.message);
    if (e.status === 401)
      throw new Error(`the Reprise server refused the credential: ${e.message}`);
    if (e.status === 403) throw new Error(`the Reprise server refused: ${e.message}`);
    throw new Error(`the Reprise server said ${e.status} ${e.code}: ${e.message}`);
  }
}

/** Registers the commit from the checkout when the server has no version of it (no App). */
async function ensureRegistered(
  ctx: Context,
  workspace: string,
  sha: string,
  env: NodeJS.ProcessEnv | Record<string, string | undefined>,
  deps: ActionDeps,
): Promise<void> {
  try {
    // The branch is recorded only as GitHub's OIDC claims state it: this run's branch, at its commit.
    const branch = env.GITHUB_REF?.startsWith("refs/heads/")
      ? env.GITHUB_REF.slice("refs/heads/".length)
      : null;
    const ref = branch !== null && env.GITHUB_SHA === sha ? branch : null;
    const r = await register(ctx.client, ctx.repo, workspace, sha, ref);
    if (r === "registered") deps.info(`registered ${sha.slice(0, 12)} from the checkout`);
  } catch (e) {
    if (!(e instanceof InvalidSpecError)) throw e;
    for (const d of e.diagnostics)
      deps.error(`${d.code} ${d.message}`, { file: SPEC_FILE, line: d.line, col: d.col });
    throw new Error(e.message);
  }
}

/**
 * Follows the execution to its end (client/follow.ts), printing each node's transitions; network
 * errors are retried by the client. Past the `timeout` input it asks the execution to stop.
 */
async function follow(
  ctx: Context,
  first: ExecutionDocument,
  timeoutSeconds: number | null,
  deps: ActionDeps,
): Promise<ExecutionDocument> {
  const { doc, ended } = await followExecution(ctx.client, first, {
    intervalMs: deps.pollMs ?? 2_000,
    timeoutMs: timeoutSeconds === null ? null : timeoutSeconds * 1000,
    onUpdate: (_, changed) => {
      for (const n of changed) {
        const how =
          n.cache === "HIT" || n.cache === "RECOVERED"
            ? `${n.cache === "HIT" ? "cached" : "recovered"} from ${n.source?.execution}/${n.source?.node}`
            : n.status === "FAILED"
              ? `failed: ${n.error?.message.split("\n")[0] ?? ""}`
              : n.status.toLowerCase();
        deps.info(`  ${n.id}: ${how}${n.attempts > 1 ? ` (attempt ${n.attempts})` : ""}`);
      }
    },
  });
  if (ended !== "finished") {
    await ctx.client.abort(doc.id).catch(() => undefined);
    throw new Error(
      `execution ${doc.id} still ${doc.status} after ${timeoutSeconds} s (input timeout): asked it to stop`,
    );
  }
  for (const line of summaryLines(doc)) deps.info(line);
  return doc;
}

function parseInputs(text: string): Record<string, unknown> {
  if (text.trim() === "") return {};
  let value: unknown;
  try {
    value = parseYaml(text);
  } catch (e) {
    throw new Error(`input inputs: not YAML or JSON: ${(e as Error).message}`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value))
    throw new Error(
      "input inputs: must be a mapping of input names to values, e.g. `dataset: s3://x`",
    );
  return value as Record<string, unknown>;
}

/** The pull request number when the workflow runs for one. */
function pullRequest(env: NodeJS.ProcessEnv | Record<string, string | undefined>): number | null {
  const m = /^refs\/pull\/(\d+)\//.exec(env.GITHUB_REF ?? "");
  return m ? Number(m[1]) : null;
}

/** The check run, posted with the job's GITHUB_TOKEN; without one, the step says so and goes on. */
function checkRuns(
  inputs: ActionInputs,
  env: NodeJS.ProcessEnv | Record<string, string | undefined>,
  deps: ActionDeps,
) {
  const [owner, repo] = (env.GITHUB_REPOSITORY ?? "/").split("/") as [string, string];
  const octokit = inputs.githubToken
    ? new Octokit({
        auth: inputs.githubToken,
        baseUrl: env.GITHUB_API_URL ?? "https://api.github.com",
        userAgent: "reprise-action",
        log: { debug: () => {}, info: () => {}, warn: deps.warning, error: deps.warning },
      })
    : null;
  if (!octokit) deps.warning("no github-token: no check run is posted");
  return {
    /**
     * In progress while the step follows the execution. Handed off (`wait: false`), nobody would
     * complete it: it is posted completed and neutral, a link to the execution.
     */
    async start(
      doc: ExecutionDocument,
      sha: string,
      url: string,
      following: boolean,
    ): Promise<number | null> {
      if (!octokit) return null;
      const state = following
        ? {
            status: "in_progress" as const,
            output: { title: "running", summary: `Execution [${doc.id}](${url}) is running.` },
          }
        : {
            status: "completed" as const,
            conclusion: "neutral" as const,
            output: {
              title: "started, not followed",
              summary: `Execution [${doc.id}](${url}) was started; this job did not wait for it (\`wait: false\`). Its page has the result.`,
            },
          };
      try {
        const r = await octokit.rest.checks.create({
          owner,
          repo,
          name: `reprise/${doc.workflow}`,
          head_sha: sha,
          external_id: doc.id,
          details_url: url,
          ...state,
        });
        return r.data.id;
      } catch (e) {
        deps.warning(
          `could not create the check run (needs checks: write): ${(e as Error).message}`,
        );
        return null;
      }
    },
    async complete(id: number | null, rendered: ReturnType<typeof executionOutput>): Promise<void> {
      if (!octokit || id === null) return;
      try {
        await octokit.rest.checks.update({
          owner,
          repo,
          check_run_id: id,
          status: "completed",
          conclusion: rendered.conclusion,
          output: rendered.output,
          actions: [
            {
              label: "Relaunch",
              description: "Run it again: the cache decides",
              identifier: "relaunch",
            },
          ],
        });
      } catch (e) {
        deps.warning(`could not complete the check run: ${(e as Error).message}`);
      }
    },
  };
}
