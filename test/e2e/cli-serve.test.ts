/**
 * `reprise serve` and `reprise token` as a user runs them: the server's start-up policy for
 * authentication, tokens created on the command line, and a clean stop on SIGTERM.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { reprise, repriseBackground } from "../fakes/cli.js";

const dirs: string[] = [];
function dataDir(): string {
  const d = mkdtempSync(join(tmpdir(), "reprise-serve-"));
  dirs.push(d);
  return d;
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe("reprise serve", () => {
  it("refuses REPRISE_AUTH=none beyond loopback, saying how to add authentication", () => {
    const data = dataDir();
    const r = reprise(
      {
        cwd: data,
        env: {
          REPRISE_DATA_DIR: data,
          DATABASE_URL: "",
          HOST: "0.0.0.0",
          PORT: "0",
          REPRISE_AUTH: "none",
        },
      },
      "serve",
    );
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("refusing REPRISE_AUTH=none on 0.0.0.0");
    expect(r.stderr).toContain("reprise token create");
  }, 60_000);

  it("runs open on loopback with REPRISE_AUTH=none and a warning; otherwise requires a token, scoped to its repository", async () => {
    const data = dataDir();
    const env = { REPRISE_DATA_DIR: data, DATABASE_URL: "", PORT: "0", LOG_LEVEL: "warn" };
    const open = await repriseBackground(
      { cwd: data, env: { ...env, REPRISE_AUTH: "none" } },
      "serve",
    );
    const anonymous = await fetch(`${open.url}/api/v1/repos`);
    expect(anonymous.status).toBe(200);
    const stopped = await open.stop();
    expect(stopped.code).toBe(0);
    expect(stopped.stderr).toContain("is open to anyone who can reach this machine");

    const created = reprise(
      { cwd: data, env },
      "token",
      "create",
      "--repo",
      "acme/ml",
      "--read-only",
    );
    expect(created.code).toBe(0);
    const token = created.stdout.trim();
    expect(token).toMatch(/^rp_[A-Za-z0-9_-]{20,}$/);
    expect(created.stderr).toContain("github.com/acme/ml (read-only)");
    const listed = reprise({ cwd: data, env }, "token", "list", "--json");
    expect(JSON.parse(listed.stdout)).toMatchObject([
      { repos: ["github.com/acme/ml"], readOnly: true },
    ]);
    expect(listed.stdout).not.toContain(token);

    const secured = await repriseBackground({ cwd: data, env }, "serve");
    try {
      expect((await fetch(`${secured.url}/api/v1/repos`)).status).toBe(401);
      const mine = await fetch(
        `${secured.url}/api/v1/repos/${encodeURIComponent("github.com/acme/ml")}/versions`,
        {
          headers: { authorization: `Bearer ${token}` },
        },
      );
      expect(mine.status).toBe(200);
      const theirs = await fetch(
        `${secured.url}/api/v1/repos/${encodeURIComponent("github.com/acme/x")}/versions`,
        {
          headers: { authorization: `Bearer ${token}` },
        },
      );
      expect(theirs.status).toBe(403);
      expect((await fetch(`${secured.url}/readyz`)).status).toBe(200);
    } finally {
      expect((await secured.stop()).code).toBe(0);
    }
  }, 90_000);
});
