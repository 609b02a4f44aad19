import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../../runner/config.js";

describe("loadConfig", () => {
  it("defaults to the embedded database under XDG_DATA_HOME, then ~/.local/share", () => {
    expect(loadConfig({ HOME: "/home/ada", USER: "ada" })).toMatchObject({
      databaseUrl: null,
      dataDir: "/home/ada/.local/share/reprise",
      logLevel: "info",
      maxParallel: 4,
      user: "ada",
    });
    expect(loadConfig({ HOME: "/home/ada", XDG_DATA_HOME: "/data" }).dataDir).toBe("/data/reprise");
    expect(loadConfig({ HOME: "/h", REPRISE_DATA_DIR: "/srv/reprise" }).dataDir).toBe(
      "/srv/reprise",
    );
  });

  it("uses Postgres when DATABASE_URL is set, and treats an empty one as unset", () => {
    expect(loadConfig({ DATABASE_URL: "postgres://u@db:5432/reprise" }).databaseUrl).toBe(
      "postgres://u@db:5432/reprise",
    );
    expect(loadConfig({ DATABASE_URL: "", HOME: "/h" }).databaseUrl).toBeNull();
  });

  it("names every bad variable and how to fix it", () => {
    const run = () =>
      loadConfig({ DATABASE_URL: "mysql://x", LOG_LEVEL: "loud", REPRISE_DATA_DIR: "rel" });
    expect(run).toThrow(ConfigError);
    expect(run).toThrow(/DATABASE_URL: must be a postgres:\/\/ or postgresql:\/\/ URL/);
    expect(run).toThrow(/LOG_LEVEL: /);
    expect(run).toThrow(/REPRISE_DATA_DIR: must be an absolute path/);
    expect(() => loadConfig({ REPRISE_MAX_PARALLEL: "lots" })).toThrow(
      /REPRISE_MAX_PARALLEL: must be a whole number/,
    );
    expect(() => loadConfig({ REPRISE_MAX_PARALLEL: "0" })).toThrow(
      /REPRISE_MAX_PARALLEL: must be at least 1/,
    );
  });

  it("REPRISE_SERVER sends the CLI through a server's API, with REPRISE_TOKEN; a malformed URL says how to fix it", () => {
    expect(loadConfig({ HOME: "/h" }).server).toBeNull();
    expect(loadConfig({ HOME: "/h", REPRISE_SERVER: "", REPRISE_TOKEN: "rp_x" }).server).toBeNull();
    expect(
      loadConfig({
        HOME: "/h",
        REPRISE_SERVER: "https://reprise.example.com/",
        REPRISE_TOKEN: "rp_x",
      }).server,
    ).toEqual({ url: "https://reprise.example.com", token: "rp_x" });
    expect(loadConfig({ HOME: "/h", REPRISE_SERVER: "http://127.0.0.1:3000" }).server).toEqual({
      url: "http://127.0.0.1:3000",
      token: null,
    });
    for (const bad of [
      "reprise.example.com",
      "ftp://x",
      "https://",
      "http://a b",
      "https://x/?q=1",
    ])
      expect(() => loadConfig({ HOME: "/h", REPRISE_SERVER: bad }), bad).toThrow(
        /REPRISE_SERVER: must be the Reprise server's http:\/\/ or https:\/\/ URL/,
      );
  });

  it("REPRISE_PRODUCTION_BRANCH names the branch whose OIDC tokens may activate, main by default", () => {
    const oidc = {
      HOME: "/h",
      REPRISE_OIDC_ISSUER: "https://issuer.test",
      REPRISE_OIDC_AUDIENCE: "a",
    };
    expect(loadConfig(oidc).oidc?.productionBranch).toBe("main");
    expect(
      loadConfig({ ...oidc, REPRISE_PRODUCTION_BRANCH: "release/2" }).oidc?.productionBranch,
    ).toBe("release/2");
    for (const bad of ["refs/heads/main", "two words", "-x"])
      expect(() => loadConfig({ ...oidc, REPRISE_PRODUCTION_BRANCH: bad }), bad).toThrow(
        /REPRISE_PRODUCTION_BRANCH: must be a branch name without "refs\/heads\/", e.g. main/,
      );
  });
});
