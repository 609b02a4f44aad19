/**
 * Issue 14, finding 4, performed as an attacker would over real HTTP: a registration is checked
 * against the git object ids it claims (core/version/git-objects.ts), so a write token cannot
 * register a commit with another commit's tree or spec, nor burn a SHA with forged content; and
 * a GitHub Actions OIDC token gets the actions its claims allow (runner/server/oidc-rules.ts):
 * activating production only from the production branch, or as REPRISE_OIDC_RULES says.
 */
import { execFileSync } from "node:child_process";
import type { AddressInfo } from "node:net";
import { serve } from "@hono/node-server";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readObjects } from "../../client/checkout.js";
import { ApiClient } from "../../client/client.js";
import { ensureRegistered } from "../../client/register.js";
import { parseTreeListing } from "../../core/hash/tree-listing.js";
import { buildVersion } from "../../core/version/build-version.js";
import { createApp } from "../../runner/server/app.js";
import { Authenticator } from "../../runner/server/auth.js";
import { Metrics } from "../../runner/server/metrics.js";
import { type OidcRule, parseOidcRules } from "../../runner/server/oidc-rules.js";
import { type TempRepo, tempRepo } from "../fakes/git-repo.js";
import { type OidcIssuer, startOidcIssuer } from "../fakes/oidc-issuer.js";
import { pipeline } from "../fixtures/specs.js";
import { openTestStore, type TestStore } from "../setup/stores.js";

const REPO = "github.com/acme/ml";
const AUDIENCE = "https://reprise.test";
const enc = encodeURIComponent;
// biome-ignore lint/suspicious/noExplicitAny: the tests read arbitrary JSON documents
type Body = Record<string, any>;

