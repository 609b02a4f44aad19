/**
 * The web UI in headless Chromium over real HTTP (issue 7): the seed story's relaunch at `fixed`
 * shows prepare and featurize as cached and train as ran; a cached node's panel links to the
 * execution that computed it, and following the link lands on that node, which ran there. Every
 * request the pages make stays on this server. Screenshots go to reports/screenshots/.
 */
import { mkdirSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { type ServerType, serve } from "@hono/node-server";
import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createApp } from "../../runner/server/app.js";
import { uiRoutes } from "../../runner/server/ui/index.js";
import { type Browser, launchChromium } from "../fakes/browser.js";
import { ROOT } from "../fakes/cli.js";
import { runUiStory, type UiStory } from "../fakes/ui-story.js";

const SHOTS = join(ROOT, "reports/screenshots");

let story: UiStory;
let server: ServerType;
let base: string;
let browser: Browser;
/** Every URL a page asked for, to prove nothing leaves the server. */
const requested: string[] = [];
/** Console errors: a Content-Security-Policy violation (an inline style, say) shows up here. */
const consoleErrors: string[] = [];

beforeAll(async () => {
  mkdirSync(SHOTS, { recursive: true });
  // Chromium starts while the story runs.
  const [s, b] = await Promise.all([runUiStory(), launchChromium()]);
  story = s;
  browser = b;
  browser.context.on("request", (r) => requested.push(r.url()));
  browser.context.on("console", (m) => {
    if (m.type() === "error") consoleErrors.push(m.text());
  });
  const deps = story.deps(true);
  deps.ui = uiRoutes(deps);
  const app = createApp(deps);
  await new Promise<void>((resolve) => {
    server = serve({ fetch: app.fetch, hostname: "127.0.0.1", port: 0 }, () => resolve());
  });
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}, 60_000);

afterAll(async () => {
  await browser?.close();
  if (server && "closeAllConnections" in server) server.closeAllConnections();
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  await story?.close();
});

const how = (page: Page, node: string) =>
  page.locator(`svg.dag a.node[data-node="${node}"]`).getAttribute("data-how");

