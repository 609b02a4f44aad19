/** PGlite serves one process: a second opener gets a clear error naming the holder, never a corrupted database. */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { StoreInUseError } from "../../db/errors.js";
import { openStore } from "../../db/store.js";

const ROOT = join(import.meta.dirname, "../..");
const TSX = pathToFileURL(join(ROOT, "node_modules/tsx/dist/loader.mjs")).href;
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function dataDir(): string {
  const d = mkdtempSync(join(tmpdir(), "reprise-pglite-"));
  dirs.push(d);
  return d;
}

describe("the embedded PGlite store", () => {
  it("refuses a second opener in the same process, then opens again after close", async () => {
    const dir = dataDir();
    const first = await openStore({ dataDir: dir, migrate: true });
    await expect(openStore({ dataDir: dir })).rejects.toBeInstanceOf(StoreInUseError);
    await first.store.versions.ensureRepository("file:///x");
    await first.close();
    const again = await openStore({ dataDir: dir });
    expect(await again.store.versions.list("file:///x")).toEqual([]);
    await again.close();
  }, 60_000);

  it("names the other process holding it, and takes over a lock whose process is gone", async () => {
    const dir = dataDir();
    const script = join(dir, "hold.mts");
    writeFileSync(
      script,
      `import { openStore } from ${JSON.stringify(join(ROOT, "db/store.ts"))};\n` +
        `const s = await openStore({ dataDir: ${JSON.stringify(join(dir, "db"))}, migrate: true });\n` +
        `process.stdout.write("ready\\n");\nprocess.stdin.resume();\nprocess.stdin.on("end", async () => { await s.close(); process.exit(0); });\n`,
    );
    const child = spawn(process.execPath, ["--import", TSX, script], {
      stdio: ["pipe", "pipe", "inherit"],
    });
    await new Promise<void>((resolve, reject) => {
      child.stdout.on("data", (b: Buffer) => b.toString().includes("ready") && resolve());
      child.on("exit", (code) => reject(new Error(`holder exited with ${code}`)));
    });
    const refused = await openStore({ dataDir: join(dir, "db") }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(StoreInUseError);
    expect((refused as Error).message).toContain(`in use by pid ${child.pid}`);

    // SIGKILL leaves the pid file behind; the next opener sees its process is gone.
    child.kill("SIGKILL");
    await new Promise((r) => child.on("exit", r));
    const next = await openStore({ dataDir: join(dir, "db") });
    expect(await next.store.versions.list("file:///nothing")).toEqual([]);
    await next.close();
  }, 90_000);
});
