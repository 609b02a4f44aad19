/**
 * Executions of fork pull requests get no secrets (docs/design.md section 2), through the GitHub App
 * end to end: `reprise serve`'s app against the fake GitHub, the local executor with a secret
 * REPRISE_LOCAL_SECRETS allows. A writer's `/run` on a pull request from a branch of the
 * repository gives the task its secret (masked in the check run's log tail); the same `/run` on
 * a fork's pull request records `fork` on the trigger, says so in the reply, and the task runs
 * with the variable unset; the check run's Relaunch of that execution stays without secrets.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startWithGitHub } from "../../app/serve.js";
import type { Store } from "../../db/store.js";
import type { ExecutionRecord } from "../../db/types.js";
import { loadConfig } from "../../runner/config.js";
import { type TempRepo, tempRepo } from "../fakes/git-repo.js";
import {
  appPrivateKey,
  checkRunPayload,
  commentPayload,
  deliver,
  FakeGitHub,
  until,
} from "../fakes/github/index.js";

const SECRET = "webhook-secret";
const TOKEN = "token-Value-for-the-base-repo-only-91c2";
const NODE = process.execPath;

const SPEC = `version: 1
defaults: { image: "node:20-slim", timeout: 2m }
tasks:
  probe:
    command: [${JSON.stringify(NODE)}, tasks/probe.mjs]
    sources: [tasks/probe.mjs]
    env: { MODE: ok }
    outputs: { set: boolean }
    secrets: [{ env: API_TOKEN, secret: api, key: token }]
  leaky:
    command: [${JSON.stringify(NODE)}, tasks/probe.mjs]
    sources: [tasks/probe.mjs]
    env: { MODE: fail }
    outputs: { set: boolean }
    secrets: [{ env: API_TOKEN, secret: api, key: token }]
workflows:
  probe:
    nodes: { p: { task: probe } }
    outputs: { set: "\${{ nodes.p.outputs.set }}" }
  leaky:
    nodes: { l: { task: leaky } }
`;

const PROBE = `import { writeFileSync } from "node:fs";
const token = process.env.API_TOKEN;
console.log("token=" + (token ?? "(unset)"));
writeFileSync(process.env.REPRISE_OUTPUTS, JSON.stringify({ set: token !== undefined }));
if (process.env.MODE === "fail") process.exit(4);
`;

let fake: FakeGitHub;
let served: Awaited<ReturnType<typeof startWithGitHub>>;
let store: Store;
let dataDir: string;
let repo: TempRepo;

const REPO = "acme/forked";
/** 7: a branch of the repository; 8: the same commit from a fork. */
const OWN_PR = 7;
const FORK_PR = 8;

beforeAll(async () => {
  fake = await FakeGitHub.start();
  dataDir = mkdtempSync(join(tmpdir(), "reprise-fork-secrets-"));
  repo = tempRepo("reprise-fork-secrets-repo-");
  repo.write({ "reprise.yaml": SPEC, "tasks/probe.mjs": PROBE });
  repo.commit("a task that needs a token");
  repo.git("checkout", "-q", "-b", "feature");
  repo.write({ "README.md": "a change\n" });
  repo.commit("a change from a contributor");
  repo.git("checkout", "-q", "main");
  fake.addRepo({
    fullName: REPO,
    dir: repo.dir,
    permissions: { ada: "write" },
    pulls: {
      [OWN_PR]: { head: "feature", base: "main" },
      [FORK_PR]: { head: "feature", base: "main", fork: "eve/forked" },
    },
  });
  const config = loadConfig({
    ...process.env,
    DATABASE_URL: "",
    REPRISE_DATA_DIR: join(dataDir, "data"),
    HOST: "127.0.0.1",
    PORT: "0",
    LOG_LEVEL: "silent",
    APP_ID: "42",
    PRIVATE_KEY: appPrivateKey(),
    WEBHOOK_SECRET: SECRET,
    GHE_HOST: fake.host,
    GHE_PROTOCOL: "http",
    REPRISE_PUBLIC_URL: "https://reprise.test",
    REPRISE_EXECUTOR: "local",
    REPRISE_LOCAL_SECRETS: `API_TOKEN@${fake.host}/${REPO}`,
    API_TOKEN: TOKEN,
  });
  served = await startWithGitHub(config, { tuning: { tickMs: 100 } });
  store = served.runtime.open.store;
}, 60_000);

afterAll(async () => {
  await served?.close();
  await fake?.close();
  rmSync(dataDir, { recursive: true, force: true });
  repo?.remove();
});

const repoKey = () => `${fake.host}/${REPO}`;

async function comment(pr: number, body: string): Promise<string> {
  await deliver(
    served.url,
    "issue_comment",
    commentPayload({ repo: REPO, pr, body, user: "ada" }),
    {
      secret: SECRET,
    },
  );
  await served.github?.idle();
  return fake.comments.at(-1)?.body ?? "";
}

