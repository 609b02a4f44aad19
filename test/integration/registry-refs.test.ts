/**
 * The CLI's registration of a local repository (runner/registry.ts) records who registered and
 * the branch it read from git, also for a commit registered already from another branch.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { registerLocalCommit } from "../../runner/registry.js";
import { type TempRepo, tempRepo } from "../fakes/git-repo.js";
import { pipeline } from "../fixtures/specs.js";
import { openTestStore, type TestStore } from "../setup/stores.js";

describe("local registration and branches", () => {
  let t: TestStore;
  let git: TempRepo;
  beforeAll(async () => {
    t = await openTestStore("pglite");
    git = tempRepo();
    git.write({ "reprise.yaml": pipeline(), "prep.py": "1\n", "fit.py": "2\n", "lib/u.py": "3\n" });
    git.commit("c1");
  }, 60_000);
  afterAll(async () => {
    await t?.dispose();
    git?.remove();
  });

  it("records the branch git names, as git's word, each time the commit is registered from one", async () => {
    const first = await registerLocalCommit(t.store, git.dir, "main");
    expect(first.version).toMatchObject({ registeredBy: "cli", ref: "main" });
    git.git("branch", "release");
    const again = await registerLocalCommit(t.store, git.dir, "release");
    expect(again.created).toBe(false);
    expect(again.version.refs.map((r) => [r.ref, r.source, r.recordedBy])).toEqual([
      ["main", "git", "cli"],
      ["release", "git", "cli"],
    ]);
    // Registered again from the same branch: nothing new.
    await registerLocalCommit(t.store, git.dir, "release");
    const repo = again.version.repo;
    expect((await t.store.versions.get(repo, first.version.sha))?.refs).toHaveLength(2);
    expect((await t.store.versions.latestOnBranch(repo, "release"))?.sha).toBe(first.version.sha);
  });
});
