/**
 * Crash safety with a real SIGKILL (docs/design.md section 6): the process running an execution is
 * killed mid-run; the next `reprise worker` finishes it, re-attaching to the task that was running,
 * and nothing that succeeded (or was running) runs again. Task runs are counted by the tasks
 * themselves, appending to a file.
 */
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cliArgs, reprise } from "../fakes/cli.js";
import { type TempRepo, tempRepo } from "../fakes/git-repo.js";

let repo: TempRepo;
let work: string;
let env: Record<string, string | undefined>;

const task = (name: string, sleepMs: number) => `
import { appendFileSync, writeFileSync } from "node:fs";
appendFileSync(process.env.COUNT_FILE, "${name}-start\\n");
await new Promise((r) => setTimeout(r, ${sleepMs}));
appendFileSync(process.env.COUNT_FILE, "${name}-end\\n");
writeFileSync(process.env.REPRISE_OUTPUTS, JSON.stringify({ v: "${name}" }));
`;

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), "reprise-crash-"));
  repo = tempRepo();
  const count = join(work, "count");
  repo.write({
    "reprise.yaml": `version: 1
defaults: { image: node:20 }
tasks:
  a: { command: [${JSON.stringify(process.execPath)}, a.mjs], env: { COUNT_FILE: ${JSON.stringify(count)} }, outputs: { v: string }, sources: [a.mjs] }
  b: { command: [${JSON.stringify(process.execPath)}, b.mjs], env: { COUNT_FILE: ${JSON.stringify(count)} }, outputs: { v: string }, sources: [b.mjs] }
  c: { command: [${JSON.stringify(process.execPath)}, c.mjs], env: { COUNT_FILE: ${JSON.stringify(count)} }, outputs: { v: string }, sources: [c.mjs] }
workflows:
  chain:
    nodes:
      a: { task: a }
      b: { task: b, after: [a] }
      c: { task: c, after: [b] }
`,
    "a.mjs": task("a", 0),
    "b.mjs": task("b", 4_000),
    "c.mjs": task("c", 0),
  });
  repo.commit("chain");
  // Unsandboxed: the tasks count their runs in a file of the test's, which a sandboxed task
  // cannot write (executor.local-sandbox.test.ts covers the sandbox).
  env = { REPRISE_DATA_DIR: join(work, "data"), DATABASE_URL: undefined, REPRISE_SANDBOX: "none" };
});
afterAll(() => {
  repo?.remove();
  rmSync(work, { recursive: true, force: true });
});

function counts(): Record<string, number> {
  const file = join(work, "count");
  const out: Record<string, number> = {};
  if (!existsSync(file)) return out;
  for (const line of readFileSync(file, "utf8").split("\n").filter(Boolean))
    out[line] = (out[line] ?? 0) + 1;
  return out;
}

async function until(what: string, check: () => boolean, ms = 60_000) {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe("kill -9 of the runner mid-execution", () => {
  it("lets `reprise worker` finish it without running any started task again", async () => {
    const child = spawn(process.execPath, cliArgs("run", "chain", "--json"), {
      cwd: repo.dir,
      env: { ...process.env, ...env, DATABASE_URL: "" } as NodeJS.ProcessEnv,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stderr = "";
    child.stderr.on("data", (b: Buffer) => {
      stderr += b.toString();
    });
    const exited = new Promise<NodeJS.Signals | null>((r) =>
      child.on("exit", (_code, sig) => r(sig)),
    );
    // Kill while b runs: a has finished, b started, c not yet.
    await until("task b to start", () => (counts()["b-start"] ?? 0) > 0 || child.exitCode !== null);
    expect(child.exitCode, stderr).toBeNull();
    child.kill("SIGKILL");
    expect(await exited).toBe("SIGKILL");
    expect(counts()).toEqual({ "a-start": 1, "a-end": 1, "b-start": 1 });

    const worker = reprise({ cwd: repo.dir, env }, "worker", "--once");
    expect(worker.code, worker.stderr).toBe(0);
    expect(worker.stdout).toMatch(/^e[a-z0-9]+ SUCCEEDED$/m);
    // b was re-attached, not launched again; c ran once; a never again.
    expect(counts()).toEqual({
      "a-start": 1,
      "a-end": 1,
      "b-start": 1,
      "b-end": 1,
      "c-start": 1,
      "c-end": 1,
    });

    const id = worker.stdout.trim().split(" ")[0] as string;
    const doc = JSON.parse(reprise({ cwd: repo.dir, env }, "status", id, "--json").stdout);
    expect(
      doc.nodes.map((n: { id: string; status: string; attempts: number }) => [
        n.id,
        n.status,
        n.attempts,
      ]),
    ).toEqual([
      ["a", "SUCCEEDED", 1],
      ["b", "SUCCEEDED", 1],
      ["c", "SUCCEEDED", 1],
    ]);
  }, 120_000);
});
