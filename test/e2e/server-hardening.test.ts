/**
 * Issue 14 (findings 3, 9, 11), each attack sent for real over loopback HTTP: a rebound `Host`,
 * another site's `Origin`, `127.evil.example`, a server restarted after its last token was
 * revoked, REPRISE_AUTH=none beyond loopback, a forged login, `next` open redirects, another
 * repository's execution id, the logs API's paths, and parallel 25 MiB webhook bodies with a
 * made-up signature.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type ServerType, serve } from "@hono/node-server";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { GitHubApp } from "../../app/app.js";
import { MAX_UNVERIFIED_BYTES } from "../../app/signed-body.js";
import { loadConfig } from "../../runner/config.js";
import { createApp, MAX_WEBHOOK_BYTES, WEBHOOK_PATH } from "../../runner/server/app.js";
import { Authenticator } from "../../runner/server/auth.js";
import { isLoopback } from "../../runner/server/hosts.js";
import { Metrics } from "../../runner/server/metrics.js";
import { startServer } from "../../runner/server/serve.js";
import { uiRoutes } from "../../runner/server/ui/index.js";
import { safeNext } from "../../runner/server/ui/session.js";
import { FakeGitHub, testGitHubApp } from "../fakes/github/index.js";
import { csrfOf } from "../fakes/ui-login.js";
import { runUiStory, type UiStory } from "../fakes/ui-story.js";
import { openTestStore, type TestStore } from "../setup/stores.js";

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

/** A request with any Host header (fetch does not let a caller set it). */
function send(
  port: number,
  path: string,
  o: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      { host: "127.0.0.1", port, path, method: o.method ?? "GET", headers: o.headers ?? {} },
      (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (d: string) => (text += d));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text }));
      },
    );
    req.on("error", reject);
    req.end(o.body);
  });
}

function listen(fetch: (req: Request) => Response | Promise<Response>): Promise<{
  server: ServerType;
  port: number;
}> {
  return new Promise((resolve) => {
    const server = serve({ fetch, hostname: "127.0.0.1", port: 0 }, (info) =>
      resolve({ server, port: info.port }),
    );
  });
}

const enc = encodeURIComponent;

