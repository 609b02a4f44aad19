/** REPRISE_LOCAL_SECRETS: the runner variables the local executor may hand to tasks. */
import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../../runner/config.js";
import { localSecretVariable } from "../../runner/executors/local/index.js";

describe("REPRISE_LOCAL_SECRETS", () => {
  it("is a list of variable names separated by commas or spaces; none by default", () => {
    expect(loadConfig({ HOME: "/h" }).localSecrets).toEqual([]);
    expect(
      loadConfig({ HOME: "/h", REPRISE_LOCAL_SECRETS: " AWS_CREDS_KEY, gh_token_token  X,X" })
        .localSecrets,
    ).toEqual(["AWS_CREDS_KEY", "gh_token_token", "X"]);
  });

  it("refuses an entry that is not a variable name, saying how to write the list", () => {
    const run = () => loadConfig({ HOME: "/h", REPRISE_LOCAL_SECRETS: "GOOD,aws-creds,1X" });
    expect(run).toThrow(ConfigError);
    expect(run).toThrow(/REPRISE_LOCAL_SECRETS: "aws-creds" is not an environment variable name/);
    expect(run).toThrow(/"1X" is not an environment variable name/);
    expect(run).toThrow(/separated by commas, e.g. AWS_CREDS_ACCESS_KEY_ID/);
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
