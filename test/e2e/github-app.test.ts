/**
 * The GitHub App end to end: `reprise serve` with APP_ID set, talking to a fake GitHub over real
 * HTTP (GHE_HOST/GHE_PROTOCOL), fed signed deliveries built from @octokit/webhooks-examples. The
 * seed pipeline's story is told through GitHub: pushes register and run, a writer's /relaunch
 * re-runs only what the fix changed, a revert rolls production back.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Store } from "../../db/store.js";
import { loadConfig } from "../../runner/config.js";
import { startWithGitHub } from "../../runner/github/serve.js";
import { tempRepo } from "../fakes/git-repo.js";
import {
  appPrivateKey,
  commentPayload,
  deliver,
  FakeGitHub,
  pushPayload,
  until,
} from "../fakes/github/index.js";

const SECRET = "webhook-secret";
const ZERO = "0".repeat(40);
const MAKE_STORY = fileURLToPath(
  new URL("../../examples/seed-pipeline/make-story-repo.sh", import.meta.url),
);

let fake: FakeGitHub;
let served: Awaited<ReturnType<typeof startWithGitHub>>;
let store: Store;
let dataDir: string;
let storyDir: string;
const sha: Record<string, string> = {};

function git(dir: string, ...args: string[]): string {
  return execFileSync("git", ["-C", dir, ...args], {
    encoding: "utf8",
    env: { ...process.env, GIT_CONFIG_NOSYSTEM: "1", GIT_CONFIG_GLOBAL: "/dev/null" },
  }).trim();
}

const send = (
  event: string,
  payload: unknown,
  opts: { id?: string; secret?: string | null } = {},
) =>
  deliver(served.url, event, payload, {
    secret: opts.secret === undefined ? SECRET : opts.secret,
    ...(opts.id ? { id: opts.id } : {}),
  });

async function settled(): Promise<void> {
  await served.github?.idle();
}

const repoKey = (name: string) => `${fake.host}/${name}`;

beforeAll(async () => {
  fake = await FakeGitHub.start();
  dataDir = mkdtempSync(join(tmpdir(), "reprise-github-"));
  storyDir = join(dataDir, "story");
  const tags = execFileSync("bash", [MAKE_STORY, storyDir], { encoding: "utf8" });
  for (const line of tags.trim().split("\n")) {
    const [tag, s] = line.split(" ");
    sha[tag as string] = s as string;
  }
  // main starts at the broken commit; the fix waits on a branch with a pull request.
  git(storyDir, "checkout", "-q", "--detach");
  git(storyDir, "branch", "-f", "main", sha.broken as string);
  git(storyDir, "branch", "-f", "fix-train", sha.fixed as string);
  fake.addRepo({
    fullName: "acme/seed",
    dir: storyDir,
    permissions: { ada: "write", rob: "read" },
    pulls: { 1: { head: "fix-train", base: "main" } },
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
  });
  served = await startWithGitHub(config, { tuning: { tickMs: 100 } });
  store = served.runtime.open.store;
}, 60_000);

afterAll(async () => {
  await served?.close();
  await fake?.close();
  rmSync(dataDir, { recursive: true, force: true });
});

const checkRun = (name: string, headSha: string) =>
  fake.checkRuns.filter((c) => c.name === name && c.head_sha === headSha).at(-1);

const completed = (name: string, headSha: string) =>
  until(
    `${name} completed on ${headSha.slice(0, 8)}`,
    () => {
      const c = checkRun(name, headSha);
      return c?.status === "completed" ? c : undefined;
    },
    60_000,
  );

describe("the seed story through GitHub", () => {
  it("a push to main registers, activates and runs; the check run names the failed node", async () => {
    fake.resetCalls();
    const sent = await send(
      "push",
      pushPayload({ repo: "acme/seed", branch: "main", before: ZERO, after: sha.broken as string }),
    );
    expect(sent.status).toBe(202);
    await settled();
    const register = checkRun("reprise/register", sha.broken as string);
    expect(register).toMatchObject({ status: "completed", conclusion: "success" });
    expect(register?.output?.title).toContain("4 added");
    // Two reads whatever the number of tasks: the recursive tree and the reprise.yaml blob.
    expect(fake.count("GET", /\/git\/trees\//)).toBe(1);
    expect(fake.count("GET", /\/git\/blobs\//)).toBe(1);
    expect(fake.count("POST", /\/check-runs$/)).toBe(2);
    const production = await store.production.current(repoKey("acme/seed"));
    expect(production).toMatchObject({ sha: sha.broken, actor: "ada", reason: "push to main" });

    const train = await completed("reprise/train", sha.broken as string);
    expect(train.conclusion).toBe("failure");
    expect(train.output?.title).toBe("failed at train");
    expect(train.external_id).toMatch(/.+/);
    expect(train.details_url).toBe(`https://reprise.test/executions/${train.external_id}`);
    expect(train.output?.text).toContain("Log of `train`");
    expect(train.actions?.map((a) => a.identifier)).toEqual(["relaunch"]);
  });

  it("a push of the fix to a branch registers it and runs nothing", async () => {
    fake.resetCalls();
    await send(
      "push",
      pushPayload({
        repo: "acme/seed",
        branch: "fix-train",
        before: ZERO,
        after: sha.fixed as string,
      }),
    );
    await settled();
    const register = checkRun("reprise/register", sha.fixed as string);
    expect(register?.conclusion).toBe("success");
    expect(register?.output?.title).toContain("0 added, 1 changed, 3 unchanged");
    expect(fake.count("GET", /\/git\/(trees|blobs)\//)).toBe(2);
    expect(fake.count("POST", /\/check-runs$/)).toBe(1);
    expect(
      await store.executions.list({ repo: repoKey("acme/seed"), sha: sha.fixed as string }),
    ).toEqual([]);
  });

  let relaunched = "";
  let relaunchDelivery = "";
  it("a writer's /relaunch re-runs only what the fix changed, and the check run goes green", async () => {
    const sent = await send(
      "issue_comment",
      commentPayload({
        repo: "acme/seed",
        pr: 1,
        body: "Fixed the typo.\n\n/relaunch",
        user: "ada",
        commentId: 7,
      }),
    );
    relaunchDelivery = sent.id;
    await settled();
    const reply = fake.comments.at(-1);
    expect(reply?.body).toMatch(/^Relaunched `train`/);
    expect(fake.reactions.at(-1)).toMatchObject({ commentId: 7, content: "+1" });
    const train = await completed("reprise/train", sha.fixed as string);
    expect(train.conclusion).toBe("success");
    expect(train.output?.title).toBe("succeeded: 2 ran, 2 cached");
    relaunched = train.external_id as string;
    const nodes = await store.executions.nodes(relaunched);
    const cache = Object.fromEntries(nodes.map((n) => [n.nodeId, n.cacheStatus]));
    expect(cache).toEqual({
      prepare: "HIT",
      featurize: "HIT",
      train: "POPULATED",
      evaluate: "POPULATED",
    });
    const exec = await store.executions.get(relaunched);
    expect(exec?.trigger).toEqual({ kind: "comment", actor: "ada", pr: 1 });
  });

  it("a reader's /relaunch is refused politely, and a redelivery does nothing twice", async () => {
    const before = (await store.executions.list({ repo: repoKey("acme/seed") })).length;
    const comments = fake.comments.length;
    await send(
      "issue_comment",
      commentPayload({ repo: "acme/seed", pr: 1, body: "/relaunch", user: "rob", commentId: 8 }),
    );
    await settled();
    expect(fake.comments.at(-1)?.body).toMatch(
      /sorry, Reprise commands need write permission .* \(you have read\)/,
    );
    expect(fake.reactions.at(-1)).toMatchObject({ commentId: 8, content: "confused" });

    const again = await send(
      "issue_comment",
      commentPayload({ repo: "acme/seed", pr: 1, body: "/relaunch", user: "ada", commentId: 7 }),
      { id: relaunchDelivery },
    );
    expect(again.status).toBe(200);
    expect(again.body).toMatchObject({ stored: false });
    await settled();
    expect((await store.executions.list({ repo: repoKey("acme/seed") })).length).toBe(before);
    expect(fake.comments.length).toBe(comments + 1);
  });

  it("merging the fix, reshaping, then reverting rolls production back to the fix", async () => {
    git(storyDir, "branch", "-f", "main", sha.fixed as string);
    await send(
      "push",
      pushPayload({
        repo: "acme/seed",
        branch: "main",
        before: sha.broken as string,
        after: sha.fixed as string,
      }),
    );
    await settled();
    const merged = await completed("reprise/train", sha.fixed as string);
    expect(merged.output?.title).toBe("succeeded: 0 ran, 4 cached");

    git(storyDir, "branch", "-f", "main", sha.reshaped as string);
    await send(
      "push",
      pushPayload({
        repo: "acme/seed",
        branch: "main",
        before: sha.fixed as string,
        after: sha.reshaped as string,
      }),
    );
    await settled();
    expect(checkRun("reprise/register", sha.reshaped as string)?.output?.title).toContain(
      "1 added",
    );
    await completed("reprise/train", sha.reshaped as string);

    const work = join(dataDir, "revert");
    git(storyDir, "worktree", "add", "-q", "--detach", work, sha.reshaped as string);
    execFileSync(
      "git",
      [
        "-C",
        work,
        "-c",
        "user.name=Ada",
        "-c",
        "user.email=ada@example.com",
        "revert",
        "--no-edit",
        "HEAD",
      ],
      { stdio: "ignore" },
    );
    sha.revert = git(work, "rev-parse", "HEAD");
    git(storyDir, "branch", "-f", "main", sha.revert);
    fake.resetCalls();
    await send(
      "push",
      pushPayload({
        repo: "acme/seed",
        branch: "main",
        before: sha.reshaped as string,
        after: sha.revert,
      }),
    );
    await settled();
    const register = checkRun("reprise/register", sha.revert);
    expect(register?.output?.title).toContain(`identical to ${(sha.fixed as string).slice(0, 12)}`);
    const production = await store.production.current(repoKey("acme/seed"));
    expect(production).toMatchObject({ sha: sha.revert, reason: `rollback to ${sha.fixed}` });
    const rollback = await completed("reprise/train", sha.revert);
    expect(rollback.output?.title).toBe("succeeded: 0 ran, 4 cached");
    expect(fake.count("GET", /\/git\/(trees|blobs)\//)).toBe(2);
    // Installation tokens are cached until near expiry, not asked for per request.
    expect(fake.count("POST", /\/access_tokens$/)).toBe(0);
  });
});

describe("bad input", () => {
  let bad: ReturnType<typeof tempRepo>;
  beforeAll(() => {
    bad = tempRepo("reprise-github-bad-");
    fake.addRepo({
      fullName: "acme/bad",
      dir: bad.dir,
      permissions: { ada: "write" },
      pulls: { 2: { head: "main", base: "main" } },
    });
  });
  afterAll(() => bad.remove());

  it("refuses unsigned and wrongly signed deliveries with 401 and stores nothing", async () => {
    const payload = pushPayload({
      repo: "acme/bad",
      branch: "main",
      before: ZERO,
      after: "1".repeat(40),
    });
    const unsigned = await send("push", payload, { secret: null });
    const wrong = await send("push", payload, { secret: "not-the-secret" });
    expect([unsigned.status, wrong.status]).toEqual([401, 401]);
    expect(await store.deliveries.get(unsigned.id)).toBeNull();
    expect(await store.deliveries.get(wrong.id)).toBeNull();
  });

  it("answers 400 to a signed body that is not JSON", async () => {
    const sent = await deliver(served.url, "push", null, { secret: SECRET, raw: "{not json" });
    expect(sent.status).toBe(400);
    expect(await store.deliveries.get(sent.id)).toBeNull();
  });

  it("records an invalid reprise.yaml as a failed registration with annotations, and runs nothing", async () => {
    const tasks = Array.from(
      { length: 60 },
      (_, i) => `  t${i}:\n    command: [echo]\n    bogus: ${i}\n`,
    ).join("");
    bad.write({ "reprise.yaml": `version: 1\ntasks:\n${tasks}workflows: {}\n` });
    const invalid = bad.commit("invalid spec");
    await send(
      "push",
      pushPayload({ repo: "acme/bad", branch: "main", before: ZERO, after: invalid }),
    );
    await settled();
    const register = checkRun("reprise/register", invalid);
    expect(register?.conclusion).toBe("failure");
    expect(register?.output?.title).toMatch(/reprise.yaml is invalid: \d+ errors/);
    // GitHub takes 50 annotations per request: the rest follow in an update.
    expect(register?.annotations.length).toBeGreaterThanOrEqual(60);
    expect(register?.updates).toBeGreaterThanOrEqual(1);
    expect(await store.versions.get(repoKey("acme/bad"), invalid)).toMatchObject({
      status: "invalid",
    });
    expect(await store.executions.list({ repo: repoKey("acme/bad") })).toEqual([]);
  });

  it("stays silent on a push without reprise.yaml", async () => {
    bad.git("rm", "-q", "reprise.yaml");
    bad.write({ "README.md": "nothing to run\n" });
    const plain = bad.commit("no spec");
    const runs = fake.checkRuns.length;
    await send(
      "push",
      pushPayload({ repo: "acme/bad", branch: "main", before: ZERO, after: plain }),
    );
    await settled();
    expect(fake.checkRuns.length).toBe(runs);
  });

  it("answers an unknown command with help", async () => {
    await send(
      "issue_comment",
      commentPayload({ repo: "acme/bad", pr: 2, body: "/deploy now", user: "ada", commentId: 9 }),
    );
    await settled();
    expect(fake.comments.at(-1)?.body).toContain("`/deploy` is not a Reprise command");
    expect(fake.comments.at(-1)?.body).toContain("/relaunch [EXECUTION]");
    expect(fake.reactions.at(-1)).toMatchObject({ commentId: 9, content: "confused" });
  });

  it("ignores bots and commands inside quotes and code blocks", async () => {
    const comments = fake.comments.length;
    await send(
      "issue_comment",
      commentPayload({
        repo: "acme/bad",
        pr: 2,
        body: "/relaunch",
        user: "reprise[bot]",
        userType: "Bot",
      }),
    );
    await send(
      "issue_comment",
      commentPayload({
        repo: "acme/bad",
        pr: 2,
        body: "> /relaunch\n```\n/run x\n```",
        user: "ada",
      }),
    );
    await settled();
    expect(fake.comments.length).toBe(comments);
  });
});
