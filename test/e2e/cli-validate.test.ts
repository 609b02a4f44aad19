import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { cliArgs } from "../fakes/cli.js";
import { type TempRepo, tempRepo } from "../fakes/git-repo.js";

/** Runs the real CLI entry point in a child process, as a user would. */
function reprise(cwd: string, ...args: string[]) {
  const r = spawnSync(process.execPath, cliArgs(...args), {
    cwd,
    encoding: "utf8",
    env: { ...process.env, NODE_OPTIONS: "" },
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const SPEC = `version: 1
defaults: { image: node:20 }
tasks:
  hello:
    command: [node, hello.mjs]
    sources: [hello.mjs]
    outputs: { greeting: string }
workflows:
  main:
    nodes:
      a: { task: hello }
`;

let repo: TempRepo | undefined;
afterEach(() => repo?.remove());

describe("reprise validate", () => {
  it("prints each task's digest for a valid commit and exits 0", () => {
    repo = tempRepo();
    repo.write({ "reprise.yaml": SPEC, "hello.mjs": "console.log('hi')\n" });
    const sha = repo.commit("add pipeline");
    const r = reprise(repo.dir, "validate", "--ref", "HEAD", "--json");
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc).toMatchObject({ ok: true, sha, ref: "HEAD", repo: `file://${repo.dir}` });
    expect(doc.tasks.hello.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(doc.tasks.hello.sourceFiles).toBe(1);
    expect(doc.warnings.map((w: { code: string }) => w.code)).toEqual(["W_IMAGE_DIGEST"]);
  });

  it("reports every error as reprise.yaml:LINE:COL: CODE message and exits 2", () => {
    repo = tempRepo();
    repo.write({
      "reprise.yaml": SPEC.replace("task: hello", "task: helo").replace("command:", "comand:"),
    });
    repo.commit("broken");
    const r = reprise(repo.dir, "validate", "--ref", "HEAD");
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('reprise.yaml:5:5: E_UNKNOWN_KEY unknown key "comand"');
    expect(r.stderr).toContain(
      'reprise.yaml:11:18: E_UNKNOWN_TASK workflow "main": node "a" uses task "helo"',
    );
    expect(r.stderr).toContain("is invalid: 3 errors");
    expect(r.stdout).toBe("");
  });

  it("validates the working tree, uncommitted edits included, without touching the index", () => {
    repo = tempRepo();
    repo.write({ "reprise.yaml": SPEC, "hello.mjs": "1\n" });
    repo.commit("v1");
    const committed = JSON.parse(reprise(repo.dir, "validate", "--ref", "HEAD", "--json").stdout);
    const clean = JSON.parse(reprise(repo.dir, "validate", "--json").stdout);
    expect(clean.tasks.hello.digest).toBe(committed.tasks.hello.digest);

    repo.write({ "hello.mjs": "2\n", "untracked-but-not-a-source.txt": "x" });
    const dirty = JSON.parse(reprise(repo.dir, "validate", "--json").stdout);
    expect(dirty.sha).toBeNull();
    expect(dirty.tasks.hello.digest).not.toBe(committed.tasks.hello.digest);
    const status = repo
      .git("status", "--porcelain=v1", "--untracked-files=all")
      .split("\n")
      .map((l) => l.trim());
    expect(status.sort()).toEqual(["?? untracked-but-not-a-source.txt", "M hello.mjs"]);
  });

  it("sees a file edited in the same second as its commit, at the same size (racy git)", () => {
    repo = tempRepo();
    // git trusts a file's cached stat (seconds, same size) unless the index is no older than the
    // file. Commit and edit at the start of one second, so both land in it, and validate in the
    // next: an index copy with a fresh mtime would then hide the edit.
    const nap = () => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5);
    const now = () => Math.floor(Date.now() / 1000);
    const before = now();
    while (Date.now() % 1000 > 100 || now() === before) nap();
    const second = now();
    repo.write({ "reprise.yaml": SPEC, "hello.mjs": "1\n" });
    repo.commit("v1");
    repo.write({ "hello.mjs": "2\n" });
    expect(now(), "writing, committing and editing took over a second").toBe(second);
    while (now() === second) nap();
    const dirty = JSON.parse(reprise(repo.dir, "validate", "--json").stdout);
    const committed = JSON.parse(reprise(repo.dir, "validate", "--ref", "HEAD", "--json").stdout);
    expect(dirty.tasks.hello.digest).not.toBe(committed.tasks.hello.digest);
  });

  it("reads an older commit with --ref, from a subdirectory", () => {
    repo = tempRepo();
    repo.write({ "reprise.yaml": SPEC, "hello.mjs": "1\n", "sub/x.txt": "x" });
    const first = repo.commit("v1");
    repo.write({ "reprise.yaml": "not: [valid" });
    repo.commit("break it");
    const r = reprise(join(repo.dir, "sub"), "validate", "--ref", first, "--json");
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).sha).toBe(first);
    expect(reprise(repo.dir, "validate", "--ref", "HEAD").stderr).toContain("E_YAML");
  });

  it("explains what to fix when there is no spec, no repository, or a bad ref", () => {
    repo = tempRepo();
    repo.write({ "x.txt": "x" });
    repo.commit("no spec");
    const none = reprise(repo.dir, "validate", "--ref", "HEAD");
    expect(none.code).toBe(2);
    expect(none.stderr).toContain("no reprise.yaml at the root of HEAD");
    expect(reprise(repo.dir, "validate", "--ref", "nope").stderr).toContain(
      '"nope" is not a commit',
    );
    const outside = mkdtempSync(join(tmpdir(), "reprise-nogit-"));
    try {
      const r = reprise(outside, "validate");
      expect(r.code).toBe(2);
      expect(r.stderr).toContain("is not inside a git repository; pass --repo DIR");
    } finally {
      rmSync(outside, { recursive: true, force: true });
    }
  });

  it("exits 2 with usage on an unknown command or option", () => {
    const dir = tmpdir();
    expect(reprise(dir, "frobnicate")).toMatchObject({ code: 2 });
    const bad = reprise(dir, "validate", "--nope");
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("usage: reprise");
  });
});
