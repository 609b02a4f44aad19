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
import { startWithGitHub } from "../../app/serve.js";
import { ApiClient } from "../../client/client.js";
import { ensureRegistered } from "../../client/register.js";
import type { Store } from "../../db/store.js";
import { loadConfig } from "../../runner/config.js";
import { type TempRepo, tempRepo } from "../fakes/git-repo.js";
import {
  appPrivateKey,
  checkRunPayload,
  commentPayload,
  deliver,
  example,
  FakeGitHub,
  pushPayload,
  until,
} from "../fakes/github/index.js";
import { type OidcIssuer, startOidcIssuer } from "../fakes/oidc-issuer.js";

const SECRET = "webhook-secret";
const ZERO = "0".repeat(40);
const MAKE_STORY = fileURLToPath(
  new URL("../../examples/seed-pipeline/make-story-repo.sh", import.meta.url),
);

let fake: FakeGitHub;
let oidc: OidcIssuer;
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
  oidc = await startOidcIssuer("https://reprise.test");
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
    REPRISE_OIDC_ISSUER: oidc.issuer,
    REPRISE_OIDC_AUDIENCE: "https://reprise.test",
  });
  served = await startWithGitHub(config, { tuning: { tickMs: 100 } });
  store = served.runtime.open.store;
}, 60_000);

