/**
 * `npm test`: the type-check (tsc), the linter (Biome) and the tests (vitest) at once, not one
 * after the other: none needs another's result, and the tests spend most of their time waiting
 * on child processes, which leaves the cores to tsc and Biome. vitest's output streams as it
 * comes (a run takes minutes); tsc's and Biome's are each printed as a block when they end. The
 * exit code is non-zero when any of them failed. Arguments go to vitest
 * (`npm test -- test/unit`).
 *
 * tsc and Biome run at a lower priority (nice 10): the tests have time limits, the checks none.
 * reports/checks.json records each one's exit code and seconds; .ci/run reads it with vitest's
 * own reports/vitest.json to write its closing "N passed, N failed" line.
 */
import { spawn } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { setPriority } from "node:os";
import { join } from "node:path";

const root = join(import.meta.dirname, "..");
const bin = (name) => join(root, "node_modules/.bin", name);

// Their output reaches a terminal only later, as a block: colours as if it went there now.
const tty = process.stdout.isTTY === true;
const checks = [
  {
    name: "tsc",
    cmd: bin("tsc"),
    args: ["-p", "tsconfig.json", "--noEmit", ...(tty ? ["--pretty"] : [])],
    nice: 10,
  },
  {
    name: "biome",
    cmd: bin("biome"),
    args: ["check", "--error-on-warnings", ...(tty ? ["--colors=force"] : []), "."],
    nice: 10,
  },
  {
    name: "vitest",
    cmd: bin("vitest"),
    args: ["run", ...process.argv.slice(2)],
    nice: 0,
    live: true,
  },
];

const children = new Set();
for (const sig of ["SIGINT", "SIGTERM"])
  process.once(sig, () => {
    for (const child of children) child.kill(sig);
  });

function run({ name, cmd, args, nice, live = false }) {
  const start = performance.now();
  return new Promise((resolve) => {
    const child = spawn(cmd, args, {
      cwd: root,
      stdio: live ? ["ignore", "inherit", "inherit"] : ["ignore", "pipe", "pipe"],
      env: tty ? { ...process.env, FORCE_COLOR: "1" } : process.env,
    });
    children.add(child);
    if (nice && child.pid !== undefined) {
      try {
        setPriority(child.pid, nice);
      } catch {
        // Not allowed here (a container's limits): it runs at the normal priority.
      }
    }
    const out = [];
    child.stdout?.on("data", (b) => out.push(b));
    child.stderr?.on("data", (b) => out.push(b));
    let ended = false;
    const done = (code, why) => {
      if (ended) return;
      ended = true;
      children.delete(child);
      const seconds = (performance.now() - start) / 1000;
      const status = code === 0 ? "passed" : `FAILED (${why})`;
      process.stdout.write(`\n== ${name}: ${status}, ${seconds.toFixed(0)} s\n`);
      process.stdout.write(Buffer.concat(out));
      resolve({ name, code: code ?? 1, seconds: Math.round(seconds) });
    };
    child.once("error", (e) => done(null, `could not start ${cmd}: ${e.message}; run npm ci`));
    child.once("close", (code, signal) =>
      done(code, signal ? `killed by ${signal}` : `exit ${code}`),
    );
  });
}

process.stdout.write(`npm test: ${checks.map((c) => c.name).join(", ")} at once\n`);
const results = await Promise.all(checks.map(run));
mkdirSync(join(root, "reports"), { recursive: true });
writeFileSync(join(root, "reports/checks.json"), `${JSON.stringify(results, null, 2)}\n`);
const failed = results.filter((r) => r.code !== 0).map((r) => r.name);
process.stdout.write(
  `\n== npm test: ${failed.length === 0 ? "all passed" : `${failed.join(", ")} failed`} (${results.map((r) => `${r.name} ${r.seconds} s`).join(", ")})\n`,
);
process.exitCode = failed.length === 0 ? 0 : 1;
