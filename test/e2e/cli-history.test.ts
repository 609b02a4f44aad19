/**
 * `reprise history TASK` through the CLI's entry (`main`, in-process) on the embedded store: the
 * seed story's commits registered, then the task's changes newest first, as JSON and as text;
 * an unknown task exits 2 and says how to see what is registered. (Which executions ran each
 * digest is the shared builder's, checked on a full story in test/integration/ui-pages.test.ts.)
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PGlite } from "@electric-sql/pglite";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { main } from "../../runner/cli/main.js";
import type { TaskHistory } from "../../runner/task-history.js";
import { ROOT } from "../fakes/cli.js";

let work: string;
let repo: string;
let env: Record<string, string | undefined>;

async function cli(...args: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(args, { out: (l) => out.push(l), err: (l) => err.push(l) }, repo, env);
  return { code, stdout: out.join("\n"), stderr: err.join("\n") };
}

const sha = (ref: string) =>
  execFileSync("git", ["-C", repo, "rev-parse", ref], { encoding: "utf8" }).trim();

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), "reprise-history-"));
  repo = join(work, "repo");
  execFileSync("bash", [join(ROOT, "examples/seed-pipeline/make-story-repo.sh"), repo], {
    stdio: "ignore",
  });
  // The embedded database, started from the run's migrated template (creating one costs ~5 s).
  const data = join(work, "data");
  mkdirSync(data);
  const seeded = await PGlite.create({
    dataDir: join(data, "pgdata"),
    loadDataDir: new Blob([readFileSync(inject("pgliteTemplate"))]),
  });
  await seeded.close();
  env = { ...process.env, REPRISE_DATA_DIR: data, DATABASE_URL: undefined };
  for (const ref of ["broken", "fixed", "reshaped"]) {
    const r = await cli("register", "--ref", ref);
    expect(r.code, r.stderr).toBe(0);
  }
}, 60_000);
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe("reprise history", () => {
  it("prints the versions in which a task's digest changed, newest first, as JSON", async () => {
    const r = await cli("history", "train", "--json");
    expect(r.code, r.stderr).toBe(0);
    const h = JSON.parse(r.stdout) as TaskHistory;
    expect(h.task).toBe("train");
    expect(h.changes.map((c) => [c.sha, c.change, c.ref])).toEqual([
      [sha("fixed"), "changed", "fixed"],
      [sha("broken"), "added", "broken"],
    ]);
    expect(h.changes[0]?.message).toMatch(/^Fix train/);
    expect(h.changes[0]?.previousDigest).toBe(h.changes[1]?.digest);
    const select = JSON.parse((await cli("history", "select", "--json")).stdout) as TaskHistory;
    expect(select.changes.map((c) => [c.sha, c.change])).toEqual([[sha("reshaped"), "added"]]);
  });

  it("prints one line per change with commit, branch, what changed, digest and message", async () => {
    const r = await cli("history", "train");
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.split("\n");
    expect(lines[0]).toMatch(/^task train of file:\/\/.*: 2 change\(s\), newest first$/);
    expect(lines[1]).toMatch(
      new RegExp(
        `^${sha("fixed").slice(0, 12)}  \\S+ \\S+  fixed\\s+changed\\s+[0-9a-f]{12}  Fix train`,
      ),
    );
    expect(r.stdout).toContain("(not run at this digest)");
    expect(r.stdout).toContain(sha("broken").slice(0, 12));
  });

  it("exits 2 for a task no version has", async () => {
    const r = await cli("history", "nope");
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('has a task "nope"');
    expect(r.stderr).toContain("reprise versions");
    expect((await cli("history")).code).toBe(2);
  });
});
