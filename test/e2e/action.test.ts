/**
 * The GitHub Action as GitHub runs it: the committed bundle action/dist/index.js in a child
 * process with INPUT_*, GITHUB_* and the runner's OIDC token endpoint in its environment, against
 * a live `reprise serve` that accepts OIDC tokens from a local issuer. And the bundle itself:
 * rebuilt, it must equal the committed one.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort, runStep } from "../fakes/actions-runner.js";
import { type Background, ROOT, repriseBackground } from "../fakes/cli.js";
import { type TempRepo, tempRepo } from "../fakes/git-repo.js";
import { type OidcIssuer, startOidcIssuer } from "../fakes/oidc-issuer.js";
import { pipeline } from "../fixtures/specs.js";

const REPOSITORY = "acme/ml";
const KEY = `github.com/${REPOSITORY}`;

describe("the GitHub Action", () => {
  let issuer: OidcIssuer;
  let server: Background;
  let url: string;
  let repo: TempRepo;
  let sha: string;
  let dir: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "reprise-action-"));
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
          REPRISE_OIDC_ISSUER: issuer.issuer,
          REPRISE_OIDC_AUDIENCE: url,
        },
      },
      "serve",
    );
    repo = tempRepo("reprise-action-repo-");
    repo.write({ "reprise.yaml": pipeline(), "prep.py": "1", "fit.py": "2", "lib/util.py": "3" });
    sha = repo.commit("the pipeline");
  }, 90_000);

  afterAll(async () => {
    await server?.stop();
    await issuer?.close();
    repo?.remove();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** The bundled action as a step of a job of REPOSITORY at `sha`, with its OIDC endpoint. */
  function action(inputs: Record<string, string>, env: Record<string, string> = {}) {
    const oidc = issuer.actionsEndpoint(REPOSITORY);
    return runStep({
      inputs: { server: url, ...inputs },
      env: {
        GITHUB_REPOSITORY: REPOSITORY,
        GITHUB_SERVER_URL: "https://github.com",
        GITHUB_SHA: sha,
        GITHUB_REF: "refs/heads/main",
        GITHUB_REF_NAME: "main",
        GITHUB_WORKSPACE: repo.dir,
        ACTIONS_ID_TOKEN_REQUEST_URL: oidc.url,
        ACTIONS_ID_TOKEN_REQUEST_TOKEN: oidc.token,
        ...env,
      },
      cwd: repo.dir,
      scratch: dir,
    });
  }

  it("registers the checked-out commit from its files, starts the workflow with its OIDC token, and sets its outputs", async () => {
    const r = await action({ workflow: "train", inputs: "dataset: d7", wait: "false" });
    expect(r.stdout).toContain(`registered ${sha.slice(0, 12)} from the checkout`);
    expect(r.code).toBe(0);
    expect(r.outputs["execution-id"]).toMatch(/.+/);
    expect(r.outputs.status).toBe("QUEUED");
    expect(r.outputs.url).toBe(`${url}/executions/${r.outputs["execution-id"]}`);
    expect(r.state).toContain("execution<<");
    const res = await fetch(`${url}/api/v1/executions/${r.outputs["execution-id"]}`, {
      headers: { authorization: `Bearer ${await issuer.token(REPOSITORY)}` },
    });
    const doc = (await res.json()) as { repo: string; sha: string; inputs: unknown };
    expect(doc).toMatchObject({ repo: KEY, sha, inputs: { dataset: "d7" } });
    // The second run finds the version registered and does not register it again.
    const again = await action({ workflow: "train", wait: "false" });
    expect(again.code).toBe(0);
    expect(again.stdout).not.toContain("from the checkout");
  }, 60_000);

  it("fails with a message that says what to fix: unknown workflow, bad inputs, unreachable server, refused token", async () => {
    const unknown = await action({ workflow: "nope", wait: "false" });
    expect(unknown.code).toBe(1);
    expect(unknown.stdout).toContain('no workflow "nope"');
    expect(unknown.stdout).toContain("its workflows: train");

    const badType = await action({ workflow: "train", inputs: '{"dataset": 3}', wait: "false" });
    expect(badType.code).toBe(1);
    expect(badType.stdout).toMatch(/input "dataset": .*string/);
    const notMapping = await action({ workflow: "train", inputs: "- a\n- b", wait: "false" });
    expect(notMapping.stdout).toContain("input inputs: must be a mapping");

    const closed = `http://127.0.0.1:${await freePort()}`;
    const unreachable = await action({ workflow: "train", wait: "false", server: closed });
    expect(unreachable.code).toBe(1);
    expect(unreachable.stdout).toContain(`cannot reach the Reprise server at ${closed}`);

    const refused = await action({
      workflow: "train",
      wait: "false",
      "api-token": "rp_not-a-token",
    });
    expect(refused.code).toBe(1);
    expect(refused.stdout).toContain("the Reprise server refused the credential");
  }, 120_000);

  it("is bundled from its sources: a rebuild equals the committed action/dist", () => {
    const out = mkdtempSync(join(dir, "rebuild-"));
    const r = spawnSync(process.execPath, [join(ROOT, "scripts/build-action.mjs"), "--out", out], {
      encoding: "utf8",
    });
    expect(r.status, r.stderr).toBe(0);
    for (const file of ["index.js", "post.js"]) {
      const rebuilt = readFileSync(join(out, file), "utf8");
      const committed = readFileSync(join(ROOT, "action/dist", file), "utf8");
      // Not toBe: a mismatch of two 600 KB strings would print both.
      expect(rebuilt === committed, `action/dist/${file} is stale: run npm run build:action`).toBe(
        true,
      );
    }
  }, 60_000);
});