afterAll(async () => {
  await served?.close();
  await fake?.close();
  await oidc?.close();
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
    // Registering reads two things whatever the number of tasks: the recursive tree and the
    // reprise.yaml blob. The run's checkout reads the tree once more, to check the tarball
    // against it (app/tarball-source.ts).
    expect(fake.count("GET", /\/git\/trees\//)).toBe(2);
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

  it("the run's tarball checkout shares the App's GitHub client: no installation asked after the push told it", () => {
    // The calls since the push above: the train ran from GitHub's tarball of that commit...
    expect(fake.count("GET", /^\/repos\/acme\/seed\/tarball\//)).toBe(1);
    // ...fetched with the installation the push delivery named (app/github-client.ts: one
    // client, one installation cache, for the App, the tarball checkout and the code source).
    expect(fake.count("GET", /\/installation$/)).toBe(0);
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
    fake.resetCalls();
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
    // The fix was registered when its branch was pushed: merging it reads nothing.
    expect(fake.count("GET", /\/git\/(trees|blobs)\//)).toBe(0);
    expect(await store.production.current(repoKey("acme/seed"))).toMatchObject({
      sha: sha.fixed,
      reason: "push to main",
    });

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

  it("a push delivery cut short after posting its register check run rewrites it when retried", async () => {
    const tasks = Array.from(
      { length: 60 },
      (_, i) => `  t${i}:\n    command: [echo]\n    bogus: ${i}\n`,
    ).join("");
    bad.write({ "reprise.yaml": `version: 1\ntasks:\n${tasks}workflows: { w: { nodes: {} } }\n` });
    const invalid = bad.commit("invalid again");
    // The check run is posted with its first 50 annotations; sending the rest fails.
    fake.failNext("PATCH", /\/check-runs\/\d+$/, 422, 1);
    const sent = await send(
      "push",
      pushPayload({ repo: "acme/bad", branch: "main", before: ZERO, after: invalid }),
    );
    await until(
      "the retried delivery",
      async () => (await store.deliveries.get(sent.id))?.processedAt,
    );
    expect((await store.deliveries.get(sent.id))?.attempts).toBe(2);
    // One check run, not two: the retry found its own (external_id = the delivery) and sent only
    // the annotations the first attempt had not.
    const runs = fake.checkRuns.filter(
      (c) => c.name === "reprise/register" && c.head_sha === invalid,
    );
    expect(runs).toHaveLength(1);
    expect(runs[0]?.external_id).toBe(sent.id);
    const errors = Number(/invalid: (\d+) errors/.exec(runs[0]?.output?.title ?? "")?.[1]);
    expect(errors).toBeGreaterThan(50);
    expect(runs[0]?.annotations).toHaveLength(errors);
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

describe("pull requests, check-run buttons, /run and /cancel, big trees, crashes", () => {
  const SPEC = `version: 1
defaults: { image: node:20-slim }
tasks:
  hello:
    command: [node, -e, "require('fs').writeFileSync(process.env.REPRISE_OUTPUTS, JSON.stringify({ greeting: 'hi ' + process.env.REPRISE_INPUT_WHO }))"]
    sources: [src/**]
    inputs: { who: string }
    outputs: { greeting: string }
  slow:
    command: [node, -e, "setTimeout(() => {}, 120000)"]
    sources: [src/deep/**]
workflows:
  greet:
    inputs: { who: { type: string, default: world } }
    nodes: { h: { task: hello, inputs: { who: "\${{ inputs.who }}" } } }
    outputs: { greeting: "\${{ nodes.h.outputs.greeting }}" }
    on:
      pull_request: { branches: [main] }
  wait:
    nodes: { s: { task: slow } }
`;
  let more: ReturnType<typeof tempRepo>;
  let head = "";
  let base = "";
  beforeAll(() => {
    more = tempRepo("reprise-github-more-");
    more.write({
      "reprise.yaml": SPEC,
      "src/a.txt": "a\n",
      "src/deep/b.txt": "b\n",
      "other/c.txt": "c\n",
    });
    base = more.commit("spec");
    more.git("checkout", "-q", "-b", "feature");
    more.write({ "src/a.txt": "a2\n" });
    head = more.commit("change a");
    more.git("checkout", "-q", "main");
    fake.addRepo({
      fullName: "acme/more",
      dir: more.dir,
      installationId: 2,
      permissions: { ada: "admin" },
      pulls: {
        3: { head: "feature", base: "main" },
        4: { head: "feature", base: "main", fork: "eve/more" },
      },
    });
    fake.addRepo({ fullName: "acme/big", dir: more.dir, installationId: 2, truncated: true });
  });
  afterAll(() => more.remove());

  const prPayload = (n: number, forkName?: string) => {
    const p = example("pull_request", (e) => e.action === "opened");
    const repository = {
      ...(p.repository as object),
      name: "more",
      full_name: "acme/more",
      owner: { login: "acme" },
    };
    p.number = n;
    p.repository = repository;
    p.pull_request = {
      ...(p.pull_request as object),
      number: n,
      head: { sha: head, ref: "feature", repo: { full_name: forkName ?? "acme/more" } },
      base: { sha: base, ref: "main", repo: { full_name: "acme/more" } },
    };
    p.installation = { id: 2 };
    p.sender = { login: "ada", type: "User" };
    return p;
  };

  it("starts on.pull_request workflows at the head, but not for a fork", async () => {
    await send("pull_request", prPayload(4, "eve/more"));
    await settled();
    expect(await store.executions.list({ repo: repoKey("acme/more") })).toEqual([]);
    await send("pull_request", prPayload(3));
    await settled();
    const [exec] = await store.executions.list({ repo: repoKey("acme/more") });
    expect(exec).toMatchObject({
      sha: head,
      workflow: "greet",
      trigger: { kind: "pull_request", pr: 3 },
    });
    const run = await completed("reprise/greet", head);
    expect(run.conclusion).toBe("success");
    expect(run.output?.summary).toContain('"greeting": "hi world"');
  });

  it("relaunches from the check run's Re-run and Relaunch buttons", async () => {
    const [parent] = await store.executions.list({ repo: repoKey("acme/more") });
    for (const action of ["rerequested", "requested_action"] as const) {
      const p = checkRunPayload({
        repo: "acme/more",
        action,
        checkRunName: "reprise/greet",
        externalId: parent?.id as string,
        user: "ada",
      });
      (p.repository as { owner: unknown }).owner = { login: "acme" };
      p.installation = { id: 2 };
      await send("check_run", p);
    }
    await settled();
    const children = (await store.executions.list({ repo: repoKey("acme/more") })).filter(
      (e) => e.parentId === parent?.id,
    );
    expect(children.map((c) => c.trigger.kind).sort()).toEqual(["check_run", "check_run"]);
  });

  it("/run starts a workflow with inputs at the pinned head; /cancel stops one", async () => {
    await send(
      "issue_comment",
      commentPayload({
        repo: "acme/more",
        pr: 3,
        body: "/run greet who=octocat",
        user: "ada",
        installationId: 2,
      }),
    );
    await settled();
    expect(fake.comments.at(-1)?.body).toMatch(
      /^Started `greet` as \[.+\]\(https:\/\/reprise.test\/executions\/.+\) at /,
    );
    const [started] = await store.executions.list({
      repo: repoKey("acme/more"),
      workflow: "greet",
      limit: 1,
    });
    expect(started).toMatchObject({
      sha: head,
      inputs: { who: "octocat" },
      trigger: { kind: "comment", actor: "ada", pr: 3 },
    });

    await send(
      "issue_comment",
      commentPayload({
        repo: "acme/more",
        pr: 3,
        body: "/run wait",
        user: "ada",
        installationId: 2,
      }),
    );
    await settled();
    await send(
      "issue_comment",
      commentPayload({ repo: "acme/more", pr: 3, body: "/cancel", user: "ada", installationId: 2 }),
    );
    await settled();
    expect(fake.comments.at(-1)?.body).toMatch(/^Cancelling /);
    const cancelled = await completed("reprise/wait", head);
    expect(cancelled.conclusion).toBe("cancelled");

    await send(
      "issue_comment",
      commentPayload({
        repo: "acme/more",
        pr: 3,
        body: "/run nope",
        user: "ada",
        installationId: 2,
      }),
    );
    await settled();
    expect(fake.comments.at(-1)?.body).toMatch(
      /`\/run`: no workflow "nope" at .* \(its workflows: greet, wait\)/,
    );
  });

  it("a /relaunch whose reply GitHub refused is retried without relaunching twice", async () => {
    const [parent] = await store.executions.list({
      repo: repoKey("acme/more"),
      workflow: "greet",
      limit: 1,
    });
    const replies = fake.comments.length;
    fake.failNext("POST", /\/issues\/3\/comments$/, 422, 1);
    const sent = await send(
      "issue_comment",
      commentPayload({
        repo: "acme/more",
        pr: 3,
        body: `/relaunch ${parent?.id}`,
        user: "ada",
        installationId: 2,
      }),
    );
    const done = await until(
      "the retried comment",
      async () => (await store.deliveries.get(sent.id))?.processedAt,
    );
    expect(done).toBeDefined();
    const children = (await store.executions.list({ repo: repoKey("acme/more"), pr: 3 })).filter(
      (e) => e.parentId === parent?.id && e.trigger.kind === "comment",
    );
    expect(children).toHaveLength(1);
    expect(fake.comments.length).toBe(replies + 1);
    expect(fake.comments.at(-1)?.body).toContain(`as [${children[0]?.id}]`);
    expect(fake.checkRuns.filter((c) => c.external_id === children[0]?.id)).toHaveLength(1);
  });

  it("walks only the directories the sources need when GitHub truncates the tree", async () => {
    await send(
      "push",
      pushPayload({
        repo: "acme/more",
        branch: "main",
        before: ZERO,
        after: base,
        installationId: 2,
      }),
    );
    await settled();
    fake.resetCalls();
    await send(
      "push",
      pushPayload({
        repo: "acme/big",
        branch: "main",
        before: ZERO,
        after: base,
        installationId: 2,
      }),
    );
    await settled();
    const big = await store.versions.get(repoKey("acme/big"), base);
    const whole = await store.versions.get(repoKey("acme/more"), base);
    expect(big?.status).toBe("registered");
    // Same commit, same digests, whichever way the tree was read.
    expect(big?.specDigest).toBe(whole?.specDigest);
    expect(big?.tasks).toEqual(whole?.tasks);
    // The truncated root, the root level, then src/ at once; other/ is never read.
    const trees = fake.calls.filter((c) => c.path.includes("/git/trees/"));
    expect(trees.length).toBe(3);
  });

  it("retries a delivery GitHub failed midway without starting its workflow twice", async () => {
    more.git("checkout", "-q", "feature");
    more.write({ "src/a.txt": "a4\n" });
    const next = more.commit("retry me");
    more.git("checkout", "-q", "main");
    fake.failNext("POST", /\/check-runs$/, 422, 1);
    const p = prPayload(3) as { pull_request: { head: { sha: string } }; action: string };
    p.pull_request.head.sha = next;
    p.action = "synchronize";
    const sent = await send("pull_request", p);
    await until(
      "the retried delivery",
      async () => (await store.deliveries.get(sent.id))?.processedAt,
    );
    const runs = await store.executions.list({ repo: repoKey("acme/more"), sha: next });
    expect(runs).toHaveLength(1);
    expect(fake.checkRuns.filter((c) => c.head_sha === next)).toHaveLength(1);
    expect((await store.deliveries.get(sent.id))?.attempts).toBe(2);
  });

  it("processes a delivery whose processor crashed after claiming it", async () => {
    more.git("checkout", "-q", "main");
    more.write({ "src/a.txt": "a3\n" });
    const next = more.commit("after a crash");
    const id = "crashed-delivery";
    await store.deliveries.record({
      id,
      event: "push",
      action: null,
      payload: pushPayload({
        repo: "acme/more",
        branch: "main",
        before: base,
        after: next,
        installationId: 2,
      }),
    });
    // A replica claimed it for a millisecond and died.
    await store.deliveries.claimNext(1);
    const done = await until("the crashed delivery to be processed", async () => {
      const d = await store.deliveries.get(id);
      return d?.processedAt ? d : undefined;
    });
    expect(done.attempts).toBe(2);
    expect(await store.versions.get(repoKey("acme/more"), next)).toMatchObject({
      status: "registered",
    });
  });
});

describe("a client's registration before the App's push", () => {
  const SPEC = `version: 1
defaults: { image: node:20-slim }
tasks:
  hello: { command: [node, -e, "0"], sources: [src/**] }
workflows:
  w: { nodes: { h: { task: hello } } }
`;
  let race: TempRepo;
  let api: ApiClient;
  const key = () => repoKey("acme/race");
  const call = async (method: string, path: string, body: unknown, bearer: string) => {
    const res = await fetch(`${served.url}/api/v1/repos/${encodeURIComponent(key())}${path}`, {
      method,
      headers: { authorization: `Bearer ${bearer}`, "content-type": "application/json" },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    // biome-ignore lint/suspicious/noExplicitAny: the test reads arbitrary JSON documents
    return { status: res.status, body: (await res.json()) as Record<string, any> };
  };
  const workflowToken = (branch: string) =>
    oidc.token("acme/race", { claims: { ref: `refs/heads/${branch}` } });
  const latest = async (branch: string) =>
    (await store.versions.latestOnBranch(key(), branch))?.sha ?? null;
  let a = "";
  let b = "";
  let writeToken = "";
  let tokenId = "";

  beforeAll(async () => {
    race = tempRepo("reprise-github-race-");
    race.write({ "reprise.yaml": SPEC, "src/a.txt": "a\n" });
    a = race.commit("a");
    race.git("checkout", "-q", "-b", "feature");
    race.write({ "src/a.txt": "b\n" });
    b = race.commit("b");
    fake.addRepo({ fullName: "acme/race", dir: race.dir, permissions: { ada: "write" } });
    const created = await store.tokens.create({ repos: [key()], readOnly: false });
    writeToken = created.token;
    tokenId = created.record.id;
    api = new ApiClient({ server: served.url, token: writeToken });
  });
  afterAll(() => race.remove());

  it("App's push after a client's registration still records its branch", async () => {
    await send("push", pushPayload({ repo: "acme/race", branch: "main", before: ZERO, after: a }));
    await settled();
    expect(await latest("main")).toBe(a);
    // A write token registers the feature commit first, claiming it is main's.
    expect(await ensureRegistered(api, key(), race.dir, b, "main")).toBe("registered");
    expect(await latest("main")).toBe(a);

    await send(
      "push",
      pushPayload({ repo: "acme/race", branch: "feature", before: ZERO, after: b }),
    );
    await settled();
    expect(checkRun("reprise/register", b)).toMatchObject({ conclusion: "success" });
    const v = await store.versions.get(key(), b);
    expect(v).toMatchObject({ registeredBy: `token:${tokenId}`, ref: "feature" });
    expect(v?.refs.map((r) => [r.ref, r.source])).toEqual([
      ["main", "client"],
      ["feature", "app"],
    ]);
    expect(await latest("feature")).toBe(b);
    expect(await latest("main")).toBe(a);
    const shown = await call("GET", `/versions/${b}`, undefined, writeToken);
    expect(shown.body).toMatchObject({
      ref: "feature",
      registeredBy: `token:${tokenId}`,
      refs: [
        { ref: "main", source: "client", recordedBy: `token:${tokenId}` },
        { ref: "feature", source: "app", recordedBy: "app" },
      ],
    });
    // Starting "the head of main" runs the App's main, not the client's claim.
    const started = await call("POST", "/executions", { workflow: "w", ref: "main" }, writeToken);
    expect([started.status, started.body.sha]).toEqual([201, a]);

    // Merged: the App's push of the known commit to main records it, and activates it.
    await send("push", pushPayload({ repo: "acme/race", branch: "main", before: a, after: b }));
    await settled();
    expect(await latest("main")).toBe(b);
    expect((await store.production.current(key()))?.sha).toBe(b);
  });

  it("lets a workflow run of the default branch the App saw activate, and no other branch's", async () => {
    const path = "/production";
    const feature = await call("POST", path, { sha: a }, await workflowToken("feature"));
    expect(feature.status).toBe(403);
    expect(feature.body.error.message).toContain(
      `this OIDC token is for refs/heads/feature: only a workflow run of ${key()}'s production branch (refs/heads/main) may activate`,
    );
    expect(feature.body.error.message).toContain("REPRISE_OIDC_RULES");
    const main = await call("POST", path, { sha: a }, await workflowToken("main"));
    expect([main.status, main.body.sha]).toEqual([200, a]);

    // The default branch is renamed on GitHub: the next push says so, and trunk is production.
    race.git("checkout", "-q", "-b", "trunk");
    race.write({ "src/a.txt": "c\n" });
    const c = race.commit("c");
    await send(
      "push",
      pushPayload({
        repo: "acme/race",
        branch: "trunk",
        before: ZERO,
        after: c,
        defaultBranch: "trunk",
      }),
    );
    await settled();
    expect(await store.production.branch(key())).toBe("trunk");
    expect((await store.production.current(key()))?.sha).toBe(c);
    const oldMain = await call("POST", path, { sha: a }, await workflowToken("main"));
    expect(oldMain.status).toBe(403);
    expect(oldMain.body.error.message).toContain("(refs/heads/trunk) may activate");
    const trunk = await call("POST", path, { sha: a }, await workflowToken("trunk"));
    expect([trunk.status, trunk.body.sha]).toEqual([200, a]);
  });
});
