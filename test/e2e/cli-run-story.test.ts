/**
 * The seed story through the real CLI on the embedded store (PGlite + local executor): run at
 * `broken` (train fails), relaunch at `fixed` (prepare and featurize from the cache), relaunch at
 * `reshaped` (only select, train and evaluate run). Task runs are counted on the executor's side:
 * one attempt directory per process launched.
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CliResult, ROOT, reprise } from "../fakes/cli.js";

let work: string;
let repo: string;
let env: Record<string, string | undefined>;

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), "reprise-story-"));
  repo = join(work, "repo");
  execFileSync("bash", [join(ROOT, "examples/seed-pipeline/make-story-repo.sh"), repo], {
    stdio: "ignore",
  });
  env = {
    REPRISE_DATA_DIR: join(work, "data"),
    DATABASE_URL: undefined,
    REPRISE_MAX_PARALLEL: "2",
  };
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

interface Doc {
  id: string;
  status: string;
  parent: string | null;
  nodes: Array<{
    id: string;
    status: string;
    cache: string | null;
    attempts: number;
    source: { execution: string; node: string } | null;
    error: { message: string } | null;
  }>;
  outputs: Record<string, unknown>;
}

function doc(r: CliResult): Doc {
  try {
    return JSON.parse(r.stdout) as Doc;
  } catch {
    throw new Error(`not a JSON document (exit ${r.code}):\n${r.stdout}\n${r.stderr}`);
  }
}

const byNode = (d: Doc) => Object.fromEntries(d.nodes.map((n) => [n.id, n]));

/** Process launches per node, counted from the local executor's attempt directories. */
function launches(executionId: string): Record<string, number> {
  const dir = join(work, "data", "local", "attempts");
  const out: Record<string, number> = {};
  if (!existsSync(dir)) return out;
  for (const name of readdirSync(dir)) {
    if (!name.startsWith(`${executionId}-`)) continue;
    const node = name.slice(executionId.length + 1).replace(/-\d+$/, "");
    out[node] = (out[node] ?? 0) + 1;
  }
  return out;
}

describe("the seed story on the embedded default", () => {
  let first: Doc;
  let second: Doc;

  it("runs at `broken`: prepare and featurize succeed, train fails, evaluate is skipped, exit 1", () => {
    const r = reprise({ cwd: repo, env }, "run", "train", "--ref", "broken", "--json");
    expect(r.code, r.stderr).toBe(1);
    first = doc(r);
    const n = byNode(first);
    expect(first.status).toBe("FAILED");
    expect(n.prepare).toMatchObject({ status: "SUCCEEDED", cache: "POPULATED" });
    expect(n.featurize).toMatchObject({ status: "SUCCEEDED", cache: "POPULATED" });
    expect(n.train).toMatchObject({ status: "FAILED", cache: "MISS" });
    expect(n.train?.error?.message).toContain("train failed");
    expect(n.evaluate).toMatchObject({ status: "SKIPPED" });
    expect(launches(first.id)).toEqual({ prepare: 1, featurize: 1, train: 1 });
  }, 120_000);

  it("relaunches at `fixed`: prepare and featurize come from the cache, train and evaluate run", () => {
    const r = reprise({ cwd: repo, env }, "relaunch", first.id, "--ref", "fixed", "--json");
    expect(r.code, r.stderr).toBe(0);
    second = doc(r);
    const n = byNode(second);
    expect(second).toMatchObject({ status: "SUCCEEDED", parent: first.id });
    expect(n.prepare).toMatchObject({
      cache: "HIT",
      source: { execution: first.id, node: "prepare" },
      attempts: 0,
    });
    expect(n.featurize).toMatchObject({
      cache: "HIT",
      source: { execution: first.id, node: "featurize" },
    });
    expect(n.train).toMatchObject({ status: "SUCCEEDED", cache: "POPULATED", attempts: 1 });
    expect(n.evaluate).toMatchObject({ status: "SUCCEEDED", cache: "POPULATED" });
    expect(launches(second.id)).toEqual({ train: 1, evaluate: 1 });
    expect(Object.keys(second.outputs).sort()).toEqual(["loss", "model", "passed", "r2", "rmse"]);
  }, 120_000);

  it("relaunches at `reshaped`: only the new select step and what reads it run", () => {
    const r = reprise({ cwd: repo, env }, "relaunch", second.id, "--ref", "reshaped", "--json");
    expect(r.code, r.stderr).toBe(0);
    const third = doc(r);
    const n = byNode(third);
    expect(n.prepare?.cache).toBe("HIT");
    expect(n.featurize?.cache).toBe("HIT");
    expect(launches(third.id)).toEqual({ select: 1, train: 1, evaluate: 1 });

    // The same again is all cache hits: nothing runs.
    const again = doc(reprise({ cwd: repo, env }, "run", "train", "--ref", "reshaped", "--json"));
    expect(again.nodes.every((x) => x.cache === "HIT")).toBe(true);
    expect(launches(again.id)).toEqual({});
  }, 120_000);

  it("prints the same document for `status`, and refuses an unknown execution with exit 2", () => {
    const s = reprise({ cwd: repo, env }, "status", second.id, "--json");
    expect(s.code).toBe(0);
    expect(doc(s)).toEqual(second);
    const unknown = reprise({ cwd: repo, env }, "status", "e000nope");
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('no execution "e000nope"');
  }, 60_000);
});
