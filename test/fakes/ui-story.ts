/**
 * The seed story as the web UI's tests need it, in-process on a PGlite store copied from the
 * run's template: a real git repository from examples/seed-pipeline/make-story-repo.sh, the
 * engine with the local executor (real processes), `train` run at `broken` (fails) and
 * relaunched at `fixed` (prepare and featurize from the cache). Production is then moved
 * fixed -> reshaped -> a revert of reshaped, which reads "rollback to <fixed>".
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { localRepoKey } from "../../core/version/repo-key.js";
import type { ExecutionRecord } from "../../db/types.js";
import { LocalBlobStore } from "../../runner/artifacts/local-store.js";
import { Engine } from "../../runner/engine/engine.js";
import { createLocalExecutor, type LocalExecutor } from "../../runner/executors/local/index.js";
import { registerLocalCommit } from "../../runner/registry.js";
import { Authenticator } from "../../runner/server/auth.js";
import type { ServerDeps } from "../../runner/server/deps.js";
import { Metrics } from "../../runner/server/metrics.js";
import { activateVersion, relaunchExecution, startExecution } from "../../runner/service.js";
import { openTestStore, type TestStore } from "../setup/stores.js";
import { ROOT } from "./cli.js";

export interface UiStory {
  work: string;
  repoDir: string;
  repo: string;
  db: TestStore;
  executor: LocalExecutor;
  broken: ExecutionRecord;
  fixed: ExecutionRecord;
  shas: { broken: string; fixed: string; reshaped: string; revert: string };
  /** Dependencies for `createApp`; `open` decides whether credentials are needed. */
  deps(open: boolean): ServerDeps;
  close(): Promise<void>;
}

function childEnv(): Record<string, string | undefined> {
  const env: Record<string, string | undefined> = {};
  for (const [k, v] of Object.entries(process.env))
    if (!k.startsWith("GIT_") && !k.startsWith("REPRISE_")) env[k] = v;
  return env;
}

export async function runUiStory(): Promise<UiStory> {
  const work = mkdtempSync(join(tmpdir(), "reprise-ui-"));
  const repoDir = join(work, "repo");
  const env = childEnv();
  execFileSync("bash", [join(ROOT, "examples/seed-pipeline/make-story-repo.sh"), repoDir], {
    stdio: "ignore",
    env: env as NodeJS.ProcessEnv,
  });
  const git = (...args: string[]) =>
    execFileSync("git", ["-C", repoDir, ...args], {
      encoding: "utf8",
      env: { ...(env as NodeJS.ProcessEnv), GIT_CONFIG_GLOBAL: "/dev/null" },
    }).trim();
  git("revert", "--no-edit", "reshaped");

  const db = await openTestStore("pglite");
  const store = db.store;
  const artifacts = new LocalBlobStore(join(work, "data", "artifacts"));
  const executor = createLocalExecutor({ dataDir: join(work, "data"), env, artifacts });
  const engine = new Engine({
    store,
    executor,
    artifacts,
    owner: "ui-test",
    maxParallel: 2,
    tickMs: 200,
  });
  const repo = localRepoKey(repoDir);
  const trigger = { kind: "cli" as const, actor: "ui-test" };
  try {
    const at = async (ref: string) => (await registerLocalCommit(store, repoDir, ref)).version.sha;
    const shas = {
      broken: await at("broken"),
      fixed: await at("fixed"),
      reshaped: await at("reshaped"),
    };
    const first = await startExecution(store, {
      repo,
      at: { sha: shas.broken },
      workflow: "train",
      inputs: {},
      trigger,
    });
    const broken = await engine.drive(first.id);
    const second = await relaunchExecution(store, { parent: broken.id, sha: shas.fixed, trigger });
    const fixed = await engine.drive(second.id);
    for (const sha of [shas.fixed, shas.reshaped])
      await activateVersion(store, { repo, sha, actor: "ui-test" });
    // Registered after the others, as a push of the revert would be: "rollback to <fixed>".
    const revert = await at("HEAD");
    await activateVersion(store, { repo, sha: revert, actor: "ui-test" });

    return {
      work,
      repoDir,
      repo,
      db,
      executor,
      broken,
      fixed,
      shas: { ...shas, revert },
      deps: (open) => ({
        store,
        executor,
        artifacts,
        auth: new Authenticator({ store, oidc: null, open }),
        metrics: new Metrics(),
        publicUrl: null,
        log: () => {},
      }),
      close: async () => {
        await executor.close();
        await db.dispose();
        rmSync(work, { recursive: true, force: true });
      },
    };
  } catch (e) {
    await executor.close();
    await db.dispose();
    rmSync(work, { recursive: true, force: true });
    throw e;
  }
}