describe("the UI and API of a secured server, attacked", () => {
  let story: UiStory;
  let server: ServerType;
  let port: number;
  let mine: string;
  let other: string;

  beforeAll(async () => {
    story = await runUiStory();
    const deps = story.deps(false);
    deps.ui = uiRoutes(deps);
    ({ server, port } = await listen(createApp(deps).fetch));
    mine = (await story.db.store.tokens.create({ repos: [story.repo], readOnly: true })).token;
    other = (
      await story.db.store.tokens.create({ repos: ["github.com/acme/other"], readOnly: true })
    ).token;
  }, 60_000);
  afterAll(async () => {
    await new Promise((r) => server?.close(r));
    await story?.close();
  });

  it("answers a rebound Host (DNS rebinding) with 421 on the API, the UI and the webhooks", async () => {
    for (const path of ["/api/v1/repos", "/", "/login", WEBHOOK_PATH]) {
      for (const host of [`attacker.example:${port}`, `127.evil.example:${port}`, "evil"]) {
        const method = path === WEBHOOK_PATH ? "POST" : "GET";
        const r = await send(port, path, {
          method,
          headers: { host, authorization: `Bearer ${mine}` },
        });
        expect([path, host, r.status]).toEqual([path, host, 421]);
        expect(r.text).toContain("is not this server's name");
      }
    }
    for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, `127.1.2.3:${port}`]) {
      const r = await send(port, "/api/v1/repos", {
        headers: { host, authorization: `Bearer ${mine}` },
      });
      expect([host, r.status]).toEqual([host, 200]);
    }
    // Probes reach the pod by its IP.
    expect((await send(port, "/healthz", { headers: { host: "10.1.2.3:8080" } })).status).toBe(200);
  });

  it("checks loopback names exactly", () => {
    for (const yes of ["localhost", "127.0.0.1", "127.255.0.9", "::1", "[::1]"])
      expect([yes, isLoopback(yes)]).toEqual([yes, true]);
    for (const no of [
      "127.evil.example",
      "127.0.0.1.evil",
      "localhost.evil",
      "127.0.0.256",
      "128.0.0.1",
      "0x7f.0.0.1",
    ])
      expect([no, isLoopback(no)]).toEqual([no, false]);
  });

  it("refuses a POST whose Origin is another site, and takes its own", async () => {
    const { cookie, csrf } = await csrfOf((path, init) =>
      fetch(`http://127.0.0.1:${port}${path}`, init),
    );
    const form = {
      method: "POST",
      body: new URLSearchParams({ token: mine, next: "/", csrf }).toString(),
    };
    const headers = {
      host: `127.0.0.1:${port}`,
      "content-type": "application/x-www-form-urlencoded",
      cookie,
    };
    for (const origin of ["http://attacker.example", "null", `http://localhost:${port + 1}`]) {
      const r = await send(port, "/login", { ...form, headers: { ...headers, origin } });
      expect([origin, r.status]).toEqual([origin, 403]);
      expect(r.text).toContain("is not this server");
    }
    const api = await send(port, `/api/v1/repos/${enc(story.repo)}/executions`, {
      method: "POST",
      headers: {
        host: `127.0.0.1:${port}`,
        origin: "http://attacker.example",
        authorization: `Bearer ${mine}`,
        "content-type": "application/json",
      },
      body: "{}",
    });
    expect(api.status).toBe(403);
    const ok = await send(port, "/login", {
      ...form,
      headers: { ...headers, origin: `http://127.0.0.1:${port}` },
    });
    expect(ok.status).toBe(303);
  });

  it("refuses a login or a logout without the form's anti-forgery token", async () => {
    const headers = {
      host: `127.0.0.1:${port}`,
      "content-type": "application/x-www-form-urlencoded",
    };
    const bare = await send(port, "/login", {
      method: "POST",
      headers,
      body: new URLSearchParams({ token: mine, next: "/" }).toString(),
    });
    expect(bare.status).toBe(403);
    expect(bare.text).toContain("anti-forgery token");
    expect(String(bare.headers["set-cookie"] ?? "")).not.toContain("reprise_token=rp_");
    // A token of the attacker's own is not the victim's cookie.
    const { cookie } = await csrfOf((path, init) => fetch(`http://127.0.0.1:${port}${path}`, init));
    const mismatched = await send(port, "/login", {
      method: "POST",
      headers: { ...headers, cookie },
      body: new URLSearchParams({ token: mine, csrf: "A".repeat(43) }).toString(),
    });
    expect(mismatched.status).toBe(403);
    const logout = await send(port, "/logout", { method: "POST", headers: { ...headers, cookie } });
    expect(logout.status).toBe(403);
  });

  it("never redirects off the server after login, whatever `next` says", async () => {
    const variants = [
      "//evil.example/",
      "/\\evil.example",
      "/\t/evil.example",
      "/\n/evil.example",
      "/ /evil.example",
      "https://evil.example/",
      "\\/evil.example",
      "/\\/evil.example",
      "javascript:alert(1)",
    ];
    for (const next of variants) {
      const { cookie, csrf } = await csrfOf((path, init) =>
        fetch(`http://127.0.0.1:${port}${path}`, init),
      );
      const r = await send(port, "/login", {
        method: "POST",
        headers: {
          host: `127.0.0.1:${port}`,
          "content-type": "application/x-www-form-urlencoded",
          cookie,
        },
        body: new URLSearchParams({ token: mine, next, csrf }).toString(),
      });
      expect([next, r.status, r.headers.location]).toEqual([next, 303, "/"]);
    }
    expect(safeNext("/executions/x?node=a#node")).toBe("/executions/x?node=a#node");
  });

  it("answers another repository's execution id as an unknown one (404), on the API and the UI", async () => {
    const id = story.fixed.id;
    for (const path of [
      `/api/v1/executions/${id}`,
      `/api/v1/executions/${id}/nodes/train/logs`,
      `/api/v1/executions/${id}/nodes/train/lineage`,
    ]) {
      const theirs = await send(port, path, {
        headers: { host: `127.0.0.1:${port}`, authorization: `Bearer ${other}` },
      });
      const unknown = await send(port, path.replace(id, "ex_unknown"), {
        headers: { host: `127.0.0.1:${port}`, authorization: `Bearer ${other}` },
      });
      expect([path, theirs.status]).toEqual([path, 404]);
      expect(theirs.text).toBe(unknown.text.replace("ex_unknown", id));
    }
    const page = await send(port, `/executions/${id}`, {
      headers: { host: `127.0.0.1:${port}`, authorization: `Bearer ${other}` },
    });
    expect(page.status).toBe(404);
  });

  it("returns a node's log without the runner's filesystem path", async () => {
    const r = await send(port, `/api/v1/executions/${story.fixed.id}/nodes/train/logs`, {
      headers: { host: `127.0.0.1:${port}`, authorization: `Bearer ${mine}` },
    });
    expect(r.status).toBe(200);
    const body = JSON.parse(r.text) as Record<string, unknown>;
    expect(body.logged).toBe(true);
    expect(typeof body.log).toBe("string");
    expect(body).not.toHaveProperty("logRef");
    // The log is what the task printed; nothing else names where the runner keeps it.
    const { log: _printed, ...rest } = body;
    expect(JSON.stringify(rest)).not.toContain(story.work);
  });
});

