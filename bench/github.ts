/**
 * The GitHub App's delivery path (DESIGN.md section 8): 1,000 signed push deliveries to 100
 * repositories, sent over loopback HTTP as fast as it allows (16 in flight: more only queues, since
 * answer time = in flight / throughput; BENCH_GITHUB_IN_FLIGHT changes it), to the App's real
 * webhook handler on real Postgres, with the fake GitHub of the tests serving trees, blobs and
 * check runs. Measured: deliveries answered per second and the p99 answer time (the answer comes
 * after the signature check and the inbox insert, before any work); then the time until every
 * delivery is processed. Checked: every push registered once, one `reprise/register` check run
 * each, and 100 redeliveries of ids already seen change nothing.
 *
 * Floor, same run, same client and load: a bare node:http server that reads the body and answers
 * 202 (no signature check, no database).
 */
import { execFileSync, fork } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { serve } from "@hono/node-server";
import { pino } from "pino";
import { openStore } from "../db/store.js";
import { GitHubApp } from "../runner/github/app.js";
import { appPrivateKey, FakeGitHub, pushPayload } from "../test/fakes/github/index.js";
import type { SendResult } from "./github-sender.js";
import type { Row } from "./lib.js";
import { adminUrl, withScratchDatabases } from "./scratch-db.js";

const REPOS = 100;
const PUSHES_PER_REPO = 10;
const IN_FLIGHT = Number(process.env.BENCH_GITHUB_IN_FLIGHT ?? 16);
const SECRET = "bench-secret";
const ZERO = "0".repeat(40);
/** Deliveries processed at once: GitHub paces writes per installation at one a second. */
const CONCURRENCY = Number(process.env.BENCH_GITHUB_CONCURRENCY ?? 8);

export async function benchGitHub(): Promise<Row[]> {
  return withScratchDatabases(adminUrl(), ["github"], "bench/github", async ([url]) => {
    const tmp = mkdtempSync(join(tmpdir(), "reprise-bench-github-"));
    const fake = await FakeGitHub.start();
    const opened = await openStore({ databaseUrl: url as string, migrate: true, poolSize: 10 });
    const app = new GitHubApp({
      config: {
        appId: 1,
        privateKey: appPrivateKey(),
        webhookSecret: SECRET,
        baseUrl: fake.baseUrl,
      },
      host: fake.host,
      store: opened.store,
      executor: { logTail: async () => null },
      publicUrl: null,
      log: pino({ level: "silent" }),
      concurrency: CONCURRENCY,
      tickMs: 200,
    });
    const server = serve({ fetch: (req) => app.webhooks(req), hostname: "127.0.0.1", port: 0 });
    const floor = createServer((req, res) => {
      req.resume();
      req.on("end", () => {
        res.writeHead(202, { "content-type": "application/json" });
        res.end('{"stored":true}');
      });
    });
    try {
      await new Promise<void>((r) => floor.listen(0, "127.0.0.1", r));
      await new Promise<void>((r) =>
        server.listening ? r() : server.once("listening", () => r()),
      );
      const appUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const floorUrl = `http://127.0.0.1:${(floor.address() as AddressInfo).port}`;

      const shas = gitRepo(join(tmp, "repo"));
      for (let r = 0; r < REPOS; r++)
        fake.addRepo({ fullName: `bench/r${r}`, dir: join(tmp, "repo"), installationId: r + 1 });
      const payloads: unknown[] = [];
      for (let i = 0; i < PUSHES_PER_REPO; i++)
        for (let r = 0; r < REPOS; r++)
          payloads.push(
            pushPayload({
              repo: `bench/r${r}`,
              branch: "feature",
              before: i === 0 ? ZERO : (shas[i - 1] as string),
              after: shas[i] as string,
              installationId: r + 1,
            }),
          );

      // Floor first (also warms the client), then the App; processing starts with the first answer.
      const floorRun = await send(floorUrl, payloads);
      // BENCH_GITHUB_LATE_START=1: answer every delivery before any processing starts (the
      // answer path alone, for comparison).
      const late = process.env.BENCH_GITHUB_LATE_START === "1";
      if (!late) app.start();
      const started = performance.now();
      const appRun = await send(appUrl, payloads);
      if (late) app.start();
      const redelivered = await send(appUrl, payloads.slice(0, 100), appRun.ids.slice(0, 100));
      await app.idle(600_000);
      const drained = performance.now() - started;

      const stored = appRun.statuses.filter((s) => s === 202).length;
      const repeats = redelivered.statuses.filter((s) => s === 200).length;
      let versions = 0;
      for (let r = 0; r < REPOS; r++)
        versions += (await opened.store.versions.list(`${fake.host}/bench/r${r}`, { limit: 100 }))
          .length;
      const checks = fake.checkRuns.filter((c) => c.name === "reprise/register").length;
      const total = payloads.length;
      const correct = stored === total && repeats === 100 && versions === total && checks === total;
      process.stderr.write(
        `bench/github: ${stored}/${total} stored, ${repeats}/100 redeliveries recognised, ${versions} versions, ${checks} check runs, all processed in ${(drained / 1000).toFixed(1)} s; ${fake.count("GET", /\/git\/(trees|blobs)\//)} reads, ${fake.tokensIssued} installation tokens\n`,
      );
      const target = 50;
      return [
        {
          figure: `github: ${total} push deliveries answered (${REPOS} repos, ${IN_FLIGHT} in flight)`,
          value: total / (appRun.ms / 1000),
          unit: "deliveries/s",
          peer: "bare node:http 202",
          peerValue: total / (floorRun.ms / 1000),
          target: "all registered once, none lost",
          met: correct,
        },
        {
          figure: "github: p99 answer time",
          value: p(appRun.times, 0.99),
          peer: "bare node:http p99",
          peerValue: p(floorRun.times, 0.99),
          target: `< ${target} ms`,
          met: p(appRun.times, 0.99) < target,
        },
        {
          figure: `github: all ${total} processed (register + check run)`,
          value: drained,
          peer: "answering them",
          peerValue: appRun.ms,
          target: "reported",
          met: correct,
        },
      ];
    } finally {
      await app.close();
      server.close();
      floor.close();
      await fake.close();
      await opened.close();
      rmSync(tmp, { recursive: true, force: true });
    }
  });
}

