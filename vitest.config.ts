import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    globalSetup: ["test/setup/global-setup.ts"],
    // CI reads its closing "N passed, N failed" line from this JSON report (.ci/run).
    reporters: ["default", ["json", { outputFile: "reports/vitest.json" }]],
    testTimeout: 30_000,
    // Most of the suite waits on child processes (the CLI, servers, Postgres, Chromium): two test
    // files at a time on two cores, where vitest's default (cores - 1) would run one.
    maxWorkers: 2,
    hookTimeout: 60_000,
  },
});
