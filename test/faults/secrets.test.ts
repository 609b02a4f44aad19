/**
 * Secrets stay secret (issue 9): `reprise serve` with the GitHub App, logging everything (trace),
 * is driven through its happy and unhappy paths — a push that registers and runs, deliveries
 * unsigned, wrongly signed, malformed and replayed, API calls with good, wrong and missing
 * tokens, errors of every kind, metrics. Then everything it said is searched for the App's
 * private key, the webhook secret, the API token and the installation tokens GitHub issued: its
 * logs, every HTTP answer, and every request it made to GitHub (check runs, comments).
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { fileURLToPath } from "node:url";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startWithGitHub } from "../../app/serve.js";
import { loadConfig } from "../../runner/config.js";
import { appPrivateKey, deliver, FakeGitHub, pushPayload, until } from "../fakes/github/index.js";

const MAKE_STORY = fileURLToPath(
  new URL("../../examples/seed-pipeline/make-story-repo.sh", import.meta.url),
);
const WEBHOOK_SECRET = `whsec-${Math.random().toString(36).slice(2)}-${Date.now().toString(36)}`;
const PRIVATE_KEY = appPrivateKey();
/** A line from the middle of the key's base64: any leak of the key contains it. */
const KEY_LINE = PRIVATE_KEY.split("\n")[10] as string;

let fake: FakeGitHub;
let served: Awaited<ReturnType<typeof startWithGitHub>>;
let dir: string;
let apiToken: string;
const said: string[] = [];

beforeAll(async () => {
  fake = await FakeGitHub.start();
  dir = mkdtempSync(join(tmpdir(), "reprise-secrets-"));
  const story = join(dir, "story");
  const tags = execFileSync("bash", [MAKE_STORY, story], { encoding: "utf8" });
  const broken = tags
    .split("\n")
    .find((l) => l.startsWith("broken "))
    ?.split(" ")[1] as string;
  execFileSync("git", ["-C", story, "checkout", "-q", "--detach"]);
  execFileSync("git", ["-C", story, "branch", "-f", "main", broken]);
  fake.addRepo({ fullName: "acme/seed", dir: story, permissions: { ada: "write" } });
  const logs = new Writable({
    write(chunk, _enc, done) {
      said.push(String(chunk));
      done();
    },
  });
  served = await startWithGitHub(
    loadConfig({
      ...process.env,
      DATABASE_URL: "",
      REPRISE_DATA_DIR: join(dir, "data"),
      HOST: "127.0.0.1",
      PORT: "0",
      LOG_LEVEL: "trace",
      APP_ID: "42",
      PRIVATE_KEY,
      WEBHOOK_SECRET,
      GHE_HOST: fake.host,
      GHE_PROTOCOL: "http",
      REPRISE_PUBLIC_URL: "https://reprise.test",
    }),
    { log: pino({ level: "trace" }, logs), tuning: { tickMs: 100 } },
  );
  apiToken = (
    await served.runtime.open.store.tokens.create({
      repos: [`${fake.host}/acme/seed`],
      readOnly: false,
    })
  ).token;
  // The push: registers, activates, runs the broken pipeline (a failure, with its log).
  const push = pushPayload({
    repo: "acme/seed",
    branch: "main",
    before: "0".repeat(40),
    after: broken,
  });
  const sent = await deliver(served.url, "push", push, { secret: WEBHOOK_SECRET, id: "d-1" });
  said.push(JSON.stringify(sent.body));
  await until(
    "the execution's check run",
    () => fake.checkRuns.find((c) => c.name === "reprise/train" && c.status === "completed"),
    90_000,
  );
}, 120_000);

afterAll(async () => {
  await served?.close();
  await fake?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("secrets", () => {
  it("appear in no log line, no answer and no request to GitHub, on any path", async () => {
    const hook = (payload: string, secret: string | null, id: string) =>
      deliver(served.url, "push", null, { secret, id, raw: payload });
    const push = JSON.stringify(
      pushPayload({
        repo: "acme/seed",
        branch: "main",
        before: "0".repeat(40),
        after: "1".repeat(40),
      }),
    );
    const answers = [
      await hook(push, null, "d-2"), // unsigned
      await hook(push, "not-the-secret", "d-3"), // wrongly signed
      await hook("{not json", WEBHOOK_SECRET, "d-4"), // malformed
      await hook(push, WEBHOOK_SECRET, "d-1"), // replayed
      await hook(push, WEBHOOK_SECRET, "d-5"), // a commit GitHub does not have
    ];
    for (const a of answers) said.push(JSON.stringify(a.body));
    const repo = encodeURIComponent(`${fake.host}/acme/seed`);
    for (const [path, token] of [
      [`/api/v1/repos/${repo}/versions`, apiToken],
      [`/api/v1/repos/${repo}/versions`, `${apiToken}x`],
      [`/api/v1/repos/${repo}/executions`, null],
      [`/api/v1/executions/nope`, apiToken],
      [`/api/v1/repos/${repo}/diff?from=x&to=y`, apiToken],
      ["/metrics", null],
      ["/readyz", null],
    ] as const) {
      const res = await fetch(`${served.url}${path}`, {
        headers: token ? { authorization: `Bearer ${token}` } : {},
      });
      said.push(await res.text());
    }
    // The delivery of an unknown commit fails (and is retried later): wait for its first try.
    const inbox = served.runtime.open.store.deliveries;
    await until(
      "d-5 to be tried",
      async () => ((await inbox.get("d-5"))?.attempts ?? 0) > 0,
      30_000,
    );
    const toGitHub = fake.calls.map((c) => JSON.stringify(c.body ?? "")).join("\n");
    const everything = [...said, toGitHub].join("\n");
    // The paths ran: the logs and answers are not empty, the refusals were refusals.
    expect(said.length).toBeGreaterThan(20);
    expect(answers.map((a) => a.status).slice(0, 3)).toEqual([401, 401, 400]);
    const installationTokens = Array.from(
      { length: fake.tokensIssued },
      (_, i) => `ghs_fake_1_${i + 1}`,
    );
    expect(installationTokens.length).toBeGreaterThan(0);
    for (const [name, secret] of [
      ["the webhook secret", WEBHOOK_SECRET],
      ["the App's private key", KEY_LINE],
      ["the API token", apiToken],
      ...installationTokens.map((t) => ["an installation token", t] as const),
    ] as const)
      expect(everything.includes(secret), `${name} leaked`).toBe(false);
  }, 60_000);
});
