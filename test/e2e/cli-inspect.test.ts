/**
 * `reprise logs`, `lineage` and `cache` through the real CLI on the embedded store: a two-task
 * workflow run once (both tasks run), again (both from the cache), then with one task's entries
 * evicted (only that task runs); and a failing task whose log carries its error.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CliResult, reprise } from "../fakes/cli.js";
import { type TempRepo, tempRepo } from "../fakes/git-repo.js";

const NODE = process.execPath;

const SPEC = {
  version: 1,
  defaults: { image: "node:20-slim", timeout: "2m" },
  tasks: {
    hello: {
      command: [NODE, "tasks/hello.mjs"],
      sources: ["tasks/hello.mjs"],
      outputs: { greeting: "string" },
      cache: true,
    },
    world: {
      command: [NODE, "tasks/world.mjs"],
      sources: ["tasks/world.mjs"],
      inputs: { greeting: "string" },
      outputs: { length: "integer" },
      cache: true,
    },
    boom: {
      command: [NODE, "tasks/boom.mjs"],
      sources: ["tasks/boom.mjs"],
      outputs: { ok: "boolean" },
      cache: true,
    },
  },
  workflows: {
    w: {
      nodes: {
        a: { task: "hello" },
        b: { task: "world", inputs: { greeting: "${{ nodes.a.outputs.greeting }}" } },
      },
      outputs: { length: "${{ nodes.b.outputs.length }}" },
    },
    broken: { nodes: { x: { task: "boom" } } },
  },
};

const FILES = {
  "reprise.yaml": `${JSON.stringify(SPEC, null, 2)}\n`,
  "tasks/hello.mjs": `import { writeFileSync } from "node:fs";
console.log("HELLO-OUT: saying hello");
console.error("HELLO-ERR: a warning on stderr");
writeFileSync(process.env.REPRISE_OUTPUTS, JSON.stringify({ greeting: "hi there" }));
`,
  "tasks/world.mjs": `import { readFileSync, writeFileSync } from "node:fs";
const { greeting } = JSON.parse(readFileSync(process.env.REPRISE_INPUTS, "utf8"));
console.log("WORLD-OUT: got " + greeting);
console.error("WORLD-ERR: on stderr");
writeFileSync(process.env.REPRISE_OUTPUTS, JSON.stringify({ length: greeting.length }));
`,
  "tasks/boom.mjs": `console.log("BOOM-OUT: about to fail");
console.error("BOOM-ERR: the dataset is missing");
process.exit(3);
`,
};

let work: string;
let repo: TempRepo;
let env: Record<string, string | undefined>;
const cli = (...args: string[]) => reprise({ cwd: repo.dir, env }, ...args);

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), "reprise-inspect-"));
  repo = tempRepo("reprise-inspect-repo-");
  repo.write(FILES);
  repo.commit("two tasks and a failing one");
  env = { REPRISE_DATA_DIR: join(work, "data"), DATABASE_URL: undefined };
});
afterAll(() => {
  repo.remove();
  rmSync(work, { recursive: true, force: true });
});

interface Node {
  id: string;
  status: string;
  cache: string | null;
  attempts: number;
  source: { execution: string; node: string } | null;
}

function json<T>(r: CliResult): T {
  try {
    return JSON.parse(r.stdout) as T;
  } catch {
    throw new Error(`not a JSON document (exit ${r.code}):\n${r.stdout}\n${r.stderr}`);
  }
}

function run(workflow: string, code = 0): { id: string; nodes: Record<string, Node> } {
  const r = cli("run", workflow, "--json");
  expect(r.code, r.stderr).toBe(code);
  const d = json<{ id: string; nodes: Node[] }>(r);
  return { id: d.id, nodes: Object.fromEntries(d.nodes.map((n) => [n.id, n])) };
}

// Every CLI call opens the embedded database (seconds each): the story uses as few as it can.
describe("reprise logs, lineage and cache", () => {
  let first: ReturnType<typeof run>;
  let second: ReturnType<typeof run>;

  it("logs show each node that ran under a header, with its stdout and stderr", () => {
    first = run("w");
    expect(first.nodes.a).toMatchObject({ cache: "POPULATED", attempts: 1 });
    expect(first.nodes.b).toMatchObject({ cache: "POPULATED", attempts: 1 });

    const all = cli("logs", first.id);
    expect(all.code, all.stderr).toBe(0);
    expect(all.stdout).toMatch(
      /== a \(hello\) attempt 1: SUCCEEDED\n[\s\S]*HELLO-OUT: saying hello[\s\S]*== b/,
    );
    expect(all.stdout).toMatch(/== a [\s\S]*HELLO-ERR: a warning on stderr[\s\S]*== b/);
    expect(all.stdout).toMatch(
      /== b \(world\) attempt 1: SUCCEEDED\n[\s\S]*WORLD-OUT: got hi there/,
    );
    expect(all.stdout).toMatch(/== b [\s\S]*WORLD-ERR: on stderr/);
  }, 60_000);

  it("a second run is all cache hits: logs and lineage point to the run that computed them", () => {
    second = run("w");
    expect(second.nodes.a).toMatchObject({
      cache: "HIT",
      attempts: 0,
      source: { execution: first.id, node: "a" },
    });

    const logs = cli("logs", second.id, "a");
    expect(logs.code, logs.stderr).toBe(0);
    expect(logs.stdout.trim()).toBe(
      `a: cached from ${first.id}/a; see \`reprise logs ${first.id} a\``,
    );

    const lineage = cli("lineage", second.id, "b", "--json");
    expect(lineage.code, lineage.stderr).toBe(0);
    const l = json<{
      execution: string;
      node: string;
      outputs: Record<string, unknown>;
      computedBy: Record<string, unknown>;
      chain: Array<Record<string, unknown>>;
    }>(lineage);
    expect(l).toMatchObject({ execution: second.id, node: "b", outputs: { length: 8 } });
    expect(l.computedBy).toMatchObject({ execution: first.id, node: "b" });
    expect(l.computedBy.sha).toMatch(/^[0-9a-f]{40}$/);
    expect(l.computedBy.taskDigest).toMatch(/^sha256:/);
    expect(l.computedBy.finishedAt).toMatch(/^\d{4}-\d\d-\d\dT/);
    expect(l.chain.map((s) => [s.execution, s.node, s.cache])).toEqual([
      [second.id, "b", "HIT"],
      [first.id, "b", "POPULATED"],
    ]);
    expect(l.chain[1]?.cacheKey).toBe(l.chain[0]?.cacheKey);
  }, 60_000);

  it("cache stats counts entries and hits; evicting a task makes only that task run again", () => {
    const stats = json<{ entries: number; hits: number; tasks: Array<Record<string, unknown>> }>(
      cli("cache", "stats", "--json"),
    );
    expect(stats).toMatchObject({ entries: 2, hits: 2 });
    expect(stats.tasks.map((t) => [t.task, t.entries, t.hits])).toEqual([
      ["hello", 1, 1],
      ["world", 1, 1],
    ]);

    const evict = cli("cache", "evict", "--task", "hello");
    expect(evict.code, evict.stderr).toBe(0);
    expect(evict.stdout).toContain("evicted 1 cache entry");

    const third = run("w");
    expect(third.nodes.a).toMatchObject({ cache: "POPULATED", attempts: 1 });
    expect(third.nodes.b).toMatchObject({ cache: "HIT", source: { execution: first.id } });

    // Nothing to evict is no error: the second run computed nothing.
    const none = cli("cache", "evict", "--execution", second.id, "--json");
    expect(none.code, none.stderr).toBe(0);
    expect(json<{ evicted: number }>(none).evicted).toBe(0);
  }, 60_000);

  it("a failed node's log ends with its error", () => {
    const failed = run("broken", 1);
    const r = cli("logs", failed.id, "x");
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain("== x (boom) attempt 1: FAILED");
    expect(r.stdout).toContain("BOOM-OUT: about to fail");
    expect(r.stdout).toContain("BOOM-ERR: the dataset is missing");
    expect(r.stdout).toMatch(/BOOM-ERR[\s\S]*error \(user, exit\): exited with code 3$/m);
  }, 60_000);

  it("refuses unknown ids and incomplete commands with exit 2", () => {
    const noExec = cli("lineage", "e000nope", "a");
    expect(noExec.code).toBe(2);
    expect(noExec.stderr).toContain('no execution "e000nope"');
    const noNode = cli("logs", first.id, "zz");
    expect(noNode.code).toBe(2);
    expect(noNode.stderr).toContain('has no node "zz"; its nodes: a, b');
    const noFilter = cli("cache", "evict");
    expect(noFilter.code).toBe(2);
    expect(noFilter.stderr).toContain("pass --task NAME");
  }, 60_000);
});
