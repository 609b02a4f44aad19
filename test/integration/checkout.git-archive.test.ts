/**
 * The `git archive` checkout of local repositories (runner/sources/git-archive.ts) passes the
 * checkout contract, and what only it does: separate processes racing for one checkout, a SHA the
 * repository lacks, `export-ignore`/`export-subst` switched off (the checkout is the whole tree).
 */
import { execFile } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";
import { gitArchiveCheckout } from "../../runner/sources/git-archive.js";
import type { TempRepo } from "../fakes/git-repo.js";
import { checkoutContract, commitFiles, listing, scratch } from "./checkout-contract.js";

checkoutContract("git archive (file:// repositories)", async () => {
  const root = scratch("reprise-contract-git-");
  const repos: TempRepo[] = [];
  let n = 0;
  return {
    async commit(files) {
      const { repo, sha } = commitFiles(files);
      repos.push(repo);
      const cache = join(root.dir, `cache-${n++}`);
      return {
        repo: `file://${repo.dir}`,
        sha,
        cache,
        checkout: (limits) => gitArchiveCheckout(repo.dir, cache, limits),
        downloads: () => null,
      };
    },
    async close() {
      for (const r of repos) r.remove();
      root.cleanup();
    },
  };
});

describe("the git archive checkout", () => {
  const root = scratch("reprise-git-archive-");
  afterAll(() => root.cleanup());

  it("lets separate processes race for the same checkout; all get the complete one", async () => {
    const files: Record<string, string> = {};
    for (let i = 0; i < 200; i++) files[`d${i % 10}/f${i}.txt`] = `race ${i}\n`;
    const { repo, sha } = commitFiles(files);
    const cache = join(root.dir, "race");
    try {
      const module = pathToFileURL(
        join(import.meta.dirname, "../../runner/sources/git-archive.ts"),
      ).href;
      const tsx = pathToFileURL(
        join(import.meta.dirname, "../../node_modules/tsx/dist/loader.mjs"),
      ).href;
      const script = `import { gitArchiveCheckout } from ${JSON.stringify(module)};
const dir = await gitArchiveCheckout(process.argv[1], process.argv[2])("k", process.argv[3]);
console.log(dir);`;
      const runOne = () =>
        promisify(execFile)(process.execPath, [
          "--import",
          tsx,
          "--input-type=module",
          "-e",
          script,
          repo.dir,
          cache,
          sha,
        ]);
      const results = await Promise.all([runOne(), runOne(), runOne()]);
      for (const { stdout } of results) expect(stdout.trim()).toBe(join(cache, sha));
      expect(Object.values(listing(join(cache, sha))).filter((k) => k === "file")).toHaveLength(
        200,
      );
      expect(readdirSync(cache).sort()).toEqual([`.size-${sha}`, sha]);
    } finally {
      repo.remove();
    }
  }, 60_000);

  it("says which commit the repository lacks", async () => {
    const { repo } = commitFiles({ "a.txt": "a" });
    try {
      await expect(
        gitArchiveCheckout(repo.dir, join(root.dir, "lacks"))("k", "0".repeat(40)),
      ).rejects.toThrow(/cannot check out 0{40} of k from .*: git ls-tree failed/);
    } finally {
      repo.remove();
    }
  });

  it("checks out the whole tree: export-ignore and export-subst in .gitattributes do not apply", async () => {
    const { repo, sha } = commitFiles({
      ".gitattributes": "tests export-ignore\nversion.txt export-subst\n",
      "tests/t.sh": "echo test\n",
      "version.txt": "$Format:%H$\n",
    });
    try {
      const dir = await gitArchiveCheckout(repo.dir, join(root.dir, "attrs"))("k", sha);
      expect(readFileSync(join(dir, "tests/t.sh"), "utf8")).toBe("echo test\n");
      expect(readFileSync(join(dir, "version.txt"), "utf8")).toBe("$Format:%H$\n");
      // The scratch git directory that switched them off is gone.
      expect(readdirSync(join(root.dir, "attrs")).sort()).toEqual([`.size-${sha}`, sha]);
    } finally {
      repo.remove();
    }
  });
});