describe("the execution page in Chromium", () => {
  it("draws the relaunch's DAG with prepare and featurize cached and train ran, and follows a cached node's lineage", async () => {
    const page = await browser.context.newPage();
    await page.goto(`${base}/executions/${story.fixed.id}`);
    await expect.poll(() => page.locator("svg.dag a.node").count()).toBe(4);
    expect(await how(page, "prepare")).toBe("cached");
    expect(await how(page, "featurize")).toBe("cached");
    expect(await how(page, "train")).toBe("ran");
    expect(await how(page, "evaluate")).toBe("ran");
    // The stylesheet applied: a cached node is drawn dashed, in the cached colour.
    const dash = await page
      .locator('svg.dag a.node[data-node="prepare"] rect')
      // A string: the page's code, type-checked by no one here (the tests have no DOM types).
      .evaluate("(el) => getComputedStyle(el).strokeDasharray");
    expect(dash).not.toBe("none");
    await page.screenshot({ path: join(SHOTS, "execution-relaunch.png"), fullPage: true });

    await page.locator('svg.dag a.node[data-node="prepare"]').click();
    await page.waitForURL(/node=prepare/);
    await expect.poll(() => page.locator("#lineage").textContent()).toContain("computed by");
    await page.screenshot({ path: join(SHOTS, "execution-cached-node.png"), fullPage: true });

    await page.locator("#lineage a[data-lineage]").click();
    await page.waitForURL(new RegExp(`/executions/${story.broken.id}\\?node=prepare`));
    expect(await page.locator("[data-selected]").getAttribute("data-selected")).toBe("prepare");
    expect(await how(page, "prepare")).toBe("ran");
    expect(await page.locator("h1").textContent()).toContain(story.broken.id);
    expect(await page.locator("#log").textContent()).not.toBe("");
    await page.screenshot({ path: join(SHOTS, "execution-producer.png"), fullPage: true });
    await page.close();

    const foreign = requested.filter((u) => !u.startsWith(`${base}/`));
    expect(foreign).toEqual([]);
    expect(consoleErrors).toEqual([]);
  });

  it("shows the repository, runs, compare and task history pages at 1280 px", async () => {
    const page = await browser.context.newPage();
    const repo = encodeURIComponent(story.repo);
    const pages = {
      repository: `/repos/${repo}`,
      runs: `/repos/${repo}/workflows/train`,
      compare: `/compare?a=${story.broken.id}&b=${story.fixed.id}`,
      "task-history": `/repos/${repo}/tasks/train`,
    };
    for (const [name, path] of Object.entries(pages)) {
      const res = await page.goto(`${base}${path}`);
      expect(res?.status(), name).toBe(200);
      expect(await page.evaluate<string>("document.compatMode"), name).toBe("CSS1Compat");
      await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
    }
    // Pick two runs in the runs list and compare them.
    await page.goto(`${base}${pages.runs}`);
    await page.locator(`input[name="a"][value="${story.broken.id}"]`).check();
    await page.locator(`input[name="b"][value="${story.fixed.id}"]`).check();
    await page.locator('button[type="submit"]').click();
    await page.waitForURL(/\/compare\?/);
    expect(new URL(page.url()).searchParams.get("a")).toBe(story.broken.id);
    expect(await page.locator("#compare-nodes tr[data-node]").count()).toBe(4);
    await page.close();
    expect(consoleErrors).toEqual([]);
  });

  it("signs in through the form on a secured server, with the token in a cookie scripts cannot read", async () => {
    const deps = story.deps(false);
    deps.ui = uiRoutes(deps);
    const secured = createApp(deps);
    const { token } = await story.db.store.tokens.create({ repos: [story.repo], readOnly: true });
    let other: ServerType | null = null;
    const url = await new Promise<string>((resolve) => {
      other = serve({ fetch: secured.fetch, hostname: "127.0.0.1", port: 0 }, (info) =>
        resolve(`http://127.0.0.1:${info.port}`),
      );
    });
    try {
      const page = await browser.context.newPage();
      await page.goto(`${url}/executions/${story.fixed.id}`);
      await page.waitForURL(/\/login\?next=/);
      await page.locator('input[name="token"]').fill(token);
      await page.locator('button[type="submit"]').click();
      await page.waitForURL(`${url}/executions/${story.fixed.id}`);
      expect(await how(page, "prepare")).toBe("cached");
      expect(await page.evaluate<string>("document.cookie")).toBe("");
      const cookie = (await browser.context.cookies(url)).find((c) => c.name === "reprise_token");
      expect(cookie).toMatchObject({ name: "reprise_token", httpOnly: true, sameSite: "Strict" });
      await page.screenshot({ path: join(SHOTS, "signed-in.png") });
      await page.locator("header.top form button").click();
      await page.waitForURL(/\/login$/);
      // Signed out: no session left, only the login form's anti-forgery cookie.
      const left = await browser.context.cookies(url);
      expect(left.map((c) => c.name)).toEqual(["reprise_csrf"]);
      await page.close();
    } finally {
      const s = other as ServerType | null;
      // The browser keeps its connections alive: close them, or close() waits for them.
      if (s && "closeAllConnections" in s) s.closeAllConnections();
      if (s) await new Promise<void>((resolve) => s.close(() => resolve()));
    }
  });

  it("is usable 390 px wide: no page-wide horizontal scroll on the execution, repository and compare pages", async () => {
    const page = await browser.context.newPage();
    await page.setViewportSize({ width: 390, height: 844 });
    const pages = {
      "narrow-execution": `/executions/${story.fixed.id}?node=train`,
      "narrow-repository": `/repos/${encodeURIComponent(story.repo)}`,
      "narrow-compare": `/compare?a=${story.broken.id}&b=${story.fixed.id}`,
    };
    for (const [name, path] of Object.entries(pages)) {
      await page.goto(`${base}${path}`);
      const width = await page.evaluate<number>("document.documentElement.scrollWidth");
      expect(width, name).toBeLessThanOrEqual(390);
      await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
    }
    await page.close();
    expect(consoleErrors).toEqual([]);
  });
});
