/**
 * The embedded database's directory unwritable, or its disk full (issue 9), for real: small
 * tmpfs mounts, one read-only, one filled up with a file. The CLI says what is wrong and what to
 * do, exits 2, and the store is not corrupted: once space is freed, what was registered before
 * is there and writes work again. (Mounting needs root, as CI runs; without it these fail.)
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, statfsSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { reprise } from "../fakes/cli.js";
import { type TempRepo, tempRepo } from "../fakes/git-repo.js";
import { pipeline } from "../fixtures/specs.js";

const mounts: string[] = [];
let repo: TempRepo;

function tmpfs(size: string, readOnly = false): string {
  const dir = mkdtempSync(join(tmpdir(), "reprise-tmpfs-"));
  execFileSync("mount", [
    "-t",
    "tmpfs",
    "-o",
    `size=${size}${readOnly ? ",ro" : ""}`,
    "tmpfs",
    dir,
  ]);
  mounts.push(dir);
  return dir;
}

beforeAll(() => {
  repo = tempRepo();
  repo.write({ "reprise.yaml": pipeline(), "prep.py": "1", "fit.py": "2", "lib/util.py": "3" });
  repo.commit("first");
});

afterAll(() => {
  for (const m of mounts) {
    execFileSync("umount", ["-l", m]);
    rmSync(m, { recursive: true, force: true });
  }
  repo?.remove();
});

describe("the embedded database's disk", () => {
  it("refuses an unwritable data directory with a message that says what to set", () => {
    const ro = tmpfs("4m", true);
    const r = reprise(
      { cwd: repo.dir, env: { REPRISE_DATA_DIR: join(ro, "data"), DATABASE_URL: "" } },
      "register",
    );
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`cannot use ${join(ro, "data")} for the embedded database`);
    expect(r.stderr).toContain("Set REPRISE_DATA_DIR to a writable directory");
    expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
  }, 60_000);

  it("says the disk is full, writes nothing half, and works again once space is freed", () => {
    const disk = tmpfs("64m");
    const env = { REPRISE_DATA_DIR: join(disk, "data"), DATABASE_URL: "" };
    const first = reprise({ cwd: repo.dir, env }, "register", "--json");
    expect(first.code, first.stderr).toBe(0);
    const firstSha = JSON.parse(first.stdout).sha as string;

    // Fill what is left, then register a commit with a large spec.
    const st = statfsSync(disk);
    const filler = join(disk, "filler");
    try {
      writeFileSync(filler, Buffer.alloc(Number(st.bavail) * Number(st.bsize)));
    } catch {
      // Full before the last byte: that is the point.
    }
    const tasks = Array.from(
      { length: 300 },
      (_, i) => `  t${i}: { command: [python, "${"x".repeat(200)}${i}"], sources: [prep.py] }`,
    ).join("\n");
    repo.write({
      "reprise.yaml": `${pipeline()}`.replace("tasks:\n", `tasks:\n${tasks}\n`),
    });
    repo.commit("big");
    const full = reprise({ cwd: repo.dir, env }, "register");
    expect(full.code).toBe(2);
    expect(full.stderr).toMatch(/disk (holding the database )?is full/);
    expect(full.stderr).not.toMatch(/\n\s+at /);

    rmSync(filler);
    const again = reprise({ cwd: repo.dir, env }, "register", "--json");
    expect(again.code, again.stderr).toBe(0);
    const versions = JSON.parse(
      reprise({ cwd: repo.dir, env }, "versions", "--json").stdout,
    ) as Array<{
      sha: string;
      status: string;
    }>;
    expect(versions.map((v) => v.sha)).toContain(firstSha);
    expect(versions).toHaveLength(2);
    expect(versions.every((v) => v.status === "registered")).toBe(true);
  }, 120_000);
});
