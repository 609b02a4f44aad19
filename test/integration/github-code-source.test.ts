/**
 * Code for Kubernetes attempts of GitHub repositories: the tarball URL on the configured GitHub
 * (GHE_HOST here: the fake) and a token narrowed to the one repository and `contents: read`,
 * reused while it lives; local repositories keep their path.
 */
import { gunzipSync } from "node:zlib";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { appCodeSource } from "../../app/code-source.js";
import { GitHubClient } from "../../app/github-client.js";
import { tempRepo } from "../fakes/git-repo.js";
import { appPrivateKey, FakeGitHub } from "../fakes/github/index.js";

let fake: FakeGitHub;
const repo = tempRepo("reprise-code-source-");
let sha = "";

beforeAll(async () => {
  fake = await FakeGitHub.start();
  repo.write({ "reprise.yaml": "version: 1\n" });
  sha = repo.commit("one");
  fake.addRepo({ fullName: "acme/kube", dir: repo.dir, installationId: 7 });
});
afterAll(async () => {
  await fake.close();
  repo.remove();
});

describe("the App's code source for Kubernetes attempts", () => {
  it("gives the tarball URL and a read-only token for that repository, reused while it lives", async () => {
    const client = new GitHubClient(
      { appId: 1, privateKey: appPrivateKey(), webhookSecret: "s", baseUrl: fake.baseUrl },
      fake.host,
      pino({ level: "silent" }),
    );
    const source = appCodeSource(client);
    const key = `${fake.host}/acme/kube`;
    const code = await source(key, sha);
    expect(code.url).toBe(`${fake.baseUrl}/repos/acme/kube/tarball/${sha}`);
    expect(code.token).toMatch(/^ghs_fake_7_/);
    const minted = fake.calls.find((c) => c.path === "/app/installations/7/access_tokens");
    expect(minted?.body).toEqual({ repositories: ["kube"], permissions: { contents: "read" } });

    // What the init container's curl does with it.
    const res = await fetch(code.url, { headers: { authorization: `Bearer ${code.token}` } });
    expect(res.status).toBe(200);
    const tar = gunzipSync(Buffer.from(await res.arrayBuffer())).toString("latin1");
    expect(tar).toContain(`acme-kube-${sha.slice(0, 7)}/reprise.yaml`);

    await source(key, sha);
    expect(fake.count("POST", /\/access_tokens$/)).toBe(1);
    expect(await source("file:///srv/repo", sha)).toEqual({ url: "file:///srv/repo" });
  });
});
