/** `reprise serve` with the GitHub App half-configured refuses to start and says what to set. */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { reprise } from "../fakes/cli.js";

const dir = mkdtempSync(join(tmpdir(), "reprise-serve-github-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("reprise serve with APP_ID", () => {
  it("refuses to start without WEBHOOK_SECRET, exit 2, naming the variable and the fix", () => {
    const r = reprise(
      {
        cwd: dir,
        env: {
          REPRISE_DATA_DIR: join(dir, "data"),
          APP_ID: "42",
          PRIVATE_KEY: "-----BEGIN RSA PRIVATE KEY-----\nx\n-----END RSA PRIVATE KEY-----\n",
          WEBHOOK_SECRET: undefined,
          DATABASE_URL: undefined,
        },
      },
      "serve",
    );
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(
      "WEBHOOK_SECRET: is not set: set it to the webhook secret configured on the GitHub App",
    );
  });
});
