/**
 * REPRISE_LOCAL_SECRETS and REPRISE_KUBE_SECRETS: the runner variables the local executor may
 * hand to tasks, the Secrets Kubernetes tasks may name, and the repositories allowed each.
 */
import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../../runner/config.js";
import { localSecretVariable } from "../../runner/executors/local/index.js";

describe("REPRISE_LOCAL_SECRETS", () => {
  it("is a list of VARIABLE@REPOSITORY entries separated by commas or spaces; none by default", () => {
    expect(loadConfig({ HOME: "/h" }).localSecrets).toEqual([]);
    expect(
      loadConfig({
        HOME: "/h",
        REPRISE_LOCAL_SECRETS:
          " AWS_CREDS_KEY@github.com/acme/ml, gh_token_token@*  X@file:///srv/r/,X@ghe.example:8443/a/b.c AWS_CREDS_KEY@github.com/acme/web",
      }).localSecrets,
    ).toEqual([
      { name: "AWS_CREDS_KEY", repos: ["github.com/acme/ml", "github.com/acme/web"] },
      { name: "gh_token_token", repos: ["*"] },
      { name: "X", repos: ["file:///srv/r", "ghe.example:8443/a/b.c"] },
    ]);
  });

  it("refuses an entry that is not a variable name, saying how to write the list", () => {
    const run = () =>
      loadConfig({ HOME: "/h", REPRISE_LOCAL_SECRETS: "GOOD@*,aws-creds@*,1X@github.com/a/b" });
    expect(run).toThrow(ConfigError);
    expect(run).toThrow(/REPRISE_LOCAL_SECRETS: "aws-creds" is not an environment variable name/);
    expect(run).toThrow(/"1X" is not an environment variable name/);
    expect(run).toThrow(/separated by commas, e.g. AWS_CREDS_ACCESS_KEY_ID@github.com\/acme\/ml/);
  });

  it("refuses an entry without a repository, or with one that is not a repository key", () => {
    const bare = () => loadConfig({ HOME: "/h", REPRISE_LOCAL_SECRETS: "API_TOKEN" });
    expect(bare).toThrow(
      '"API_TOKEN" names no repository: write API_TOKEN@REPOSITORY for each repository that may use it (e.g. API_TOKEN@github.com/acme/ml), or API_TOKEN@* for any repository',
    );
    const bad = () => loadConfig({ HOME: "/h", REPRISE_LOCAL_SECRETS: "API_TOKEN@acme/ml" });
    expect(bad).toThrow(
      '"API_TOKEN@acme/ml": "acme/ml" is not a repository key: write HOST/OWNER/NAME (e.g. API_TOKEN@github.com/acme/ml), file:///ABSOLUTE/PATH, or * for any repository',
    );
  });

  it("REPRISE_KUBE_SECRETS: SECRET@REPOSITORY entries, Secret names as Kubernetes spells them", () => {
    expect(loadConfig({ HOME: "/h" }).kubeSecrets).toEqual([]);
    expect(
      loadConfig({ HOME: "/h", REPRISE_KUBE_SECRETS: "aws-creds@github.com/acme/ml shared.ro@*" })
        .kubeSecrets,
    ).toEqual([
      { name: "aws-creds", repos: ["github.com/acme/ml"] },
      { name: "shared.ro", repos: ["*"] },
    ]);
    expect(() => loadConfig({ HOME: "/h", REPRISE_KUBE_SECRETS: "AWS@*" })).toThrow(
      /REPRISE_KUBE_SECRETS: "AWS" is not a Kubernetes Secret name/,
    );
    expect(() => loadConfig({ HOME: "/h", REPRISE_KUBE_SECRETS: "aws-creds" })).toThrow(
      /"aws-creds" names no repository: write aws-creds@REPOSITORY/,
    );
  });

  it("maps a spec's secret and key to <SECRET>_<KEY>, upper-cased, other characters as _", () => {
    expect(localSecretVariable({ secret: "aws-creds", key: "access_key_id" })).toBe(
      "AWS_CREDS_ACCESS_KEY_ID",
    );
    expect(localSecretVariable({ secret: "db.prod", key: "pass-word.v2" })).toBe(
      "DB_PROD_PASS_WORD_V2",
    );
  });
});
