/** Throwaway git repositories for tests: real git, fixed identity and dates. */
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";

export interface TempRepo {
  dir: string;
  write(files: Record<string, string>): void;
  commit(message: string): string;
  git(...args: string[]): string;
  remove(): void;
}

export function tempRepo(prefix = "reprise-test-"): TempRepo {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const env = {
    ...process.env,
    GIT_AUTHOR_NAME: "Test",
    GIT_AUTHOR_EMAIL: "test@example.com",
    GIT_COMMITTER_NAME: "Test",
    GIT_COMMITTER_EMAIL: "test@example.com",
    GIT_AUTHOR_DATE: "2026-01-01T00:00:00Z",
    GIT_COMMITTER_DATE: "2026-01-01T00:00:00Z",
  };
  const git = (...args: string[]) =>
    execFileSync("git", args, { cwd: dir, env, encoding: "utf8" }).trim();
  git("init", "-q", "-b", "main");
  return {
    dir,
    git,
    write(files) {
      for (const [path, content] of Object.entries(files)) {
        mkdirSync(dirname(join(dir, path)), { recursive: true });
        writeFileSync(join(dir, path), content);
      }
    },
    commit(message) {
      git("add", "-A");
      git("commit", "-q", "--allow-empty", "-m", message);
      return git("rev-parse", "HEAD");
    },
    remove() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * A repository with `n` commits, each changing the one task of a one-node workflow: a series of
 * pushes, each a new version to register (the GitHub benchmarks and delivery faults).
 */
export function pushSeries(n: number): { repo: TempRepo; shas: string[] } {
  const repo = tempRepo("reprise-pushes-");
  const shas: string[] = [];
  for (let i = 0; i < n; i++) {
    repo.write({
      "reprise.yaml": `version: 1\ntasks:\n  t:\n    image: "busybox@sha256:${"b".repeat(64)}"\n    command: [echo, "${i}"]\n    sources: [reprise.yaml]\nworkflows:\n  w:\n    nodes: { a: { task: t } }\n`,
    });
    shas.push(repo.commit(`push ${i}`));
  }
  return { repo, shas };
}
