/**
 * The seed story told through the GitHub Action: `reprise serve` with the GitHub App configured
 * against the fake GitHub (tasks get their code from its tarballs) and accepting OIDC tokens from
 * a local issuer; the bundled action run as a job step at the broken commit fails with the failing
 * node named, then a relaunch at the fix succeeds with the unchanged nodes from the cache. The
 * check runs it posts with the job's token are read back from the fake.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startWithGitHub } from "../../app/serve.js";
import { loadConfig } from "../../runner/config.js";
import { freePort, runStep, type StepResult } from "../fakes/actions-runner.js";
import { appPrivateKey, FakeGitHub } from "../fakes/github/index.js";
import { type OidcIssuer, startOidcIssuer } from "../fakes/oidc-issuer.js";

const MAKE_STORY = fileURLToPath(
  new URL("../../examples/seed-pipeline/make-story-repo.sh", import.meta.url),
);
const REPOSITORY = "acme/seed";

let fake: FakeGitHub;
let issuer: OidcIssuer;
let served: Awaited<ReturnType<typeof startWithGitHub>>;
let dir: string;
let storyDir: string;
let server: string;
const sha: Record<string, string> = {};

beforeAll(async () => {
  fake = await FakeGitHub.start();
  dir = mkdtempSync(join(tmpdir(), "reprise-action-story-"));
  storyDir = join(dir, "story");
  for (const line of execFileSync("bash", [MAKE_STORY, storyDir], { encoding: "utf8" })
    .trim()
    .split("\n")) {
    const [tag, s] = line.split(" ");
    sha[tag as string] = s as string;
  }
  fake.addRepo({ fullName: REPOSITORY, dir: storyDir });
  const port = await freePort();
  server = `http://127.0.0.1:${port}`;
  issuer = await startOidcIssuer(server);
  served = await startWithGitHub(
    loadConfig({
      ...process.env,
      DATABASE_URL: "",
      REPRISE_DATA_DIR: join(dir, "data"),
      HOST: "127.0.0.1",
      PORT: String(port),
      LOG_LEVEL: "silent",
      APP_ID: "42",
      PRIVATE_KEY: appPrivateKey(),
      WEBHOOK_SECRET: "secret",
      GHE_HOST: fake.host,
      GHE_PROTOCOL: "http",
      REPRISE_PUBLIC_URL: server,
      REPRISE_OIDC_ISSUER: issuer.issuer,
      REPRISE_OIDC_AUDIENCE: server,
    }),
    { tuning: { tickMs: 100 } },
  );
}, 90_000);

afterAll(async () => {
  await served?.close();
  await fake?.close();
  await issuer?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** A step of a job of acme/seed at `at`, as GitHub Enterprise (the fake) runs it. */
function step(at: string, inputs: Record<string, string>): Promise<StepResult> {
  const oidc = issuer.actionsEndpoint(REPOSITORY);
  return runStep({
    inputs: { server, "github-token": "ghs_job_token", ...inputs },
    env: {
      GITHUB_REPOSITORY: REPOSITORY,
      GITHUB_SERVER_URL: `http://${fake.host}`,
      GITHUB_API_URL: fake.baseUrl,
      GITHUB_SHA: at,
      GITHUB_REF: "refs/heads/main",
      GITHUB_REF_NAME: "main",
      GITHUB_WORKSPACE: storyDir,
      ACTIONS_ID_TOKEN_REQUEST_URL: oidc.url,
      ACTIONS_ID_TOKEN_REQUEST_TOKEN: oidc.token,
    },
    cwd: storyDir,
    scratch: dir,
  });
}

const checkRun = (headSha: string) =>
  fake.checkRuns.filter((c) => c.name === "reprise/train" && c.head_sha === headSha).at(-1);

describe("the seed story through the GitHub Action", () => {
  let first = "";

  it("fails the step at the broken commit, naming the failed node, with a failed check run", async () => {
    const r = await step(sha.broken as string, { workflow: "train" });
    expect(r.code, r.stdout).toBe(1);
    expect(r.stdout).toMatch(/::error::.*node "train" \(task train\) failed/);
    expect(r.outputs.status).toBe("FAILED");
    first = r.outputs["execution-id"] as string;
    expect(first).toMatch(/.+/);
    expect(r.outputs.url).toBe(`${server}/executions/${first}`);
    const check = checkRun(sha.broken as string);
    expect(check).toMatchObject({
      status: "completed",
      conclusion: "failure",
      external_id: first,
      details_url: `${server}/executions/${first}`,
    });
    expect(check?.output?.title).toBe("failed at train");
    expect(check?.output?.text).toContain("Log of `train`");
    expect(r.summary).toContain("reprise/train: failed at train");
  }, 180_000);

  it("relaunched at the fix, succeeds with prepare and featurize from the cache", async () => {
    const r = await step(sha.fixed as string, { "relaunch-of": first });
    expect(r.code, r.stdout).toBe(0);
    expect(r.outputs.status).toBe("SUCCEEDED");
    expect(JSON.parse(r.outputs.outputs as string)).toMatchObject({
      r2: expect.any(Number),
      passed: true,
    });
    expect(r.stdout).toMatch(new RegExp(`prepare: cached from ${first}/prepare`));
    expect(r.stdout).toMatch(new RegExp(`featurize: cached from ${first}/featurize`));
    const check = checkRun(sha.fixed as string);
    expect(check).toMatchObject({ status: "completed", conclusion: "success" });
    expect(check?.output?.title).toBe("succeeded: 2 ran, 2 cached");
    expect(r.summary).toContain("cached from");
  }, 180_000);
});
