/**
 * `reprise serve` with APP_ID, the real process built from the composition root
 * (runner/cli/bin.ts): half-configured it refuses to start and says what to set; configured, it
 * serves the App against the fake GitHub over ONE GitHub client (app/github-client.ts).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { reprise, repriseBackground } from "../fakes/cli.js";
import { appPrivateKey, deliver, FakeGitHub, pushPayload, until } from "../fakes/github/index.js";
import { taskProject } from "../fakes/task-project.js";

const dir = mkdtempSync(join(tmpdir(), "reprise-serve-github-"));
const cleanup: Array<() => Promise<unknown> | unknown> = [];
afterAll(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
  rmSync(dir, { recursive: true, force: true });
});

describe("reprise serve with APP_ID", () => {
  it("refuses to start without WEBHOOK_SECRET, exit 2, naming the variable and the fix", () => {
    const r = reprise(
      {
        cwd: dir,
        env: {
          REPRISE_DATA_DIR: join(dir, "data"),
          APP_ID: "42",
          PRIVATE_KEY: "-----BEGIN RSA PRIVATE KEY-----\nx\n-----END RSA PRIVATE KEY-----\n",
          WEBHOOK_SECRET: undefined,
          DATABASE_URL: undefined,
        },
      },
      "serve",
    );
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(
      "WEBHOOK_SECRET: is not set: set it to the webhook secret configured on the GitHub App",
    );
  });

  it("runs a push's workflow from GitHub's tarball, through the client the delivery's installation is known to", async () => {
    const fake = await FakeGitHub.start();
    cleanup.push(() => fake.close());
    const project = taskProject();
    cleanup.push(() => project.remove());
    const sha = project.commit({
      tasks: { t: project.task() },
      workflows: { ci: { nodes: { a: { task: "t" } }, on: { push: { branches: ["main"] } } } },
    });
    fake.addRepo({ fullName: "acme/one", dir: project.dir, installationId: 3 });
    const secret = "webhook-secret";
    const served = await repriseBackground(
      {
        cwd: dir,
        env: {
          REPRISE_DATA_DIR: join(dir, "served"),
          DATABASE_URL: "",
          HOST: "127.0.0.1",
          PORT: "0",
          REPRISE_AUTH: "none",
          REPRISE_EXECUTOR: "local",
          APP_ID: "42",
          PRIVATE_KEY: appPrivateKey(),
          WEBHOOK_SECRET: secret,
          GHE_HOST: fake.host,
          GHE_PROTOCOL: "http",
        },
      },
      "serve",
    );
    cleanup.push(() => served.stop());
    const push = pushPayload({
      repo: "acme/one",
      branch: "main",
      before: "0".repeat(40),
      after: sha,
      installationId: 3,
    });
    expect((await deliver(served.url, "push", push, { secret })).status).toBe(202);
    const run = await until(
      "the push's check run to complete",
      () => fake.checkRuns.find((c) => c.name === "reprise/ci" && c.status === "completed"),
      90_000,
    );
    expect(run.conclusion, served.stderr()).toBe("success");
    expect(project.runs()).toHaveLength(1);
    // The task's code came from GitHub's tarball of the commit, fetched through the process's
    // one client, which the delivery told the installation: nobody asked GitHub for it.
    expect(fake.count("GET", /^\/repos\/acme\/one\/tarball\//)).toBe(1);
    expect(fake.count("GET", /\/installation$/)).toBe(0);
    expect(fake.count("POST", /^\/app\/installations\/3\/access_tokens$/)).toBe(1);
  });
});
