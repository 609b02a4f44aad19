/** What `reprise run` says, and leaves behind, when it cannot run: exit 2, nothing registered. */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { reprise } from "../fakes/cli.js";
import { type TempRepo, tempRepo } from "../fakes/git-repo.js";

let repo: TempRepo;
let work: string;
let env: Record<string, string | undefined>;

const SPEC = `version: 1
defaults: { image: node:20 }
tasks:
  t: { command: [${JSON.stringify(process.execPath)}, t.mjs], inputs: { n: integer, label: string }, outputs: { n: integer }, sources: [t.mjs] }
workflows:
  w:
    inputs: { n: integer, label: { type: string, default: x } }
    nodes:
      a: { task: t, inputs: { n: "\${{ inputs.n }}", label: "\${{ inputs.label }}" } }
`;

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), "reprise-errors-"));
  env = { REPRISE_DATA_DIR: join(work, "data"), DATABASE_URL: undefined };
  repo = tempRepo();
  repo.write({
    "reprise.yaml": SPEC,
    "t.mjs": `import { readFileSync, writeFileSync } from "node:fs";
const i = JSON.parse(readFileSync(process.env.REPRISE_INPUTS, "utf8"));
writeFileSync(process.env.REPRISE_OUTPUTS, JSON.stringify({ n: i.n + 1 }));`,
  });
  repo.commit("valid");
});
afterAll(() => {
  repo?.remove();
  rmSync(work, { recursive: true, force: true });
});

describe("reprise run refuses what it cannot run", () => {
  it("prints reprise.yaml:LINE:COL: CODE for an invalid spec, exits 2 and registers nothing", () => {
    repo.write({ "reprise.yaml": SPEC.replace("task: t,", "task: tt,") });
    const bad = repo.commit("typo");
    try {
      const r = reprise({ cwd: repo.dir, env }, "run", "w", "-i", "n=1");
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/reprise\.yaml:9:18: E_UNKNOWN_TASK .*"tt"/);
      expect(r.stderr).toContain("nothing registered");
      const versions = JSON.parse(
        reprise({ cwd: repo.dir, env }, "versions", "--json").stdout,
      ) as Array<{ sha: string }>;
      expect(versions.map((v) => v.sha)).not.toContain(bad);
    } finally {
      repo.git("reset", "-q", "--hard", "HEAD~1");
    }
  }, 60_000);

  it.each([
    [["run", "nope"], 'has no workflow "nope" (it has: w)'],
    [["run", "w"], 'input "n" (integer) is required: pass -i n=VALUE'],
    [["run", "w", "-i", "n=abc"], "-i n=abc: not a valid integer"],
    [["run", "w", "-i", "n=1.5"], 'input "n": expected an integer'],
    [["run", "w", "-i", "n=1", "-i", "zz=1"], 'the workflow has no input "zz"'],
    [["run", "w", "-i", "n"], "-i takes name=value"],
    [["relaunch", "e0000000000000nope"], 'no execution "e0000000000000nope"'],
  ])(
    "reprise %j exits 2: %s",
    (args, message) => {
      const r = reprise({ cwd: repo.dir, env }, ...args);
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toContain(message);
    },
    60_000,
  );

  it("registers a commit once, recognises a revert as identical, and refuses an invalid spec", () => {
    const first = JSON.parse(reprise({ cwd: repo.dir, env }, "register", "--json").stdout);
    expect(first).toMatchObject({ ok: true, sha: repo.git("rev-parse", "HEAD") });
    expect(Object.keys(first.tasks)).toEqual(["t"]);
    const again = reprise({ cwd: repo.dir, env }, "register");
    expect(again.stdout).toContain("already registered:");
    const base = repo.git("rev-parse", "HEAD");
    repo.write({ "reprise.yaml": SPEC.replace("default: x", "default: y") });
    repo.commit("change the default");
    repo.git("revert", "--no-edit", "HEAD");
    const revert = reprise({ cwd: repo.dir, env }, "register");
    expect(revert.code).toBe(0);
    expect(revert.stdout).toContain(`identical to ${base.slice(0, 12)}`);
    repo.write({ "reprise.yaml": "version: 1\ntasks: 3\n" });
    repo.commit("break it");
    try {
      const bad = reprise({ cwd: repo.dir, env }, "register");
      expect(bad.code).toBe(2);
      expect(bad.stderr).toContain("reprise.yaml:2:8: E_TYPE");
    } finally {
      repo.git("reset", "-q", "--hard", base);
    }
  }, 90_000);

  it("runs with typed inputs, strings raw and the rest as JSON", () => {
    const r = reprise(
      { cwd: repo.dir, env },
      "run",
      "w",
      "-i",
      "n=41",
      "-i",
      "label=hello world",
      "--json",
    );
    expect(r.code, r.stderr).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc.inputs).toEqual({ n: 41, label: "hello world" });
    expect(doc.nodes[0].outputs).toEqual({ n: 42 });
  }, 60_000);
});