describe("authentication is explicit", () => {
  const dirs: string[] = [];
  afterAll(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });
  const env = (data: string, extra: Record<string, string> = {}) =>
    loadConfig({
      PATH: process.env.PATH,
      HOME: data,
      REPRISE_DATA_DIR: data,
      DATABASE_URL: "",
      HOST: "127.0.0.1",
      PORT: "0",
      LOG_LEVEL: "silent",
      ...extra,
    });

  it("refuses REPRISE_AUTH=none on an address beyond loopback", async () => {
    const data = mkdtempSync(join(tmpdir(), "reprise-hardening-"));
    dirs.push(data);
    await expect(startServer(env(data, { REPRISE_AUTH: "none", HOST: "0.0.0.0" }))).rejects.toThrow(
      "refusing REPRISE_AUTH=none on 0.0.0.0",
    );
    expect(() => env(data, { REPRISE_AUTH: "open" })).toThrow('REPRISE_AUTH: must be "none"');
  }, 60_000);

  it("stays closed after a restart with the last token revoked, and with none yet", async () => {
    const data = mkdtempSync(join(tmpdir(), "reprise-hardening-"));
    dirs.push(data);
    const first = await startServer(env(data));
    let token: string;
    try {
      const none = await fetch(`${first.url}/api/v1/repos`);
      expect(none.status).toBe(401);
      expect(await none.text()).toContain("reprise token create");
      const made = await first.runtime.open.store.tokens.create({
        repos: ["github.com/acme/ml"],
        readOnly: true,
      });
      token = made.token;
      expect(
        (
          await fetch(`${first.url}/api/v1/repos`, {
            headers: { authorization: `Bearer ${token}` },
          })
        ).status,
      ).toBe(200);
      expect(await first.runtime.open.store.tokens.revoke(made.record.id)).toBe(true);
    } finally {
      await first.close();
    }
    const again = await startServer(env(data));
    try {
      const anonymous = await fetch(`${again.url}/api/v1/repos`);
      expect(anonymous.status).toBe(401);
      const revoked = await fetch(`${again.url}/api/v1/repos`, {
        headers: { authorization: `Bearer ${token}` },
      });
      expect(revoked.status).toBe(401);
    } finally {
      await again.close();
    }
    const open = await startServer(env(data, { REPRISE_AUTH: "none" }));
    try {
      expect((await fetch(`${open.url}/api/v1/repos`)).status).toBe(200);
      // Open is no excuse for another name: a rebound Host still gets nothing.
      const port = Number(new URL(open.url).port);
      expect(
        (await send(port, "/api/v1/repos", { headers: { host: `evil.example:${port}` } })).status,
      ).toBe(421);
    } finally {
      await open.close();
    }
  }, 120_000);
});

