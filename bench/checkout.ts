/**
 * What the shared materialise step costs a `file://` checkout (runner/sources/git-archive.ts:
 * `git archive` parsed by node-tar, every file hashed against its blob id, the tree listed first)
 * against the `git archive <sha> | tar -x` it replaced, on the same commit, alternated per round.
 * `npx tsx bench/checkout.ts [REPO_DIR]`; without one, a generated repository of 10,000 small
 * files (10 to 500 lines) in 100 directories and one 50 MiB file, the shape where the per-file
 * cost shows.
 */
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { gitArchiveCheckout } from "../runner/sources/git-archive.js";

function generated(): string {
  const dir = mkdtempSync(join(tmpdir(), "reprise-bench-repo-"));
  for (let i = 0; i < 10_000; i++) {
    mkdirSync(join(dir, `d${i % 100}`), { recursive: true });
    writeFileSync(join(dir, `d${i % 100}`, `f${i}.txt`), `line ${i}\n`.repeat(10 + (i % 491)));
  }
  writeFileSync(join(dir, "big.bin"), randomBytes(50 * 1024 * 1024));
  const git = (...args: string[]) => execFileSync("git", args, { cwd: dir });
  git("init", "-q");
  git("add", "-A");
  git("-c", "user.name=bench", "-c", "user.email=bench@example.com", "commit", "-qm", "bench");
  return dir;
}

async function main(): Promise<void> {
  const repo = process.argv[2] ? resolve(process.argv[2]) : generated();
  const sha = execFileSync("git", ["-C", repo, "rev-parse", "HEAD"], { encoding: "utf8" }).trim();
  const files = execFileSync("git", ["-C", repo, "ls-tree", "-r", "--name-only", sha], {
    encoding: "utf8",
  }).split("\n").length;
  console.log(`${repo} at ${sha.slice(0, 12)}: ${files} files`);
  const ours: number[] = [];
  const tar: number[] = [];
  const runOurs = async () => {
    const a = mkdtempSync(join(tmpdir(), "reprise-bench-co-"));
    const t = performance.now();
    await gitArchiveCheckout(repo, a)("k", sha);
    ours.push(performance.now() - t);
    return a;
  };
  const runTar = () => {
    const b = mkdtempSync(join(tmpdir(), "reprise-bench-co-"));
    const t = performance.now();
    execFileSync("sh", ["-c", `git -C "$1" archive "$2" | tar -x -C "$3"`, "sh", repo, sha, b]);
    tar.push(performance.now() - t);
    return b;
  };
  // Which goes first alternates: a file system may make the first inodes after deletions dearer.
  for (let round = 0; round < 6; round++) {
    const dirs = round % 2 === 0 ? [await runOurs(), runTar()] : [runTar(), await runOurs()];
    for (const d of dirs) rmSync(d, { recursive: true });
  }
  if (!process.argv[2]) rmSync(repo, { recursive: true, force: true });
  const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)] ?? 0;
  console.log(
    `rounds (ms): materialise ${ours.map(Math.round).join(" ")}; tar ${tar.map(Math.round).join(" ")}`,
  );
  console.log(
    `median of 6: materialise ${median(ours).toFixed(0)} ms, git archive | tar -x ${median(tar).toFixed(0)} ms`,
  );
}

await main();
