/**
 * Bounded disk on the local executor (runner/executors/local/eviction.ts): checkouts and ended
 * attempt directories go least recently used first while over REPRISE_CACHE_MAX_BYTES, and when
 * unused for longer than REPRISE_CACHE_MAX_AGE_DAYS (at the executor's start too); a running
 * attempt and the checkout it runs in never go; an evicted attempt's log says it was evicted.
 * Real repositories, real checkouts, real processes; ages set with utimes.
 */
import {
  existsSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { attemptName } from "../../core/engine/attempt-name.js";
import { localRepoKey } from "../../core/version/repo-key.js";
import { ConfigError, loadConfig } from "../../runner/config.js";
import { type CacheEntry, chooseVictims } from "../../runner/executors/local/eviction.js";
import {
  baseEnvFrom,
  gitArchiveCheckout,
  LocalExecutor,
} from "../../runner/executors/local/index.js";
import type { AttemptOutcome, LaunchSpec } from "../../runner/executors/types.js";
import {
  checkoutInUse,
  evictCheckout,
  evicted,
  useCheckout,
} from "../../runner/sources/materialise.js";
import { type TempRepo, tempRepo } from "../fakes/git-repo.js";
import { until } from "../fakes/github/index.js";

const NODE = process.execPath;
const UNSANDBOXED = { kind: "none", why: "REPRISE_SANDBOX=none" } as const;
const HOUR = 60 * 60 * 1000;
const DAY = 24 * HOUR;

/** Waits until the file named by argv[2] exists, then succeeds. */
const WAIT_TASK = `import { existsSync } from "node:fs";
while (!existsSync(process.argv[2])) await new Promise((r) => setTimeout(r, 20));
`;

describe("local executor eviction", () => {
  let repo: TempRepo;
  let root: string;
  let shas: string[];
  const executors: LocalExecutor[] = [];
  let seq = 0;

  beforeAll(() => {
    repo = tempRepo("reprise-evict-repo-");
    shas = ["a", "b", "c", "d"].map((tag) => {
      repo.write({ "tasks/wait.mjs": WAIT_TASK, "data.txt": tag.repeat(20_000) });
      return repo.commit(tag);
    });
  });
  afterAll(async () => {
    for (const e of executors) await e.close();
    if (root) rmSync(root, { recursive: true, force: true });
    repo?.remove();
  });

  function executor(cache?: { maxBytes?: number; maxAgeDays?: number }): LocalExecutor {
    const e = new LocalExecutor({
      root,
      checkout: gitArchiveCheckout(repo.dir, join(root, "checkouts")),
      baseEnv: baseEnvFrom(process.env),
      sandbox: UNSANDBOXED,
      ...(cache ? { cache } : {}),
      warn: (m) => {
        throw new Error(m);
      },
    });
    executors.push(e);
    return e;
  }

  function spec(sha: string, go: string): LaunchSpec {
    const executionId = `e${++seq}`;
    return {
      handle: attemptName(executionId, "node", 1),
      repo: localRepoKey(repo.dir),
      sha,
      executionId,
      nodeId: "node",
      attempt: 1,
      taskName: "task",
      taskDigest: `sha256:${"d".repeat(64)}`,
      image: "node:20-slim",
      command: [NODE, "tasks/wait.mjs", go],
      env: {},
      workdir: ".",
      inputs: {},
      outputs: {},
      timeoutSeconds: 60,
      secrets: {},
    };
  }

  const checkoutOf = (sha: string) => join(root, "checkouts", sha);
  const attemptOf = (s: LaunchSpec) => join(root, "attempts", s.handle);
  const age = (path: string, ms: number) => {
    const t = new Date(Date.now() - ms);
    utimesSync(path, t, t);
  };

  /** Runs one attempt to its end (its outcome collected), at `sha`. */
  async function finished(on: LocalExecutor, sha: string): Promise<[LaunchSpec, AttemptOutcome]> {
    const go = join(root, `go-${seq}-done`);
    writeFileSync(go, "");
    const s = spec(sha, go);
    await on.launch(s);
    const outcome = await on.wait(s);
    expect(outcome).toMatchObject({ ok: true });
    return [s, outcome];
  }

  it("evicts least recently used first while over REPRISE_CACHE_MAX_BYTES, never a running attempt or its checkout, and says so in the evicted log", async () => {
    root = mkdtempSync(join(tmpdir(), "reprise-evict-"));
    const runner = executor();
    const [a, aOutcome] = await finished(runner, shas[0] as string);
    const [b] = await finished(runner, shas[1] as string);
    // A running attempt at C, its checkout and directory made the oldest of all.
    const go = join(root, "go-c");
    const c = spec(shas[2] as string, go);
    await runner.launch(c);
    const running = runner.wait(c);
    age(checkoutOf(shas[2] as string), 10 * HOUR);
    age(attemptOf(c), 10 * HOUR);
    // Least recently used first: A's checkout, A's attempt, B's checkout, B's attempt.
    age(checkoutOf(shas[0] as string), 5 * HOUR);
    age(attemptOf(a), 4 * HOUR);
    age(checkoutOf(shas[1] as string), 3 * HOUR);
    age(attemptOf(b), 2 * HOUR);

    const total = (await executor().evict()).bytes;
    // Three checkouts of 20 kB of data each, and three small attempts.
    expect(total).toBeGreaterThan(3 * 20_000);

    // One byte over: only the least recently used entry goes.
    const oneOver = await executor({ maxBytes: total - 1 }).evict();
    expect(oneOver.evicted.map((e) => [e.kind, e.path, e.why])).toEqual([
      ["checkout", checkoutOf(shas[0] as string), "size"],
    ]);
    expect(existsSync(checkoutOf(shas[0] as string))).toBe(false);

    // No room at all: everything that is not in use, in that order.
    const none = await executor({ maxBytes: 0 }).evict();
    expect(none.evicted.map((e) => [e.kind, e.path])).toEqual([
      ["attempt", attemptOf(a)],
      ["checkout", checkoutOf(shas[1] as string)],
      ["attempt", attemptOf(b)],
    ]);
    expect(existsSync(checkoutOf(shas[2] as string))).toBe(true);
    expect(existsSync(join(attemptOf(c), "log"))).toBe(true);
    // The evicted attempt keeps its place (a late launch does nothing) but none of its files.
    expect(readdirSync(attemptOf(a))).toEqual(["evicted"]);

    // Its log says it was evicted, why and when: the CLI and the API serve this text.
    const note = await runner.logTail(aOutcome.logRef ?? "", 4096);
    expect(note).toMatch(
      /^\[reprise\] this attempt's log was evicted at \d{4}-\d\d-\d\dT.*over 0 bytes \(REPRISE_CACHE_MAX_BYTES\)/,
    );
    await runner.launch(a);
    expect(readdirSync(attemptOf(a))).toEqual(["evicted"]);

    // The running attempt ends well in its checkout; A's checkout comes back for a new attempt.
    writeFileSync(go, "");
    expect(await running).toMatchObject({ ok: true });
    await finished(runner, shas[0] as string);
    expect(existsSync(join(checkoutOf(shas[0] as string), "data.txt"))).toBe(true);
  }, 60_000);

  it("evicts what was unused for longer than REPRISE_CACHE_MAX_AGE_DAYS when an executor starts", async () => {
    root = mkdtempSync(join(tmpdir(), "reprise-evict-age-"));
    const runner = executor();
    const [old, outcome] = await finished(runner, shas[3] as string);
    const [recent] = await finished(runner, shas[1] as string);
    age(checkoutOf(shas[3] as string), 15 * DAY);
    age(attemptOf(old), 15 * DAY);
    age(checkoutOf(shas[1] as string), 13 * DAY);
    age(attemptOf(recent), 13 * DAY);

    // Nothing is asked of it: the new executor's start does it.
    const starting = executor({ maxAgeDays: 14 });
    await until("the old attempt's eviction", () => existsSync(join(attemptOf(old), "evicted")));
    await until("the old checkout's eviction", () => !existsSync(checkoutOf(shas[3] as string)));
    expect(existsSync(checkoutOf(shas[1] as string))).toBe(true);
    expect(existsSync(join(attemptOf(recent), "log"))).toBe(true);
    expect(await starting.logTail(outcome.logRef ?? "", 4096)).toMatch(
      /evicted at .*: unused for more than 14 days \(REPRISE_CACHE_MAX_AGE_DAYS\)/,
    );
  }, 60_000);

  it("never evicts an attempt another runner's wrapper still runs, nor its checkout, however old", async () => {
    root = mkdtempSync(join(tmpdir(), "reprise-evict-other-"));
    const go = join(root, "go-other");
    const s = spec(shas[0] as string, go);
    const first = executor();
    await first.launch(s);
    // The launching runner goes away; the task keeps running (its wrapper outlives it).
    await first.close();
    age(checkoutOf(shas[0] as string), 30 * DAY);
    age(attemptOf(s), 30 * DAY);
    const report = await executor({ maxBytes: 0, maxAgeDays: 1 }).evict();
    expect(report.evicted).toEqual([]);
    expect(existsSync(checkoutOf(shas[0] as string))).toBe(true);
    writeFileSync(go, "");
    expect(await executor().wait(s)).toMatchObject({ ok: true });
  }, 60_000);
});

describe("checkout leases against eviction", () => {
  it("refuses to evict a leased checkout, and refuses a lease while one is being evicted", async () => {
    const dir = mkdtempSync(join(tmpdir(), "reprise-lease-"));
    try {
      const lease = useCheckout(dir);
      expect(lease).not.toBeNull();
      expect(checkoutInUse(dir)).toBe(true);
      expect(await evictCheckout(dir)).toBe(false);
      expect(existsSync(dir)).toBe(true);
      lease?.release();
      lease?.release(); // a second release changes nothing
      expect(checkoutInUse(dir)).toBe(false);

      const eviction = evictCheckout(dir);
      // Begun: a launch now gets no lease, waits for the eviction, then checks out again.
      expect(useCheckout(dir)).toBeNull();
      await evicted(dir);
      expect(await eviction).toBe(true);
      expect(existsSync(dir)).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("REPRISE_CACHE_MAX_BYTES and REPRISE_CACHE_MAX_AGE_DAYS", () => {
  it("default to 20 GiB and 14 days, and say how to fix a bad value", () => {
    expect(loadConfig({ HOME: "/h" })).toMatchObject({
      cacheMaxBytes: 20 * 1024 ** 3,
      cacheMaxAgeDays: 14,
    });
    expect(
      loadConfig({
        HOME: "/h",
        REPRISE_CACHE_MAX_BYTES: "1048576",
        REPRISE_CACHE_MAX_AGE_DAYS: "0.5",
      }),
    ).toMatchObject({ cacheMaxBytes: 1048576, cacheMaxAgeDays: 0.5 });
    const bad = () =>
      loadConfig({ HOME: "/h", REPRISE_CACHE_MAX_BYTES: "20G", REPRISE_CACHE_MAX_AGE_DAYS: "0" });
    expect(bad).toThrow(ConfigError);
    expect(bad).toThrow(/REPRISE_CACHE_MAX_BYTES: must be a whole number of bytes/);
    expect(bad).toThrow(/REPRISE_CACHE_MAX_AGE_DAYS: must be more than 0 days/);
  });
});

describe("chooseVictims", () => {
  const entry = (path: string, usedAt: number, bytes: number, inUse = false): CacheEntry => ({
    kind: "checkout",
    path,
    usedAt,
    bytes,
    inUse,
  });
  const limits = { maxBytes: 100, maxAgeDays: 14 };
  const now = 100 * DAY;

  it("takes the least recently used until within the bytes, skipping those in use", () => {
    const victims = chooseVictims(
      [
        entry("new", now, 40),
        entry("busy", now - 9 * HOUR, 50, true),
        entry("old", now - 3 * HOUR, 30),
        entry("mid", now - 2 * HOUR, 30),
      ],
      limits,
      now,
    );
    expect(victims.map((v) => [v.entry.path, v.why])).toEqual([
      ["old", "size"],
      ["mid", "size"],
    ]);
  });

  it("takes every unused entry past the age, whatever the size, and nothing when within both", () => {
    const victims = chooseVictims(
      [entry("stale", now - 15 * DAY, 1), entry("busy", 0, 1, true), entry("fresh", now, 1)],
      limits,
      now,
    );
    expect(victims.map((v) => [v.entry.path, v.why])).toEqual([["stale", "age"]]);
    expect(chooseVictims([entry("fresh", now, 100)], limits, now)).toEqual([]);
  });
});

// A checkout's age is its directory's mtime, which a lease sets: guard the helper's premise.
it("a lease marks the checkout used now", () => {
  const dir = mkdtempSync(join(tmpdir(), "reprise-touch-"));
  try {
    const t = new Date(Date.now() - 5 * DAY);
    utimesSync(dir, t, t);
    useCheckout(dir)?.release();
    expect(Date.now() - statSync(dir).mtimeMs).toBeLessThan(60_000);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