describe("webhook bodies with a made-up signature", () => {
  const SECRET = "hardening-secret";
  let db: TestStore;
  let fake: FakeGitHub;
  let github: GitHubApp;
  let server: ServerType;
  let port: number;

  beforeAll(async () => {
    db = await openTestStore("pglite");
    fake = await FakeGitHub.start();
    github = testGitHubApp({ store: db.store, fake, secret: SECRET, tickMs: 50 });
    ({ server, port } = await listen(
      createApp({
        store: db.store,
        executor: { logTail: async () => null },
        auth: new Authenticator({ store: db.store, open: false, oidc: null }),
        metrics: new Metrics(),
        publicUrl: null,
        log: () => undefined,
        webhooks: github.webhooks,
      }).fetch,
    ));
    github.start();
  }, 60_000);
  afterAll(async () => {
    await github?.close();
    await new Promise((r) => server?.close(r));
    await fake?.close();
    await db?.dispose();
  });

  /** A 25 MiB body streamed in 1 MiB chunks; the status, or "reset" when cut off before one. */
  function big(declare: boolean): Promise<number | "reset"> {
    const chunk = Buffer.alloc(1024 * 1024, 0x20);
    const chunks = MAX_WEBHOOK_BYTES / chunk.length;
    return new Promise((resolve) => {
      const req = httpRequest(
        {
          host: "127.0.0.1",
          port,
          path: WEBHOOK_PATH,
          method: "POST",
          headers: {
            "content-type": "application/json",
            "x-github-event": "push",
            "x-github-delivery": `bogus-${Math.random()}`,
            "x-hub-signature-256": `sha256=${"0".repeat(64)}`,
            ...(declare ? { "content-length": String(MAX_WEBHOOK_BYTES) } : {}),
          },
        },
        (res) => {
          res.resume();
          res.on("end", () => resolve(res.statusCode ?? 0));
        },
      );
      req.on("error", () => resolve("reset"));
      let sent = 0;
      const more = () => {
        while (sent < chunks) {
          sent++;
          if (!req.write(chunk)) return void req.once("drain", more);
        }
        req.end();
      };
      more();
    });
  }

  it("keeps at most MAX_UNVERIFIED_BYTES of them in memory at once, refusing the rest with 503", async () => {
    const answers = await Promise.all(Array.from({ length: 30 }, (_, i) => big(i % 2 === 0)));
    // Every one is refused: a wrong signature (401) or no room (503); none is kept.
    for (const a of answers) expect([401, 503, "reset"]).toContain(a);
    expect(answers.filter((a) => a === 503).length).toBeGreaterThan(0);
    expect(answers.filter((a) => a === 401).length).toBeGreaterThan(0);
    expect(github.inFlight.peak).toBeLessThanOrEqual(MAX_UNVERIFIED_BYTES);
    expect(github.inFlight.bytes).toBe(0);
  }, 120_000);

  it("refuses a malformed signature before reading the body", async () => {
    const r = await send(port, WEBHOOK_PATH, {
      method: "POST",
      headers: {
        "x-hub-signature-256": "sha1=abc",
        "x-github-event": "push",
        "x-github-delivery": "d1",
      },
      body: "{}",
    });
    expect(r.status).toBe(401);
    expect(r.text).toContain("sha256=<64 hex digits>");
  });
});
