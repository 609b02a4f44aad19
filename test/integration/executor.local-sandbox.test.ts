/**
 * The local executor's sandbox (executors/local/README.md, "Sandbox"), attacked for real with
 * bubblewrap: a task that reads the runner's /proc, writes its own or another SHA's checkout,
 * looks into the data directory or the App's key, leaves processes behind, or makes its outputs
 * file a FIFO or a link to a device; and the refusal of untrusted code without a sandbox.
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { attemptName } from "../../core/engine/attempt-name.js";
import { localRepoKey } from "../../core/version/repo-key.js";
import {
  createLocalExecutor,
  gitArchiveCheckout,
  type LocalExecutor,
} from "../../runner/executors/local/index.js";
import { detectSandbox } from "../../runner/executors/local/sandbox.js";
import type { AttemptOutcome, LaunchSpec } from "../../runner/executors/types.js";
import { type TempRepo, tempRepo } from "../fakes/git-repo.js";

const HEX = randomBytes(8).toString("hex");
const MARKER = `reprise-marker-${HEX}`;
let repo: TempRepo;
let first: string;
let second: string;
let dataDir: string;
let keyFile: string;
let executor: LocalExecutor;
let seq = 0;

beforeAll(() => {
  // Fails (no silent skip) when bubblewrap is missing or broken: test/setup installs it.
  expect(detectSandbox("bwrap").kind).toBe("bwrap");
  process.env.REPRISE_TEST_RUNNER_MARKER = MARKER;
  repo = tempRepo("reprise-sandbox-repo-");
  repo.write({ "tasks/probe.sh": "echo probe\n" });
  first = repo.commit("first");
  repo.write({ "tasks/probe.sh": "echo probe two\n" });
  second = repo.commit("second");
  dataDir = mkdtempSync(join(tmpdir(), "reprise-sandbox-data-"));
  keyFile = join(mkdtempSync(join(tmpdir(), "reprise-sandbox-key-")), "app.pem");
  writeFileSync(keyFile, `-----BEGIN RSA PRIVATE KEY----- ${MARKER}\n`);
  executor = make({ env: { ...process.env, PRIVATE_KEY_PATH: keyFile } });
});

afterAll(async () => {
  await executor.close();
  delete process.env.REPRISE_TEST_RUNNER_MARKER;
  rmSync(dataDir, { recursive: true, force: true });
  rmSync(join(keyFile, ".."), { recursive: true, force: true });
  repo.remove();
});

function make(over: Partial<Parameters<typeof createLocalExecutor>[0]> = {}): LocalExecutor {
  return createLocalExecutor({
    dataDir,
    env: process.env,
    checkout: gitArchiveCheckout(repo.dir, join(dataDir, "local", "checkouts")),
    ...over,
  });
}

function spec(script: string, overrides: Partial<LaunchSpec> = {}): LaunchSpec {
  return {
    handle: attemptName("exec", `node${++seq}`, 1),
    repo: localRepoKey(repo.dir),
    sha: second,
    executionId: "exec",
    nodeId: `node${seq}`,
    attempt: 1,
    taskName: "probe",
    taskDigest: `sha256:${"d".repeat(64)}`,
    image: "ignored",
    command: ["/bin/sh", "-c", script],
    env: { HEX, DATA: dataDir, KEY: keyFile },
    workdir: ".",
    inputs: {},
    outputs: {},
    timeoutSeconds: 60,
    secrets: {},
    ...overrides,
  };
}

async function run(s: LaunchSpec, on = executor): Promise<AttemptOutcome> {
  await on.launch(s);
  return on.wait(s);
}

function expectOk(outcome: AttemptOutcome) {
  if (!outcome.ok) throw new Error(`task failed: ${outcome.error.message}`);
}

/** Host pids whose command line contains `text` (the test's own /proc). */
function processesWith(text: string): number[] {
  const found: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, "utf8").includes(text)) found.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

