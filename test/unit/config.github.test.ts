import { generateKeyPairSync } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../../runner/config.js";

const pem = generateKeyPairSync("rsa", { modulusLength: 1024 })
  .privateKey.export({ type: "pkcs1", format: "pem" })
  .toString();

describe("loadConfig: the GitHub App", () => {
  it("is off without APP_ID", () => {
    expect(loadConfig({ HOME: "/h" }).githubApp).toBeNull();
  });

  it("reads Probot's variables, the key from PRIVATE_KEY or PRIVATE_KEY_PATH, GHE as Probot does", () => {
    const app = loadConfig({
      HOME: "/h",
      APP_ID: "42",
      PRIVATE_KEY: pem,
      WEBHOOK_SECRET: "s",
    }).githubApp;
    expect(app).toEqual({
      appId: 42,
      privateKey: pem,
      webhookSecret: "s",
      baseUrl: "https://api.github.com",
    });
    const escaped = pem.replace(/\n/g, "\\n");
    expect(
      loadConfig({ APP_ID: "1", PRIVATE_KEY: escaped, WEBHOOK_SECRET: "s" }).githubApp?.privateKey,
    ).toBe(pem);
    const base64 = Buffer.from(pem).toString("base64");
    expect(
      loadConfig({ APP_ID: "1", PRIVATE_KEY: base64, WEBHOOK_SECRET: "s" }).githubApp?.privateKey,
    ).toBe(pem);
    const file = join(mkdtempSync(join(tmpdir(), "reprise-key-")), "app.pem");
    writeFileSync(file, pem);
    const ghe = loadConfig({
      APP_ID: "1",
      PRIVATE_KEY_PATH: file,
      WEBHOOK_SECRET: "s",
      GHE_HOST: "github.example.com",
    });
    expect(ghe.githubApp).toMatchObject({
      privateKey: pem,
      baseUrl: "https://github.example.com/api/v3",
    });
    expect(ghe.githubHost).toBe("github.example.com");
    expect(
      loadConfig({
        APP_ID: "1",
        PRIVATE_KEY: pem,
        WEBHOOK_SECRET: "s",
        GHE_HOST: "127.0.0.1:8080",
        GHE_PROTOCOL: "http",
      }).githubApp?.baseUrl,
    ).toBe("http://127.0.0.1:8080/api/v3");
  });

  it("refuses to start without WEBHOOK_SECRET, a key, or a numeric APP_ID, saying how to fix it", () => {
    const run = (env: Record<string, string>) => () => loadConfig(env);
    expect(run({ APP_ID: "1", PRIVATE_KEY: pem })).toThrow(ConfigError);
    expect(run({ APP_ID: "1", PRIVATE_KEY: pem })).toThrow(
      /WEBHOOK_SECRET: is not set: set it to the webhook secret configured on the GitHub App/,
    );
    expect(run({ APP_ID: "1", WEBHOOK_SECRET: "s" })).toThrow(/PRIVATE_KEY: is not set/);
    expect(run({ APP_ID: "1", WEBHOOK_SECRET: "s", PRIVATE_KEY_PATH: "/nope.pem" })).toThrow(
      /PRIVATE_KEY_PATH: cannot read \/nope.pem \(ENOENT\)/,
    );
    expect(run({ APP_ID: "1", WEBHOOK_SECRET: "s", PRIVATE_KEY: "hello" })).toThrow(
      /PRIVATE_KEY: is not a PEM private key/,
    );
    expect(run({ APP_ID: "my-app", WEBHOOK_SECRET: "s", PRIVATE_KEY: pem })).toThrow(
      /APP_ID: must be the GitHub App's numeric id/,
    );
    expect(run({ WEBHOOK_SECRET: "s" })).toThrow(/APP_ID: is not set but/);
    expect(run({ GHE_PROTOCOL: "ftp" })).toThrow(/GHE_PROTOCOL: must be "https"/);
  });
});
