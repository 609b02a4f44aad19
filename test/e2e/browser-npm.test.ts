/**
 * The Chromium `npm ci` brings (@sparticuz/chromium), which the browser tests use on a machine
 * without /usr/bin/chromium (test/fakes/browser.ts): launched here on every run, whatever the
 * machine has, so a newcomer's `npm test` is proven to work without a system browser.
 */
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Browser, launchChromium, npmChromiumDir } from "../fakes/browser.js";

let browser: Browser;
let server: Server;
let base: string;

beforeAll(async () => {
  server = createServer((_req, res) => {
    res.setHeader("content-type", "text/html; charset=utf-8");
    res.setHeader("content-security-policy", "default-src 'self'");
    res.end(
      '<!doctype html><title>reprise</title><p id="p">npm chromium</p><p style="color:red">x</p>',
    );
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  browser = await launchChromium({ width: 800, height: 600 }, "npm");
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
});

/** The /proc maps of the running processes whose executable is `exe`. */
function mapsOf(exe: string): string[] {
  const maps: string[] = [];
  for (const pid of readdirSync("/proc").filter((n) => /^\d+$/.test(n))) {
    try {
      if (readlinkSync(`/proc/${pid}/exe`) === exe)
        maps.push(readFileSync(`/proc/${pid}/maps`, "utf8"));
    } catch {
      // gone meanwhile, or not ours to read
    }
  }
  return maps;
}

describe("the Chromium npm ci brings", () => {
  it("renders a page over loopback, enforcing its Content-Security-Policy, on its own NSS libraries", async () => {
    expect(browser.executablePath).toBe(join(npmChromiumDir(), "chromium"));
    const page = await browser.context.newPage();
    const violations: string[] = [];
    page.on("console", (m) => {
      if (m.type() === "error") violations.push(m.text());
    });
    await page.goto(base);
    expect(await page.title()).toBe("reprise");
    expect(await page.locator("#p").textContent()).toBe("npm chromium");
    // default-src 'self' refuses the inline style attribute: the policy is enforced.
    await expect.poll(() => violations.join("\n")).toMatch(/Content Security Policy/);
    // The unpacked libraries, not the system's: a machine without NSS runs it too.
    const maps = mapsOf(browser.executablePath);
    expect(maps.length).toBeGreaterThan(0);
    expect(maps.join("\n")).toContain(join(npmChromiumDir(), "al2023", "lib", "libnss3.so"));
    await page.close();
  });
});
