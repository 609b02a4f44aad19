import { tmpdir } from "node:os";
import { join } from "node:path";
import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    globalSetup: ["test/setup/global-setup.ts"],
    // The test projects' tasks count their runs and wait on gate files in scratch directories
    // under this one (test/fakes/task-project.ts): sandboxed tasks may write there, as an
    // operator would open a shared cache (runner/executors/local/README.md, "Sandbox").
    env: { REPRISE_SANDBOX_WRITABLE: join(tmpdir(), "reprise-task-scratch") },
    // CI reads its closing "N passed, N failed" line from this JSON report (.ci/run).
    reporters: ["default", ["json", { outputFile: "reports/vitest.json" }]],
    testTimeout: 30_000,
    // Most of the suite waits on child processes (the CLI, servers, Postgres, Chromium): two test
    // files at a time on two cores, where vitest's default (cores - 1) would run one.
    maxWorkers: 2,
    hookTimeout: 60_000,
  },
});
