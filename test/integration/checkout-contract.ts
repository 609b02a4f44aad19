/**
 * The contract every checkout of code at a SHA meets (runner/sources/: the `git archive` checkout
 * of local repositories and the GitHub tarball checkout share one materialise step), run against
 * each by checkout.git-archive.test.ts and checkout.tarball.test.ts: the commit's files, modes
 * and links and nothing else; links that lead out refused (kernel-style: `a -> .` with
 * `b -> a/..`); a commit over the bounds refused before anything is written; one extraction for
 * concurrent callers, never seen half-made; what a crash left never served.
 */
import { spawnSync } from "node:child_process";
import {
  chmodSync,
  existsSync,
  type FSWatcher,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  watch,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative, sep } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Checkout, CheckoutRefused } from "../../runner/sources/materialise.js";
import type { TarballLimits } from "../../runner/sources/tarball.js";
import { type TempRepo, tempRepo } from "../fakes/git-repo.js";

/** A file's content, an executable's, or a symlink's target. */
export type Files = Record<string, string | { exec: string } | { link: string }>;

export interface Committed {
  /** The repository key the checkout is asked for. */
  repo: string;
  sha: string;
  /** A new checkout function each call (in-flight sharing is per directory, not per function). */
  checkout(limits?: TarballLimits): Checkout;
  /** Where checkouts go: `<cache>/<sha>`. Not created yet. */
  cache: string;
  /** How many archives were fetched so far; null where that is not observable. */
  downloads(): number | null;
}

export interface CheckoutSubject {
  /** A fresh repository with `files` committed, and how to check the commit out. */
  commit(files: Files): Promise<Committed>;
  close(): Promise<void>;
}

/** Writes `files` into a fresh git repository and commits them. */
export function commitFiles(
  files: Files,
  prefix = "reprise-contract-repo-",
): {
  repo: TempRepo;
  sha: string;
} {
  const repo = tempRepo(prefix);
  for (const [path, entry] of Object.entries(files)) {
    const at = join(repo.dir, path);
    mkdirSync(dirname(at), { recursive: true });
    if (typeof entry === "string") writeFileSync(at, entry);
    else if ("exec" in entry) {
      writeFileSync(at, entry.exec);
      chmodSync(at, 0o755);
    } else symlinkSync(entry.link, at);
  }
  return { repo, sha: repo.commit("contract") };
}

/** Every path below `dir` with what it is: `file`, `exec`, `dir`, `link -> TARGET`. */
export function listing(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const e of readdirSync(dir, { recursive: true, withFileTypes: true })) {
    const path = relative(dir, join(e.parentPath, e.name)).split(sep).join("/");
    const st = lstatSync(join(dir, path));
    out[path] = st.isSymbolicLink()
      ? `link -> ${readlinkSync(join(dir, path))}`
      : st.isDirectory()
        ? "dir"
        : st.mode & 0o100
          ? "exec"
          : "file";
  }
  return out;
}

