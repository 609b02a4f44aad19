/**
 * The `reprise` CLI bundled once per test run (global-setup.ts), so every end-to-end spawn runs
 * plain JavaScript with `node` instead of transpiling the runner again through tsx: about 1.4 s
 * a spawn instead of 3.5 s here (test/README.md, "How the CLI runs in tests").
 *
 * The bundle is what `npx tsx runner/cli/bin.ts` runs, laid out so that what the runtime finds
 * beside its own file is there too:
 * - the spec parser's worker thread is a second entry point, `spec-worker-thread.js`, in the same
 *   folder as the code of runner/spec-worker.ts, which loads it by that name beside itself;
 * - db/migrate.ts reads its SQL from `migrations/` beside itself: db/migrations is copied there;
 * - packages stay external and resolve through a `node_modules` link to the repository's, so
 *   they load exactly as they do from the sources (and lazily imported ones stay lazy: the
 *   bundle is split at dynamic imports).
 * Source maps point stack traces back at the .ts files (spawn with --enable-source-maps).
 */
import { cpSync, mkdirSync, realpathSync, rmSync, symlinkSync } from "node:fs";
import { join } from "node:path";
import { build } from "esbuild";

const ROOT = join(import.meta.dirname, "../..");

/** The CLI's entry point (the composition root). A move of it is this one edit. */
export const CLI_ENTRY = "runner/cli/bin.ts";
/** The spec worker's thread (runner/spec-worker.ts starts `./spec-worker-thread.js`). */
const SPEC_WORKER_ENTRY = "runner/spec-worker-thread.ts";

/** Bundles the CLI into `dir` (emptied first) and returns the path of its entry, `dir/bin.js`. */
export async function bundleCli(dir: string): Promise<string> {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  await build({
    absWorkingDir: ROOT,
    entryPoints: {
      bin: join(ROOT, CLI_ENTRY),
      "spec-worker-thread": join(ROOT, SPEC_WORKER_ENTRY),
    },
    outdir: dir,
    bundle: true,
    splitting: true,
    platform: "node",
    format: "esm",
    target: "node20",
    packages: "external",
    sourcemap: true,
    logLevel: "warning",
  });
  cpSync(join(ROOT, "db/migrations"), join(dir, "migrations"), { recursive: true });
  // Resolved: a linked node_modules must still resolve where only its target is bound (pods).
  symlinkSync(realpathSync(join(ROOT, "node_modules")), join(dir, "node_modules"), "dir");
  return join(dir, "bin.js");
}