describe("verified registration and OIDC permissions", () => {
  let store: TestStore;
  let issuer: OidcIssuer;
  let git: TempRepo;
  let token: string;
  const servers: Array<{ url: string; close: () => Promise<void> }> = [];
  let url: string;
  let c1: string;
  let c2: string;

  const listen = async (rules: OidcRule[], productionBranch?: string) => {
    const app = createApp({
      store: store.store,
      executor: { logTail: async () => null },
      auth: new Authenticator({
        store: store.store,
        open: false,
        oidc: {
          issuer: issuer.issuer,
          audience: AUDIENCE,
          githubHost: "github.com",
          rules,
          ...(productionBranch ? { productionBranch } : {}),
        },
      }),
      metrics: new Metrics(),
      publicUrl: null,
      log: () => {},
    });
    const server = serve({ fetch: app.fetch, hostname: "127.0.0.1", port: 0 });
    await new Promise<void>((resolve) => server.once("listening", () => resolve()));
    const s = {
      url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
      close: () => new Promise<void>((resolve) => server.close(() => resolve())),
    };
    servers.push(s);
    return s.url;
  };
  const call = async (
    base: string,
    method: string,
    path: string,
    body: unknown,
    bearer = token,
  ): Promise<{ status: number; body: Body }> => {
    const res = await fetch(`${base}/api/v1${path}`, {
      method,
      headers: { authorization: `Bearer ${bearer}`, "content-type": "application/json" },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    return { status: res.status, body: (await res.json()) as Body };
  };
  const post = (body: unknown, bearer = token, base = url) =>
    call(base, "POST", `/repos/${enc(REPO)}/versions`, body, bearer);
  // Byte for byte (the fake's git() trims its output).
  const specAt = (sha: string) =>
    execFileSync("git", ["cat-file", "blob", `${sha}:reprise.yaml`], {
      cwd: git.dir,
      encoding: "utf8",
    });

  beforeAll(async () => {
    store = await openTestStore("pglite");
    issuer = await startOidcIssuer(AUDIENCE);
    token = (await store.store.tokens.create({ repos: [REPO], readOnly: false })).token;
    git = tempRepo();
    git.write({
      "reprise.yaml": pipeline(),
      "prep.py": "print(1)\n",
      "fit.py": "fit\n",
      "lib/util.py": "x = 1\n",
    });
    c1 = git.commit("c1");
    git.write({ "prep.py": "print(2)\n", "lib/util.py": "x = 2\n" });
    c2 = git.commit("c2");
    url = await listen([]);
  }, 60_000);

  afterAll(async () => {
    for (const s of servers) await s.close();
    await issuer?.close();
    await store?.dispose();
    git?.remove();
  });

  it("refuses C2 posted with C1's tree or C1's commit object, and registers nothing", async () => {
    const one = await readObjects(git.dir, c1);
    const two = await readObjects(git.dir, c2);
    const withC1Tree = await post({
      sha: c2,
      ref: null,
      spec: specAt(c2),
      commit: two.commit,
      trees: one.trees,
    });
    expect(withC1Tree.status).toBe(422);
    expect(withC1Tree.body.error.code).toBe("verification_failed");
    expect(withC1Tree.body.error.message).toMatch(
      /tree [0-9a-f]{40} \(the root tree\) was not sent/,
    );
    const withC1Commit = await post({ sha: c2, ref: null, spec: specAt(c1), ...one });
    expect(withC1Commit.status).toBe(422);
    expect(withC1Commit.body.error.message).toContain(
      `the commit object hashes to ${c1}, not ${c2}`,
    );
    expect((await call(url, "GET", `/repos/${enc(REPO)}/versions/${c2}`, undefined)).status).toBe(
      404,
    );
  });

  it("refuses a spec that is not the commit's, and a SHA with forged objects, without burning it", async () => {
    const one = await readObjects(git.dir, c1);
    const otherSpec = await post({ sha: c1, ref: null, spec: pipeline("evil.py"), ...one });
    expect(otherSpec.status).toBe(422);
    expect(otherSpec.body.error.message).toContain("the posted reprise.yaml hashes to");
    // An invalid spec under the real SHA would burn it if it were accepted.
    const forged = Buffer.from(`tree ${"0".repeat(40)}\n\nforged\n`).toString("base64");
    const burn = await post({
      sha: c1,
      ref: null,
      spec: "version: 1\ntasks: 3\n",
      commit: forged,
      trees: [],
    });
    expect(burn.status).toBe(422);
    expect(burn.body.error.code).toBe("verification_failed");
    // The real objects still register, with the tree git lists.
    const api = new ApiClient({ server: url, token });
    expect(await ensureRegistered(api, REPO, git.dir, c1, null)).toBe("registered");
    const v = await call(url, "GET", `/repos/${enc(REPO)}/versions/${c1}`, undefined);
    expect(v.status).toBe(200);
    const listing = parseTreeListing(git.git("ls-tree", "-r", "-z", "--full-tree", c1), "ls-tree");
    const expected = buildVersion(specAt(c1), listing);
    if (!expected.ok) throw new Error("the fixture's spec is invalid");
    expect(v.body.tasks).toEqual(
      Object.fromEntries(Object.entries(expected.version.tasks).map(([n, t]) => [n, t.digest])),
    );
    expect(v.body).toMatchObject({ message: "c1", parents: [] });
  });

  it("lets a feature branch's OIDC token register its own commit and start, not claim main nor activate", async () => {
    const feature = await issuer.token("acme/ml", {
      claims: { ref: "refs/heads/feature", sha: c2 },
    });
    const objects = await readObjects(git.dir, c2);
    const claimMain = await post({ sha: c2, ref: "main", spec: specAt(c2), ...objects }, feature);
    expect(claimMain.status).toBe(403);
    expect(claimMain.body.error.message).toContain('on branch "main" only from a workflow run');
    const own = await post({ sha: c2, ref: "feature", spec: specAt(c2), ...objects }, feature);
    expect(own.status).toBe(201);
    const started = await call(
      url,
      "POST",
      `/repos/${enc(REPO)}/executions`,
      { workflow: "train", sha: c2 },
      feature,
    );
    expect(started.status).toBe(201);
    const activate = await call(
      url,
      "POST",
      `/repos/${enc(REPO)}/production`,
      { sha: c2 },
      feature,
    );
    expect(activate.status).toBe(403);
    // It says what would do: the production branch's workflow, or a rule.
    expect(activate.body.error.message).toBe(
      `this OIDC token is for refs/heads/feature: only a workflow run of ${REPO}'s production branch (refs/heads/main) may activate. Run the workflow on main, or grant activate in REPRISE_OIDC_RULES by ref, environment or workflow (e.g. "- { environment: production, allow: [read, start, register, activate] }"); the production branch is the GitHub default branch the App last saw pushed, else REPRISE_PRODUCTION_BRANCH`,
    );
    const evict = await call(
      url,
      "DELETE",
      `/repos/${enc(REPO)}/cache?task=prep`,
      undefined,
      feature,
    );
    expect(evict.status).toBe(403);
    expect(
      (await call(url, "GET", `/repos/${enc(REPO)}/production`, undefined)).body.current,
    ).toBeNull();
  });

  it("lets a workflow run of the production branch activate by default", async () => {
    const main = await issuer.token("acme/ml", { claims: { ref: "refs/heads/main", sha: c1 } });
    const path = `/repos/${enc(REPO)}/production`;
    const ok = await call(url, "POST", path, { sha: c1 }, main);
    expect([ok.status, ok.body.sha, ok.body.changed]).toEqual([200, c1, true]);
    expect(ok.body.actor).toBe("repo:acme/ml:ref:refs/heads/main");
    // A tag or a pull request's merge ref of the same name is not the branch.
    for (const ref of ["refs/tags/main", "refs/pull/1/merge", "refs/heads/main-old"]) {
      const other = await issuer.token("acme/ml", { claims: { ref } });
      const refused = await call(url, "POST", path, { sha: c1 }, other);
      expect([ref, refused.status]).toEqual([ref, 403]);
    }
  });

  it("takes the production branch the App recorded, else REPRISE_PRODUCTION_BRANCH", async () => {
    const path = (repo: string) => `/repos/${enc(repo)}/production`;
    const tokenOf = (repository: string, branch: string) =>
      issuer.token(repository, { claims: { ref: `refs/heads/${branch}` } });
    // The App saw pushes whose repository.default_branch is trunk (app/on-push.ts).
    await store.store.production.setBranch(REPO, "trunk");
    try {
      const fromMain = await call(
        url,
        "POST",
        path(REPO),
        { sha: c1 },
        await tokenOf("acme/ml", "main"),
      );
      expect(fromMain.status).toBe(403);
      expect(fromMain.body.error.message).toContain("production branch (refs/heads/trunk)");
      const fromTrunk = await call(
        url,
        "POST",
        path(REPO),
        { sha: c1 },
        await tokenOf("acme/ml", "trunk"),
      );
      expect(fromTrunk.status).toBe(200);
    } finally {
      await store.store.production.setBranch(REPO, "main");
    }
    // A repository the App has said nothing of: the configured branch.
    const configured = await listen([], "release");
    const OTHER = "github.com/acme/other";
    const release = await tokenOf("acme/other", "release");
    const objects = await readObjects(git.dir, c1);
    const registered = await call(
      configured,
      "POST",
      `/repos/${enc(OTHER)}/versions`,
      { sha: c1, ref: null, spec: specAt(c1), ...objects },
      release,
    );
    expect(registered.status).toBe(201);
    const fromMain = await call(
      configured,
      "POST",
      path(OTHER),
      { sha: c1 },
      await tokenOf("acme/other", "main"),
    );
    expect(fromMain.status).toBe(403);
    expect(fromMain.body.error.message).toContain("production branch (refs/heads/release)");
    expect((await call(configured, "POST", path(OTHER), { sha: c1 }, release)).status).toBe(200);
  });

  it("grants activate to the environment a rules file names, and only to it", async () => {
    const rules = parseOidcRules(
      "rules:\n  - { repository: acme/*, environment: production, allow: [read, start, register, activate] }\n",
    );
    const ruled = await listen(rules);
    const prod = await issuer.token("acme/ml", {
      claims: { ref: "refs/heads/feature", environment: "production" },
    });
    const plain = await issuer.token("acme/ml", { claims: { ref: "refs/heads/feature" } });
    const path = `/repos/${enc(REPO)}/production`;
    expect((await call(ruled, "POST", path, { sha: c1 }, plain)).status).toBe(403);
    const ok = await call(ruled, "POST", path, { sha: c1 }, prod);
    expect([ok.status, ok.body.sha]).toEqual([200, c1]);
  });

  it("lets a rule take activate from the production branch too", async () => {
    const ruled = await listen(
      parseOidcRules("rules:\n  - { ref: refs/heads/main, allow: [read] }\n"),
    );
    const main = await issuer.token("acme/ml", { claims: { ref: "refs/heads/main" } });
    const refused = await call(ruled, "POST", `/repos/${enc(REPO)}/production`, { sha: c1 }, main);
    expect(refused.status).toBe(403);
    expect(refused.body.error.message).toBe(`this credential is read-only for ${REPO}`);
  });

  it("refuses a bad rules file naming the line to fix", () => {
    expect(() =>
      parseOidcRules("rules:\n  - ref: refs/heads/main\n    allow: [deploy]\n", "rules.yaml"),
    ).toThrow(/^rules\.yaml:3: rules\.0\.allow\.0: /);
  });
});