export function checkoutContract(name: string, make: () => Promise<CheckoutSubject>): void {
  describe(`checkout contract: ${name}`, () => {
    let subject: CheckoutSubject;
    beforeAll(async () => {
      subject = await make();
    });
    afterAll(async () => {
      await subject?.close();
    });

    it("checks out the commit's files, modes and links, owned by the runner, and nothing else", async () => {
      const c = await subject.commit({
        "reprise.yaml": "version: 1\n",
        "src/a.txt": "a\n",
        "src/link": { link: "a.txt" },
        lib: { link: "src" },
        "bin/run.sh": { exec: "#!/bin/sh\necho hi\n" },
        "deep/x/y.txt": "y\n",
      });
      const checkout = c.checkout();
      const dir = await checkout(c.repo, c.sha);
      expect(dir).toBe(join(c.cache, c.sha));
      expect(listing(dir)).toEqual({
        "reprise.yaml": "file",
        src: "dir",
        "src/a.txt": "file",
        "src/link": "link -> a.txt",
        lib: "link -> src",
        bin: "dir",
        "bin/run.sh": "exec",
        deep: "dir",
        "deep/x": "dir",
        "deep/x/y.txt": "file",
      });
      expect(readFileSync(join(dir, "lib/link"), "utf8")).toBe("a\n");
      expect(readFileSync(join(dir, "bin/run.sh"), "utf8")).toBe("#!/bin/sh\necho hi\n");
      expect(lstatSync(join(dir, "src/a.txt")).uid).toBe(process.getuid?.());
      const fetched = c.downloads();
      // Asked again: the same directory, nothing fetched again.
      expect(await c.checkout()(c.repo, c.sha)).toBe(dir);
      expect(c.downloads()).toBe(fetched);
      // The checkout and what it holds, recorded beside it for eviction (its files' bytes).
      expect(readdirSync(c.cache).sort()).toEqual([`.size-${c.sha}`, c.sha]);
      expect(readFileSync(join(c.cache, `.size-${c.sha}`), "utf8")).toBe("33");
    });

    it("refuses a chain of links each lexically inside (a -> ., b -> a/..) as a user failure, publishing nothing", async () => {
      const c = await subject.commit({
        "reprise.yaml": "version: 1\n",
        a: { link: "." },
        b: { link: "a/.." },
      });
      const refused = c.checkout()(c.repo, c.sha);
      await expect(refused).rejects.toBeInstanceOf(CheckoutRefused);
      await expect(refused).rejects.toMatchObject({ error: { kind: "user", reason: "checkout" } });
      await expect(refused).rejects.toThrow(
        /symlink b -> a\/\.\. that points outside the repository \(link "b" -> "a\/\.\." leaves the directory\)/,
      );
      expect(readdirSync(c.cache)).toEqual([]);
    });

    it("refuses a link out of the repository and an absolute one", async () => {
      const out = await subject.commit({ "inside.txt": "ok", etc: { link: "../../../etc" } });
      await expect(out.checkout()(out.repo, out.sha)).rejects.toThrow(
        /symlink etc -> \.\.\/\.\.\/\.\.\/etc that points outside the repository/,
      );
      expect(readdirSync(out.cache)).toEqual([]);
      const absolute = await subject.commit({ passwd: { link: "/etc/passwd" } });
      const refused = absolute.checkout()(absolute.repo, absolute.sha);
      await expect(refused).rejects.toBeInstanceOf(CheckoutRefused);
      await expect(refused).rejects.toThrow(/points to the absolute path "\/etc\/passwd"/);
      expect(readdirSync(absolute.cache)).toEqual([]);
    });

    it("refuses a commit over REPRISE_CHECKOUT_MAX_BYTES or the entries bound by its tree, before writing anything", async () => {
      const c = await subject.commit({
        "reprise.yaml": "version: 1\n",
        "big.bin": "x".repeat(4000),
        "c.txt": "c",
      });
      const big = c.checkout({ maxBytes: 2000 })(c.repo, c.sha);
      await expect(big).rejects.toBeInstanceOf(CheckoutRefused);
      await expect(big).rejects.toThrow(
        /its files add up to 4012 bytes, over REPRISE_CHECKOUT_MAX_BYTES \(2000\)/,
      );
      const many = c.checkout({ maxBytes: 1 << 20, maxEntries: 2 })(c.repo, c.sha);
      await expect(many).rejects.toBeInstanceOf(CheckoutRefused);
      await expect(many).rejects.toThrow(/3 entries, over the local executor's limit of 2/);
      // Nothing on disk at all, not even the cache directory; no archive fetched.
      expect(existsSync(c.cache)).toBe(false);
      expect(c.downloads() ?? 0).toBe(0);
      // Within the bounds, the same commit checks out.
      const dir = await c.checkout({ maxBytes: 4012 })(c.repo, c.sha);
      expect(readFileSync(join(dir, "big.bin"), "utf8")).toHaveLength(4000);
    });

    it("extracts once for concurrent callers, and nobody ever sees the checkout half-made", async () => {
      const files: Files = {};
      for (let i = 0; i < 300; i++) files[`d${i % 10}/f${i}.txt`] = `file ${i}\n`;
      const c = await subject.commit(files);
      const target = join(c.cache, c.sha);
      mkdirSync(c.cache, { recursive: true });
      const stagings = new Set<string>();
      let watcher: FSWatcher | null = watch(c.cache, (_event, file) => {
        if (file?.startsWith(".staging-") && !file.includes("-git-")) stagings.add(file);
      });
      const seen: number[] = [];
      let extracting = true;
      const looking = (async () => {
        while (extracting) {
          if (existsSync(target)) seen.push(fileCount(target));
          await new Promise((r) => setImmediate(r));
        }
      })();
      try {
        const dirs = await Promise.all([1, 2, 3].map(() => c.checkout()(c.repo, c.sha)));
        extracting = false;
        await looking;
        expect(new Set(dirs)).toEqual(new Set([target]));
        expect(fileCount(target)).toBe(300);
        expect(seen.every((n) => n === 300)).toBe(true);
        expect(stagings.size).toBe(1);
        expect(c.downloads() ?? 1).toBe(1);
        expect(readdirSync(c.cache).sort()).toEqual([`.size-${c.sha}`, c.sha]);
      } finally {
        extracting = false;
        watcher?.close();
        watcher = null;
      }
    });

    it("never serves what a crashed extraction left, and clears a dead process's staging", async () => {
      const c = await subject.commit({ "reprise.yaml": "version: 1\n", "a.txt": "a\n" });
      mkdirSync(c.cache, { recursive: true });
      const dead = spawnSync(process.execPath, ["-e", ""]).pid;
      const half = join(c.cache, `.staging-${dead}-abc123`);
      const evicting = join(c.cache, `.staging-${dead}-evicted-0a1b`);
      // Another live process's staging (pid 1 always runs) is its own business: kept.
      const live = join(c.cache, ".staging-1-xyz789");
      for (const d of [half, evicting, live]) {
        mkdirSync(d);
        writeFileSync(join(d, "half.txt"), "half");
      }
      const dir = await c.checkout()(c.repo, c.sha);
      expect(listing(dir)).toEqual({ "reprise.yaml": "file", "a.txt": "file" });
      expect(existsSync(half)).toBe(false);
      expect(existsSync(evicting)).toBe(false);
      expect(existsSync(live)).toBe(true);
      rmSync(live, { recursive: true });
    });

    it("refuses something that is not a full lowercase commit SHA", async () => {
      const c = await subject.commit({ "a.txt": "a" });
      await expect(c.checkout()(c.repo, "HEAD")).rejects.toThrow(/not a full lowercase commit SHA/);
      await expect(c.checkout()(c.repo, c.sha.toUpperCase())).rejects.toThrow(
        /not a full lowercase commit SHA/,
      );
    });
  });
}

function fileCount(dir: string): number {
  return readdirSync(dir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile())
    .length;
}

/** A fresh temporary directory, removed with `cleanup()`. */
export function scratch(prefix: string): { dir: string; cleanup(): void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}
