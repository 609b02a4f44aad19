/**
 * Headless Chromium driven by playwright-core (issue 7's browser tests). No browser is downloaded:
 * - Debian's Chromium at /usr/bin/chromium when it is installed (`.ci/run`'s machines have it);
 * - otherwise the one `npm ci` brings, the devDependency @sparticuz/chromium: a headless build
 *   packed with brotli inside the package, with the libraries it needs (NSS, expat) and a font.
 *   It is unpacked once per machine and user into $TMPDIR/reprise-chromium-VERSION-UID/ (about
 *   3 s), into a staging folder renamed into place, so parallel test files never see half a
 *   binary.
 * REPRISE_TEST_CHROMIUM=system or =npm forces one of them (test/README.md). Each run gets a fresh
 * profile and everything that would reach beyond loopback turned off. When the browser is missing
 * or cannot start, this throws: the browser tests fail, they are never skipped.
 */
import { execFile } from "node:child_process";
import {
  existsSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { type BrowserContext, chromium } from "playwright-core";

export const CHROMIUM = "/usr/bin/chromium";

/** Chooses the browser; unset or empty: the system one when installed, else npm's. */
export const CHROMIUM_OVERRIDE = "REPRISE_TEST_CHROMIUM";

const ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/**
 * Of the flags @sparticuz/chromium recommends (`chromium.args`), those left out: the ones that
 * weaken what the pages are tested for (the same-origin policy, mixed content), and its
 * `--headless='shell'`, which playwright's own `--headless` already covers.
 */
const REFUSED = new Set([
  "--disable-web-security",
  "--allow-running-insecure-content",
  "--headless='shell'",
]);

export interface Browser {
  context: BrowserContext;
  /** Which Chromium runs: CHROMIUM, or the npm package's unpacked binary. */
  executablePath: string;
  close(): Promise<void>;
}

interface Launch {
  executablePath: string;
  args: string[];
  env?: Record<string, string>;
}

export async function launchChromium(
  viewport = { width: 1280, height: 900 },
  which: "system" | "npm" | undefined = undefined,
): Promise<Browser> {
  const launch = await chooseChromium(which);
  const profile = mkdtempSync(join(tmpdir(), "reprise-chromium-"));
  try {
    const context = await chromium.launchPersistentContext(profile, {
      executablePath: launch.executablePath,
      headless: true,
      args: launch.args,
      ...(launch.env ? { env: launch.env } : {}),
      viewport,
      timeout: 30_000,
    });
    return {
      context,
      executablePath: launch.executablePath,
      close: async () => {
        await context.close();
        rmSync(profile, { recursive: true, force: true });
      },
    };
  } catch (e) {
    rmSync(profile, { recursive: true, force: true });
    throw new Error(`${launch.executablePath} did not start: ${(e as Error).message}`, {
      cause: e,
    });
  }
}

async function chooseChromium(which: "system" | "npm" | undefined): Promise<Launch> {
  const choice =
    which || process.env[CHROMIUM_OVERRIDE] || (existsSync(CHROMIUM) ? "system" : "npm");
  if (choice === "system") {
    if (!existsSync(CHROMIUM))
      throw new Error(
        `${CHROMIUM_OVERRIDE}=system, but ${CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium), or unset ${CHROMIUM_OVERRIDE} to use the one npm ci installs`,
      );
    return { executablePath: CHROMIUM, args: ARGS };
  }
  if (choice === "npm") return npmChromium();
  throw new Error(
    `${CHROMIUM_OVERRIDE}=${choice}: use "system" (${CHROMIUM}) or "npm" (@sparticuz/chromium), or leave it unset for the system one when installed`,
  );
}

/** Where @sparticuz/chromium is unpacked: once per machine and version. */
export function npmChromiumDir(): string {
  const { version } = JSON.parse(readFileSync(join(sparticuzDir(), "package.json"), "utf8")) as {
    version: string;
  };
  // Per user, since what is found there is run: another user's copy is never used.
  return join(tmpdir(), `reprise-chromium-${version}-${process.getuid?.() ?? "user"}`);
}

function sparticuzDir(): string {
  try {
    return fileURLToPath(new URL("..", import.meta.resolve("@sparticuz/chromium")));
  } catch (e) {
    throw new Error(
      `no ${CHROMIUM} and no @sparticuz/chromium in node_modules: run npm ci (or install Debian's chromium)`,
      { cause: e },
    );
  }
}

async function npmChromium(): Promise<Launch> {
  const pkgDir = sparticuzDir();
  const dir = npmChromiumDir();
  if (!existsSync(join(dir, "chromium"))) await unpack(pkgDir, dir);
  const owner = statSync(dir);
  if (owner.uid !== process.getuid?.() || (owner.mode & 0o022) !== 0)
    throw new Error(
      `${dir} is not this user's own private folder (unpacked there as mode 0700): remove it, and the next run unpacks @sparticuz/chromium again`,
    );
  const sparticuz = (await import("@sparticuz/chromium")).default;
  const recommended = sparticuz.args.filter((a) => !REFUSED.has(a));
  const lib = join(dir, "al2023", "lib");
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined) env[k] = v;
  // Its own NSS and expat, so it needs nothing from the system but the C library; its fonts.conf
  // adds the system's fonts where there are any.
  env.LD_LIBRARY_PATH = env.LD_LIBRARY_PATH ? `${lib}:${env.LD_LIBRARY_PATH}` : lib;
  env.FONTCONFIG_FILE = join(dir, "fonts.conf");
  return {
    executablePath: join(dir, "chromium"),
    args: [...new Set([...ARGS, ...recommended])],
    env,
  };
}

/**
 * The package unpacks into os.tmpdir() ($TMPDIR/chromium, /fonts, /al2023 ...), checking only
 * that the file exists: it runs in a child whose TMPDIR is a staging folder, which is renamed to
 * `dir` once complete. Of two processes unpacking at once, the second rename fails and its copy
 * is dropped.
 */
async function unpack(pkgDir: string, dir: string): Promise<void> {
  const entry = import.meta.resolve("@sparticuz/chromium");
  const staging = mkdtempSync(join(tmpdir(), "reprise-chromium-staging-"));
  try {
    const script = `const { default: c, inflate } = await import(${JSON.stringify(entry)});
await c.executablePath();
await inflate(${JSON.stringify(join(pkgDir, "bin", "al2023.tar.br"))});`;
    await promisify(execFile)(process.execPath, ["--input-type=module", "-e", script], {
      env: { ...process.env, TMPDIR: staging, NODE_OPTIONS: "" },
      timeout: 120_000,
    });
    const fonts = join(dir, "fonts");
    writeFileSync(
      join(staging, "fonts.conf"),
      `<?xml version="1.0"?>
<!DOCTYPE fontconfig SYSTEM "fonts.dtd">
<fontconfig>
  <include ignore_missing="yes">/etc/fonts/fonts.conf</include>
  <dir>${fonts}</dir>
  <cachedir>${join(dir, "fonts-cache")}</cachedir>
</fontconfig>
`,
    );
    try {
      renameSync(staging, dir);
    } catch (e) {
      if (!existsSync(join(dir, "chromium"))) throw e;
    }
  } catch (e) {
    throw new Error(
      `unpacking @sparticuz/chromium into ${dir} failed: ${(e as Error).message} (or install Debian's chromium: apt-get install -y chromium)`,
      { cause: e },
    );
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
}