/** Sends every payload, IN_FLIGHT at a time, from a process of its own; answer times in ms. */
function send(url: string, payloads: unknown[], ids?: string[]): Promise<SendResult> {
  const child = fork(fileURLToPath(new URL("./github-sender.ts", import.meta.url)), [], {
    stdio: ["ignore", "inherit", "inherit", "ipc"],
    execArgv: process.execArgv,
  });
  return new Promise((resolve, reject) => {
    child.once("message", (r) => resolve(r as SendResult));
    child.once("exit", (code) => {
      if (code !== 0) reject(new Error(`the sender exited with ${code}`));
    });
    child.send({
      url,
      secret: SECRET,
      bodies: payloads.map((p) => JSON.stringify(p)),
      ids: ids ?? null,
      inFlight: IN_FLIGHT,
    });
  });
}

function p(values: number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * q))] as number;
}

/** One repository with a commit per push; no workflow runs on push, so only registration works. */
function gitRepo(dir: string): string[] {
  const env = {
    ...process.env,
    GIT_CONFIG_NOSYSTEM: "1",
    GIT_CONFIG_GLOBAL: "/dev/null",
    GIT_AUTHOR_NAME: "Bench",
    GIT_AUTHOR_EMAIL: "bench@example.com",
    GIT_COMMITTER_NAME: "Bench",
    GIT_COMMITTER_EMAIL: "bench@example.com",
  };
  const git = (...args: string[]) =>
    execFileSync("git", ["-C", dir, ...args], { env, encoding: "utf8" }).trim();
  execFileSync("git", ["init", "-q", "-b", "main", dir], { env });
  const shas: string[] = [];
  for (let i = 0; i < PUSHES_PER_REPO; i++) {
    writeFileSync(
      join(dir, "reprise.yaml"),
      `version: 1\ntasks:\n  t:\n    image: "busybox@sha256:${"b".repeat(64)}"\n    command: [echo, "${i}"]\n    sources: [reprise.yaml]\nworkflows:\n  w:\n    nodes: { a: { task: t } }\n`,
    );
    git("add", "-A");
    git("commit", "-q", "-m", `push ${i}`);
    shas.push(git("rev-parse", "HEAD"));
  }
  return shas;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { printTable } = await import("./lib.js");
  printTable(await benchGitHub());
}
