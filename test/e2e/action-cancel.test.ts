/**
 * The GitHub Action's post step (action.yml `post: dist/post.js`, `post-if: cancelled()`), run
 * as the runner runs it: the main step follows a long execution, the job is cancelled (the runner
 * signals the main step: SIGINT, then SIGTERM, then SIGKILL), and the runner then runs the post
 * step with the state the main step saved (GITHUB_STATE -> STATE_*). Against a spawned
 * `reprise serve` with the GitHub App configured on the fake GitHub (tasks run as local
 * processes from its tarballs; the check runs the step posts with the job's token land there),
 * accepting OIDC tokens from a local issuer.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ExecutionDocument } from "../../core/report/document.js";
import { freePort, runStep, type StepOptions, startStep } from "../fakes/actions-runner.js";
import { type Background, repriseBackground } from "../fakes/cli.js";
import { type TempRepo, tempRepo } from "../fakes/git-repo.js";
import { appPrivateKey, FakeGitHub } from "../fakes/github/index.js";
import { type OidcIssuer, startOidcIssuer } from "../fakes/oidc-issuer.js";
import { taskScratchRoot } from "../fakes/task-project.js";
import { processesWithEnv } from "../integration/executor-contract.js";

const REPOSITORY = "acme/cancel";

/** `slow` writes its pid to PIDS/<execution>.pid and sleeps a minute; `quick` ends at once. */
const spec = (pids: string) => `version: 1
defaults: { image: "busybox:1.37", timeout: 5m }
tasks:
  slow:
    command: [sh, -c, 'echo $$ > "${pids}/$REPRISE_EXECUTION_ID.pid"; exec sleep 60']
    cache: false
  quick:
    command: [sh, -c, 'echo "{}" > "$REPRISE_OUTPUTS"']
    cache: false
workflows:
  long:
    nodes: { s: { task: slow } }
  short:
    nodes: { q: { task: quick } }
`;

let fake: FakeGitHub;
let issuer: OidcIssuer;
let server: Background;
let url: string;
let repo: TempRepo;
let sha: string;
let dir: string;
/** Task processes seen, killed in afterAll if a failed test left one behind. */
const pids: number[] = [];

beforeAll(async () => {
  // Where sandboxed tasks may write (vitest.config.ts): the slow task says it started there.
  dir = mkdtempSync(join(taskScratchRoot(), "reprise-action-cancel-"));
  fake = await FakeGitHub.start();
  repo = tempRepo("reprise-action-cancel-repo-");
  mkdirSync(join(dir, "pids"));
  repo.write({ "reprise.yaml": spec(join(dir, "pids")) });
  sha = repo.commit("a slow task and a quick one");
  fake.addRepo({ fullName: REPOSITORY, dir: repo.dir });
  const port = await freePort();
  url = `http://127.0.0.1:${port}`;
  issuer = await startOidcIssuer(url);
  server = await repriseBackground(
    {
      cwd: dir,
      env: {
        REPRISE_DATA_DIR: join(dir, "data"),
        DATABASE_URL: "",
        PORT: String(port),
        LOG_LEVEL: "warn",
        APP_ID: "42",
        PRIVATE_KEY: appPrivateKey(),
        WEBHOOK_SECRET: "secret",
        GHE_HOST: fake.host,
        GHE_PROTOCOL: "http",
        REPRISE_PUBLIC_URL: url,
        REPRISE_OIDC_ISSUER: issuer.issuer,
        REPRISE_OIDC_AUDIENCE: url,
      },
    },
    "serve",
  );
}, 90_000);