describe("the local executor's sandbox", () => {
  it("shows a task no runner process: no runner variable anywhere in /proc, no App key", async () => {
    // A process of the runner's with the marker in its environment (the test worker's own
    // environ is fixed at its start), as the runner's is with WEBHOOK_SECRET and the like.
    const holder = spawn("/bin/sleep", ["60"], {
      env: { ...process.env, REPRISE_TEST_RUNNER_MARKER: MARKER },
      stdio: "ignore",
    });
    try {
      expect(readFileSync(`/proc/${holder.pid}/environ`, "utf8")).toContain(MARKER);
      const outcome = await run(
        spec(`
          for f in /proc/[0-9]*/environ; do
            if grep -a -q "RUNNER_MARKER=reprise-marker-$HEX" "$f" 2>/dev/null; then echo "FAIL $f"; exit 1; fi
            if grep -a -q "VITEST" "$f" 2>/dev/null; then echo "FAIL runner env in $f"; exit 1; fi
          done
          [ -s "$KEY" ] && { echo "FAIL key readable"; exit 1; }
          exit 0`),
      );
      expectOk(outcome);
    } finally {
      holder.kill("SIGKILL");
    }
  });

  it("keeps its checkout, other SHAs' checkouts and the data directory out of its reach", async () => {
    expectOk(await run(spec("cat tasks/probe.sh", { sha: first })));
    const otherCheckout = join(dataDir, "local", "checkouts");
    const outcome = await run(
      spec(`
        echo 'echo pwned' >> tasks/probe.sh 2>/dev/null && { echo "FAIL own checkout"; exit 1; }
        echo 'echo pwned' >> ../${first}/tasks/probe.sh 2>/dev/null && { echo "FAIL other checkout"; exit 1; }
        ls "$DATA/local/checkouts" | grep -q ${first} && { echo "FAIL sees other checkout"; exit 1; }
        ls "$DATA" | grep -q artifacts && { echo "FAIL sees data dir"; exit 1; }
        [ "$(ls "$DATA/local/attempts")" = "$(basename "$(dirname "$(dirname "$REPRISE_OUTPUTS")")")" ] || { echo "FAIL sees other attempts: $(ls "$DATA/local/attempts")"; exit 1; }
        echo scratch > "$HOME/f" && echo scratch > "$TMPDIR/f" || { echo "FAIL no scratch"; exit 1; }
        echo '{}' > "$REPRISE_OUTPUTS"`),
    );
    expectOk(outcome);
    const checkouts = readdirSync(otherCheckout).filter((d) => !d.startsWith("."));
    for (const sha of checkouts)
      expect(readFileSync(join(otherCheckout, sha, "tasks/probe.sh"), "utf8")).not.toContain(
        "pwned",
      );
  });

  for (const ending of ["normal exit", "timeout"] as const) {
    it(`leaves no process behind after a ${ending}: a setsid child, a TERM-ignoring child`, async () => {
      const tag = `8640${seq}.${randomBytes(3).readUIntBE(0, 3)}`;
      const outcome = await run(
        spec(
          `setsid sleep ${tag}1 &
           sh -c 'trap "" TERM; exec sleep ${tag}2' &
           sleep 0.3
           [ "$(grep -l -a ${tag} /proc/[0-9]*/cmdline 2>/dev/null | wc -l)" -ge 2 ] || { echo "FAIL children did not start"; exit 3; }
           ${ending === "timeout" ? "sleep 30" : "exit 0"}`,
          { timeoutSeconds: ending === "timeout" ? 1 : 60 },
        ),
      );
      if (ending === "timeout")
        expect(outcome).toMatchObject({ ok: false, error: { reason: "timeout" } });
      else expectOk(outcome);
      await expect
        .poll(() => processesWith(`${tag}`), { timeout: 5_000, interval: 50 })
        .toEqual([]);
    });
  }

  for (const [what, make, found] of [
    ["a FIFO", 'mkfifo "$REPRISE_OUTPUTS"', "a FIFO"],
    ["a symlink to /dev/urandom", 'ln -sf /dev/urandom "$REPRISE_OUTPUTS"', "a symbolic link"],
  ] as const) {
    it(`fails an attempt whose outputs file is ${what}, at once, the runner unharmed`, async () => {
      const outcome = await run(spec(make, { outputs: { v: { type: "string" } } }));
      expect(outcome).toMatchObject({ ok: false, error: { kind: "user", reason: "outputs" } });
      if (!outcome.ok) {
        expect(outcome.error.message).toContain("$REPRISE_OUTPUTS");
        expect(outcome.error.message).toContain(found);
      }
      // Still responsive: another attempt runs and ends.
      expectOk(await run(spec("exit 0")));
    });
  }

  it("runs untrusted code (a fork's pull request) in the sandbox", async () => {
    expectOk(await run(spec("exit 0", { untrusted: true })));
  });

  it("refuses untrusted code without a sandbox (REPRISE_SANDBOX=none), saying what to install", async () => {
    const warnings: string[] = [];
    const bare = make({ sandbox: "none", warn: (m) => warnings.push(m) });
    try {
      expect(warnings.join("\n")).toContain("tasks run unsandboxed");
      const outcome = await run(spec("echo RAN-IT; exit 0", { untrusted: true }), bare);
      expect(outcome).toMatchObject({ ok: false, error: { kind: "user", reason: "sandbox" } });
      if (!outcome.ok) {
        expect(outcome.error.message).toContain("fork's pull request");
        expect(outcome.error.message).toContain("install bubblewrap");
        expect(outcome.error.message).toContain("kubernetes executor");
        expect(readFileSync(outcome.logRef ?? "", "utf8")).not.toContain("\nRAN-IT");
      }
      // Trusted code still runs, unsandboxed.
      expectOk(await run(spec("exit 0"), bare));
    } finally {
      await bare.close();
    }
  });

  it("caps a chatty task's log, keeping its end and saying how much was dropped", async () => {
    const capped = make({ logMaxBytes: 65_536 });
    try {
      const outcome = await run(
        spec("head -c 3000000 /dev/zero | tr '\\\\0' a; echo; echo THE-END; exit 1"),
        capped,
      );
      expect(outcome).toMatchObject({ ok: false, error: { reason: "exit" } });
      if (outcome.ok) return;
      expect(outcome.error.message).toContain("THE-END");
      const log = outcome.logRef ?? "";
      expect(statSync(log).size).toBeLessThan(65_536 + 200);
      expect(readFileSync(log, "utf8")).toMatch(
        /\[reprise\] log over 65536 bytes .*: \d+ bytes dropped/,
      );
      expect(readFileSync(log, "utf8")).toContain("image");
    } finally {
      await capped.close();
    }
  });
});
