/**
 * The GitHub App's delivery path (docs/design.md section 8, issue 9 "10,000 deliveries with 10%
 * duplicates"): 10,000 signed push deliveries to 100 repositories, 9,000 unique and 1,000
 * redeliveries of ids already in the burst (same id, same body; spread through it, some arriving
 * while their original is still being stored), sent over loopback HTTP as fast as it allows
 * (16 in flight: more only queues, since answer time = in flight / throughput;
 * BENCH_GITHUB_IN_FLIGHT changes it), to the App's real webhook handler on real Postgres, with
 * the fake GitHub of the tests serving trees, blobs and check runs. Measured: deliveries answered
 * per second and the p99 answer time (the answer comes after the signature check and the inbox
 * insert, before any work); then the time until every delivery is processed. Checked: exactly the
 * unique ones processed: 9,000 answered 202 and 1,000 answered 200, 9,000 inbox rows, every push
 * registered once and one `reprise/register` check run per pushed commit.
 * BENCH_GITHUB_PUSHES (pushes per repository, default 90) makes it smaller.
 *
 * Floor, same run, same client and load: a bare node:http server that reads the body and answers
 * 202 (no signature check, no database).
 */
import { fork } from "node:child_process";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";
import { serve } from "@hono/node-server";
import { sql } from "drizzle-orm";
import { rows } from "../db/query.js";
import { openStore } from "../db/store.js";
import { pushSeries } from "../test/fakes/git-repo.js";
import { FakeGitHub, pushBurst, testGitHubApp } from "../test/fakes/github/index.js";
import type { SendResult } from "./github-sender.js";
import type { Row } from "./lib.js";
import { adminUrl, withScratchDatabases } from "./scratch-db.js";

const REPOS = 100;
const PUSHES_PER_REPO = Number(process.env.BENCH_GITHUB_PUSHES ?? 90);
/** One redelivery for every nine unique deliveries: 10% of the burst. */
const DUPLICATE_EVERY = 9;
const IN_FLIGHT = Number(process.env.BENCH_GITHUB_IN_FLIGHT ?? 16);
const SECRET = "bench-secret";
/** Deliveries processed at once: GitHub paces writes per installation at one a second. */
const CONCURRENCY = Number(process.env.BENCH_GITHUB_CONCURRENCY ?? 8);

export async function benchGitHub(): Promise<Row[]> {
  return withScratchDatabases(adminUrl(), ["github"], "bench/github", async ([url]) => {
    const { repo, shas } = pushSeries(PUSHES_PER_REPO);
    const fake = await FakeGitHub.start();
    const opened = await openStore({ databaseUrl: url as string, migrate: true, poolSize: 10 });
    const app = testGitHubApp({
      store: opened.store,
      fake,
      secret: SECRET,
      host: fake.host,
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

      // No workflow runs on push, so only registration works.
      for (let r = 0; r < REPOS; r++)
        fake.addRepo({ fullName: `bench/r${r}`, dir: repo.dir, installationId: r + 1 });
      const unique = pushBurst("bench/r", REPOS, shas);
      // After every ninth unique delivery, a redelivery of one sent 1 to 200 places before: some
      // still in flight (the same group commit), most long stored.
      const burst: typeof unique = [];
      unique.forEach((d, k) => {
        burst.push(d);
        if ((k + 1) % DUPLICATE_EVERY === 0) {
          const back = 1 + ((k * 37) % Math.min(k + 1, 200));
          burst.push(unique[k + 1 - back] as (typeof unique)[number]);
        }
      });
      const payloads = burst.map((d) => d.payload);
      const ids = burst.map((d) => d.id);

      // Floor first (also warms the client), then the App; processing starts with the first answer.
      const floorRun = await send(floorUrl, payloads);
      // BENCH_GITHUB_LATE_START=1: answer every delivery before any processing starts (the
      // answer path alone, for comparison).
      const late = process.env.BENCH_GITHUB_LATE_START === "1";
      if (!late) app.start();
      const started = performance.now();
      const appRun = await send(appUrl, payloads, ids);
      if (late) app.start();
      await app.idle(1_800_000);
      const drained = performance.now() - started;

      const total = burst.length;
      const stored = appRun.statuses.filter((s) => s === 202).length;
      const repeats = appRun.statuses.filter((s) => s === 200).length;
      const [inbox] = await rows<{ n: number; done: number }>(
        opened.store.db,
        sql`select count(*)::int as n, count(*) filter (where processed_at is not null and outcome not like 'failed%')::int as done from deliveries`,
      );
      let versions = 0;
      for (let r = 0; r < REPOS; r++)
        versions += (
          await opened.store.versions.list(`${fake.host}/bench/r${r}`, {
            limit: PUSHES_PER_REPO + 10,
          })
        ).length;
      const perCommit = new Map<string, number>();
      for (const c of fake.checkRuns)
        if (c.name === "reprise/register")
          perCommit.set(
            `${c.repo}@${c.head_sha}`,
            (perCommit.get(`${c.repo}@${c.head_sha}`) ?? 0) + 1,
          );
      const checkedOnce = [...perCommit.values()].filter((n) => n === 1).length;
      const n = unique.length;
      const correct =
        stored === n &&
        repeats === total - n &&
        inbox?.n === n &&
        inbox?.done === n &&
        versions === n &&
        checkedOnce === n &&
        perCommit.size === n;
      process.stderr.write(
        `bench/github: ${total} deliveries (${n} unique): ${stored} stored (202), ${repeats} recognised as seen (200), inbox ${inbox?.n} rows / ${inbox?.done} processed, ${versions} versions, ${checkedOnce}/${n} commits with exactly one register check run; all processed in ${(drained / 1000).toFixed(1)} s; ${fake.count("GET", /\/git\/(trees|blobs)\//)} reads, ${fake.tokensIssued} installation tokens\n`,
      );
      const target = 50;
      return [
        {
          figure: `github: ${total} push deliveries answered, ${total - n} of them duplicates (${REPOS} repos, ${IN_FLIGHT} in flight)`,
          value: total / (appRun.ms / 1000),
          unit: "deliveries/s",
          peer: "bare node:http 202",
          peerValue: total / (floorRun.ms / 1000),
          target: "exactly the unique ones processed",
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
          figure: `github: all ${n} unique processed (register + check run)`,
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
      repo.remove();
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

if (import.meta.url === `file://${process.argv[1]}`) {
  const { printTable } = await import("./lib.js");
  printTable(await benchGitHub());
}