afterAll(async () => {
  for (const pid of pids) if (alive(pid)) process.kill(pid, "SIGKILL");
  await server?.stop();
  await fake?.close();
  await issuer?.close();
  repo?.remove();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** A step of a job of REPOSITORY at `sha`, on GitHub Enterprise (the fake), with its OIDC endpoint. */
function stepOptions(inputs: Record<string, string>, state?: string): StepOptions {
  const oidc = issuer.actionsEndpoint(REPOSITORY);
  return {
    inputs: { server: url, "github-token": "ghs_job_token", ...inputs },
    env: {
      GITHUB_REPOSITORY: REPOSITORY,
      GITHUB_SERVER_URL: `http://${fake.host}`,
      GITHUB_API_URL: fake.baseUrl,
      GITHUB_SHA: sha,
      GITHUB_REF: "refs/heads/main",
      GITHUB_REF_NAME: "main",
      GITHUB_WORKSPACE: repo.dir,
      ACTIONS_ID_TOKEN_REQUEST_URL: oidc.url,
      ACTIONS_ID_TOKEN_REQUEST_TOKEN: oidc.token,
    },
    cwd: repo.dir,
    scratch: dir,
    ...(state !== undefined ? { entry: "post.js" as const, state } : {}),
  };
}

async function api<T>(path: string, method = "GET"): Promise<T> {
  const res = await fetch(`${url}/api/v1${path}`, {
    method,
    headers: { authorization: `Bearer ${await issuer.token(REPOSITORY)}` },
  });
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`);
  return (await res.json()) as T;
}

const execution = (id: string) => api<ExecutionDocument>(`/executions/${id}`);

async function until<T>(what: string, fn: () => Promise<T | null>, ms = 60_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== null) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/**
 * The pid, as this machine sees it, of the slow task of execution `id`, once it runs: the pid it
 * wrote is its sandbox's own, so it is found by the environment only its processes carry.
 */
function taskPid(id: string): Promise<number> {
  return until(`node s of ${id} to run`, async () => {
    if (!existsSync(join(dir, "pids", `${id}.pid`))) return null;
    const sleeping = processesWithEnv(`REPRISE_EXECUTION_ID=${id}`).filter((pid) => {
      try {
        return readFileSync(`/proc/${pid}/comm`, "utf8").trim() === "sleep";
      } catch {
        return false; // gone meanwhile
      }
    });
    return sleeping[0] ?? null;
  });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

const checkRunOf = (id: string) => fake.checkRuns.find((c) => c.external_id === id);

describe("the Action's post step (the job cancelled)", () => {
  it("aborts the execution the cancelled main step was following: ABORTED, its task killed, the check run cancelled", async () => {
    const main = startStep(stepOptions({ workflow: "long", wait: "true" }));
    const id = await until("the main step to start an execution", async () => {
      const m = /execution (\S+) of long/.exec(main.output());
      return m ? (m[1] as string) : null;
    });
    const pid = await taskPid(id);
    pids.push(pid);
    expect(alive(pid)).toBe(true);
    // The main step follows it; the check run it created is in progress.
    await until("the check run", async () => checkRunOf(id) ?? null);
    expect(checkRunOf(id)).toMatchObject({ status: "in_progress", name: "reprise/long" });

    const cancelled = await main.cancel();
    // Killed by the runner's first signal, before it could report anything.
    expect(cancelled.code === 0, cancelled.stdout).toBe(false);
    expect(cancelled.state).toContain("execution<<");
    // Killing the step does not stop the execution: the post step does.
    expect((await execution(id)).status).toBe("RUNNING");
    expect(alive(pid)).toBe(true);

    const post = await runStep(
      stepOptions({ workflow: "long", wait: "true" }, cancelled.state as string),
    );
    expect(post.code, post.stdout).toBe(0);
    expect(post.stdout).toContain(`the job was cancelled: asked execution ${id} to stop`);
    expect(post.stdout).toContain(`execution ${id} ABORTED`);
    expect(post.stdout).not.toContain("::warning::");

    const doc = await execution(id);
    expect(doc.status).toBe("ABORTED");
    expect(doc.nodes.find((n) => n.id === "s")?.status).toBe("ABORTED");
    await until(`task process ${pid} to be gone`, async () => (alive(pid) ? null : true), 15_000);

    expect(checkRunOf(id)).toMatchObject({
      status: "completed",
      conclusion: "cancelled",
      details_url: `${url}/executions/${id}`,
    });
    expect(checkRunOf(id)?.output?.title).toBe("cancelled");
    expect(post.summary).toContain("reprise/long: cancelled");
  }, 180_000);

  it("does nothing, exit 0, when the main step started no execution (no saved state)", async () => {
    const calls = fake.calls.length;
    // A server nobody listens on: the post step must not even try it.
    const closed = `http://127.0.0.1:${await freePort()}`;
    const post = await runStep(stepOptions({ workflow: "long", server: closed }, ""));
    expect(post.code, post.stdout).toBe(0);
    expect(post.stdout).toBe("");
    expect(fake.calls.length).toBe(calls);
  }, 60_000);

  it("leaves an execution that had finished, and its check run, as they are", async () => {
    const main = await runStep(stepOptions({ workflow: "short", wait: "true" }));
    expect(main.code, main.stdout).toBe(0);
    const id = main.outputs["execution-id"] as string;
    expect((await execution(id)).status).toBe("SUCCEEDED");
    const before = structuredClone(checkRunOf(id));
    expect(before).toMatchObject({ status: "completed", conclusion: "success" });

    const post = await runStep(stepOptions({ workflow: "short", wait: "true" }, main.state));
    expect(post.code, post.stdout).toBe(0);
    expect(post.stdout).not.toContain("asked execution");
    expect((await execution(id)).status).toBe("SUCCEEDED");
    expect(checkRunOf(id)).toEqual(before);
  }, 120_000);

  it("leaves a finished execution when the main step was killed before it could say so", async () => {
    const main = await runStep(stepOptions({ workflow: "short", wait: "true" }));
    expect(main.code, main.stdout).toBe(0);
    const id = main.outputs["execution-id"] as string;
    // The state of a main step killed after the execution ended but before it completed the
    // check run: only the execution and the check run were saved.
    const state = main.state.replace(/^settled<<(\S+)\n[\s\S]*?\n\1\n/m, "");
    expect(state).not.toContain("settled");
    const post = await runStep(stepOptions({ workflow: "short" }, state));
    expect(post.code, post.stdout).toBe(0);
    expect(post.stdout).toContain(`execution ${id} is SUCCEEDED already`);
    expect(post.stdout).not.toContain("asked execution");
    expect((await execution(id)).status).toBe("SUCCEEDED");
    expect(checkRunOf(id)).toMatchObject({ status: "completed", conclusion: "success" });
  }, 120_000);

  it("leaves an execution started with wait: false running: the step handed it off, its check run a neutral link", async () => {
    const main = await runStep(stepOptions({ workflow: "long", wait: "false" }));
    expect(main.code, main.stdout).toBe(0);
    const id = main.outputs["execution-id"] as string;
    const pid = await taskPid(id);
    pids.push(pid);

    const post = await runStep(stepOptions({ workflow: "long", wait: "false" }, main.state));
    expect(post.code, post.stdout).toBe(0);
    expect(post.stdout).not.toContain("asked execution");
    expect((await execution(id)).status).toBe("RUNNING");
    expect(alive(pid)).toBe(true);
    // Nobody follows it: its check run is not left in progress, but completed as a link to it.
    expect(checkRunOf(id)).toMatchObject({
      status: "completed",
      conclusion: "neutral",
      output: { title: "started, not followed" },
    });

    // Clean up through the API: abort it and see its task go.
    await api(`/executions/${id}/abort`, "POST");
    await until(`${id} to end`, async () =>
      (await execution(id)).status === "ABORTED" ? true : null,
    );
    await until(`task process ${pid} to be gone`, async () => (alive(pid) ? null : true), 15_000);
  }, 120_000);
});