/** The newest execution of the workflow on the pull request, once it has ended. */
async function ended(pr: number, workflow: string, not: string[] = []): Promise<ExecutionRecord> {
  return until(
    `${workflow} on #${pr} ended`,
    async () => {
      const [e] = (await store.executions.list({ repo: repoKey(), pr, workflow, limit: 5 })).filter(
        (x) => !not.includes(x.id),
      );
      return e && ["SUCCEEDED", "FAILED"].includes(e.state) ? e : undefined;
    },
    60_000,
  );
}

async function log(e: ExecutionRecord, node: string): Promise<string> {
  const [n] = (await store.executions.nodes(e.id)).filter((x) => x.nodeId === node);
  const attempts = await store.executions.attempts(e.id, node);
  const ref = attempts.at(-1)?.logRef;
  expect(n, `node ${node}`).toBeDefined();
  return ref ? ((await served.runtime.executor.logTail(ref, 65_536)) ?? "") : "";
}

describe("fork pull requests get no secrets", () => {
  it("a writer's /run on the repository's own branch gives the task its secret, masked in logs", async () => {
    const reply = await comment(OWN_PR, "/run probe");
    expect(reply).toMatch(/^Started `probe`/);
    expect(reply).not.toContain("fork");
    const e = await ended(OWN_PR, "probe");
    expect(e.trigger).toEqual({ kind: "comment", actor: "ada", pr: OWN_PR });
    expect(e).toMatchObject({ state: "SUCCEEDED", outputs: { set: true } });
    const text = await log(e, "p");
    expect(text).toContain("token=***");
    expect(text).not.toContain(TOKEN);
  }, 120_000);

  it("a failed node's log tail in the check run is masked", async () => {
    await comment(OWN_PR, "/run leaky");
    const e = await ended(OWN_PR, "leaky");
    expect(e.state).toBe("FAILED");
    const run = await until(
      "the leaky check run completed",
      () => {
        const c = fake.checkRuns.filter((x) => x.external_id === e.id).at(-1);
        return c?.status === "completed" ? c : undefined;
      },
      60_000,
    );
    expect(run.output?.text).toContain("token=***");
    expect(JSON.stringify(run)).not.toContain(TOKEN);
  }, 120_000);

  let forked: ExecutionRecord;
  it("the same /run on a fork's pull request records fork and runs with the variable unset", async () => {
    const reply = await comment(FORK_PR, "/run probe");
    expect(reply).toMatch(/^Started `probe`/);
    expect(reply).toContain("The code comes from a fork, so its tasks run without their secrets.");
    forked = await ended(FORK_PR, "probe");
    expect(forked.trigger).toEqual({ kind: "comment", actor: "ada", pr: FORK_PR, fork: true });
    expect(forked).toMatchObject({ state: "SUCCEEDED", outputs: { set: false } });
    const text = await log(forked, "p");
    expect(text).toContain("token=(unset)");
    expect(text).toContain(
      "[reprise] secrets withheld: the code comes from a fork's pull request, so API_TOKEN is not set",
    );
  }, 120_000);

  it("the check run's Relaunch of a fork's execution stays without secrets", async () => {
    const p = checkRunPayload({
      repo: REPO,
      action: "requested_action",
      checkRunName: "reprise/probe",
      externalId: forked.id,
      user: "ada",
    });
    await deliver(served.url, "check_run", p, { secret: SECRET });
    await served.github?.idle();
    const child = await until(
      "the relaunch ended",
      async () => {
        const list = await store.executions.list({ repo: repoKey(), workflow: "probe", limit: 10 });
        const c = list.find((x) => x.parentId === forked.id);
        return c && ["SUCCEEDED", "FAILED"].includes(c.state) ? c : undefined;
      },
      60_000,
    );
    expect(child.trigger).toMatchObject({ kind: "check_run", fork: true });
    expect(child).toMatchObject({ state: "SUCCEEDED", outputs: { set: false } });
  }, 120_000);

  it("a /relaunch on the repository's own pull request of the fork's execution gets secrets again", async () => {
    const reply = await comment(OWN_PR, `/relaunch ${forked.id}`);
    expect(reply).toMatch(/^Relaunched `probe`/);
    const child = await until(
      "the relaunch on the own pull request ended",
      async () => {
        const list = await store.executions.list({ repo: repoKey(), pr: OWN_PR, limit: 10 });
        const c = list.find((x) => x.parentId === forked.id);
        return c && ["SUCCEEDED", "FAILED"].includes(c.state) ? c : undefined;
      },
      60_000,
    );
    expect(child.trigger).toEqual({ kind: "comment", actor: "ada", pr: OWN_PR });
    expect(child.outputs).toEqual({ set: true });
  }, 120_000);
});
