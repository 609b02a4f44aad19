/**
 * The local executor's secrets (docs/design.md section 2, runner/executors/local/README.md): a task's
 * `{ env, secret, key }` reads the runner variable `<SECRET>_<KEY>` that REPRISE_LOCAL_SECRETS
 * allows for the task's repository; its value, and its base64, hex and URL encodings, are masked
 * in the log while the task runs (as served) and after (on disk); a variable that is not allowed
 * (for that repository) or not set fails the attempt without running it; withheld secrets (a
 * fork's code) leave the variable unset and say so. Real processes in a real git checkout.
 */
import {
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
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
import type { LaunchSpec } from "../../runner/executors/types.js";
import { type TempRepo, tempRepo } from "../fakes/git-repo.js";

const NODE = process.execPath;
const VALUE = "s3cr3t-Value-0123456789-abcdefghijklmnopqrstuvwxyz";
const REF = { env: "API_TOKEN", secret: "api", key: "token" };
/** Long enough that `base64` and `xxd -p` wrap it, with characters a URL encodes. */
const ENCODED = "tok/with+special chars&=?-0123456789-abcdefghijklmnopqrstuvwxyz-ABCDEFGHIJ";

const FILES = {
  // Prints the token (split across two writes, so masking must join them), waits for a gate
  // file when asked, and reports whether the variable was set.
  "tasks/token.mjs": `import { existsSync, writeFileSync } from "node:fs";
const token = process.env.API_TOKEN;
process.stdout.write("token is " + (token ?? "").slice(0, 7));
process.stdout.write((token ?? "").slice(7) + " and set=" + (token !== undefined) + "\\n");
const finish = () => writeFileSync(process.env.REPRISE_OUTPUTS, JSON.stringify({ set: token !== undefined }));
if (process.env.GATE) {
  const t = setInterval(() => { if (existsSync(process.env.GATE)) { clearInterval(t); finish(); } }, 20);
} else finish();
`,
  // Writes the token where an integer output belongs: the failure's message quotes outputs.
  "tasks/leak.mjs": `import { writeFileSync } from "node:fs";
writeFileSync(process.env.REPRISE_OUTPUTS, process.argv[2] === "raw" ? process.env.API_TOKEN : JSON.stringify({ n: process.env.API_TOKEN }));
`,
  // Prints the value encoded as a task could to slip it past masking, then waits for the gate
  // and fails (so the failure's message quotes the log).
  "tasks/encode.sh": `printf %s "$API_TOKEN" | base64
printf %s "$API_TOKEN" | base64 | tr '+/' '-_'
printf 'x%s' "$API_TOKEN" | base64 -w0; echo
printf 'xy%s' "$API_TOKEN" | base64 -w0; echo
printf %s "$API_TOKEN" | xxd -p
printf %s "$API_TOKEN" | xxd -p -u
printf %s "$API_TOKEN" | od -An -tx1
"$NODE" -e 'console.log("url=" + encodeURIComponent(process.env.API_TOKEN))'
echo encoded-all
while [ ! -e "$GATE" ]; do sleep 0.05; done
exit 3
`,
};

/** What tasks/encode.sh prints of `value`, whitespace aside. */
function encodings(value: string): string[] {
  const b = Buffer.from(value, "utf8");
  return [
    b.toString("base64"),
    b.toString("base64").replace(/\+/g, "-").replace(/\//g, "_"),
    Buffer.from(`x${value}`).toString("base64"),
    Buffer.from(`xy${value}`).toString("base64"),
    b.toString("hex"),
    b.toString("hex").toUpperCase(),
    encodeURIComponent(value),
  ];
}

/** The 12-character pieces of `form` that `text` (whitespace taken out) still shows. */
function leaked(text: string, forms: string[]): string[] {
  const compact = text.replace(/\s+/g, "");
  const found: string[] = [];
  for (const form of forms)
    for (let i = 0; i + 12 <= form.length; i++)
      if (compact.includes(form.slice(i, i + 12))) found.push(form.slice(i, i + 12));
  return found;
}

let repo: TempRepo;
let sha: string;
let work: string;
let seq = 0;
const executors: LocalExecutor[] = [];

function executor(env: Record<string, string | undefined>): LocalExecutor {
  const e = createLocalExecutor({
    dataDir: work,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
    checkout: gitArchiveCheckout(repo.dir, join(work, "checkouts")),
  });
  executors.push(e);
  return e;
}

function spec(overrides: Partial<LaunchSpec>): LaunchSpec {
  const executionId = `s${++seq}`;
  return {
    handle: attemptName(executionId, "node", 1),
    repo: localRepoKey(repo.dir),
    sha,
    executionId,
    nodeId: "node",
    attempt: 1,
    taskName: "token",
    taskDigest: `sha256:${"d".repeat(64)}`,
    image: "node:20-slim",
    command: [NODE, "tasks/token.mjs"],
    env: {},
    workdir: ".",
    inputs: {},
    outputs: { set: { type: "boolean" } },
    timeoutSeconds: 60,
    secrets: {},
    secretRefs: [REF],
    ...overrides,
  };
}

function logFile(s: LaunchSpec): string {
  return readFileSync(join(work, "local", "attempts", s.handle, "log"), "utf8");
}

beforeAll(() => {
  repo = tempRepo("reprise-local-secrets-repo-");
  repo.write(FILES);
  sha = repo.commit("tasks that use a secret");
  work = mkdtempSync(join(tmpdir(), "reprise-local-secrets-"));
});

afterAll(async () => {
  for (const e of executors) await e.close();
  rmSync(work, { recursive: true, force: true });
  for (const gate of ["-gate", "-gate-encoded"]) rmSync(`${work}${gate}`, { force: true });
  repo.remove();
});

describe("local executor secrets", () => {
  const allowedFor = (key: string) => ({
    REPRISE_LOCAL_SECRETS: `OTHER@github.com/acme/web API_TOKEN@${key}`,
    API_TOKEN: VALUE,
  });
  let allowed: Record<string, string>;
  beforeAll(() => {
    allowed = allowedFor(localRepoKey(repo.dir));
  });

  it("gives an allowed secret as the task's env and masks it in the log, served and stored", async () => {
    const ex = executor(allowed);
    // Beside the data directory (work), which the sandbox hides from tasks.
    const gate = `${work}-gate`;
    const s = spec({ env: { GATE: gate } });
    await ex.launch(s);
    const logRef = join(work, "local", "attempts", s.handle, "log");
    // While it runs, the file has the value (the task wrote it); what is served does not.
    const deadline = Date.now() + 30_000;
    while (!logFile(s).includes("set=") && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 20));
    expect(logFile(s)).toContain(VALUE);
    const running = await ex.logTail(logRef, 4096);
    expect(running).toContain("token is *** and set=true");
    expect(running).not.toContain(VALUE.slice(0, 12));
    // A tail that starts inside the value does not show the rest of it either.
    const cut = logFile(s).indexOf(VALUE) + 10;
    const tail = await ex.logTail(logRef, Buffer.byteLength(logFile(s)) - cut);
    expect(tail).not.toContain(VALUE.slice(10));

    writeFileSync(gate, "");
    const outcome = await ex.wait(s);
    expect(outcome).toMatchObject({ ok: true, outputs: { set: true } });
    // Once it ended, the stored log itself is masked.
    const stored = logFile(s);
    expect(stored).not.toContain(VALUE);
    expect(stored).toContain("token is *** and set=true");
    expect(stored).toContain(
      "[reprise] secrets: API_TOKEN from API_TOKEN (their values are masked in this log)",
    );
    // Nothing else in the attempt's files has it (task/ included: its outputs, HOME, TMPDIR).
    const dir = join(work, "local", "attempts", s.handle);
    for (const f of readdirSync(dir, { recursive: true, encoding: "utf8" })) {
      if (!statSync(join(dir, f)).isFile()) continue;
      expect(readFileSync(join(dir, f), "utf8")).not.toContain(VALUE);
    }
  });

  it("masks the value in a failure's message that quotes the outputs", async () => {
    const ex = executor(allowed);
    for (const arg of ["json", "raw"]) {
      const s = spec({
        command: [NODE, "tasks/leak.mjs", arg],
        outputs: { n: { type: "integer" } },
      });
      await ex.launch(s);
      const outcome = await ex.wait(s);
      if (outcome.ok) throw new Error("expected a failure");
      expect(outcome.error.reason).toBe("outputs");
      expect(outcome.error.message).toContain("***");
      expect(outcome.error.message).not.toContain(VALUE.slice(0, 8));
    }
  });

  it("fails, without running the task, a secret REPRISE_LOCAL_SECRETS does not allow", async () => {
    const ex = executor({ API_TOKEN: VALUE, REPRISE_LOCAL_SECRETS: "OTHER@*" });
    const s = spec({});
    await ex.launch(s);
    const outcome = await ex.wait(s);
    if (outcome.ok) throw new Error("expected a failure");
    expect(outcome.error).toMatchObject({ kind: "user", reason: "secrets" });
    expect(outcome.error.message).toContain(
      "secret api/token (as API_TOKEN) is read from the runner's environment variable API_TOKEN, which REPRISE_LOCAL_SECRETS does not allow",
    );
    expect(logFile(s)).toContain("REPRISE_LOCAL_SECRETS does not allow");
    expect(existsSync(join(work, "local", "attempts", s.handle, "pid"))).toBe(false);
  });

  it("fails an allowed secret that is not set (or empty), rather than pass an empty value", async () => {
    for (const env of [
      { REPRISE_LOCAL_SECRETS: "API_TOKEN@*" },
      { REPRISE_LOCAL_SECRETS: "API_TOKEN@*", API_TOKEN: "" },
    ]) {
      const ex = executor(env);
      const s = spec({});
      await ex.launch(s);
      const outcome = await ex.wait(s);
      if (outcome.ok) throw new Error("expected a failure");
      expect(outcome.error.reason).toBe("secrets");
      expect(outcome.error.message).toMatch(
        /API_TOKEN, which REPRISE_LOCAL_SECRETS allows but is not set \(or empty\) in the runner's environment/,
      );
    }
  });

  it("refuses, without running the task, a secret allowed only for other repositories", async () => {
    // Another repository's spec names the same secret: it is not given, and the message says
    // what to set (the attack of issue 14: a spec naming `{secret: api, key: token}`).
    const ex = executor(allowedFor("github.com/acme/ml"));
    const s = spec({});
    await ex.launch(s);
    const outcome = await ex.wait(s);
    if (outcome.ok) throw new Error("expected a failure");
    expect(outcome.error).toMatchObject({ kind: "user", reason: "secrets" });
    expect(outcome.error.message).toContain(
      `secret api/token (as API_TOKEN) is read from the runner's environment variable API_TOKEN, which REPRISE_LOCAL_SECRETS allows only for github.com/acme/ml, not for ${s.repo}: add API_TOKEN@${s.repo} to REPRISE_LOCAL_SECRETS if this repository may use it`,
    );
    expect(outcome.error.message).not.toContain(VALUE);
    expect(logFile(s)).toContain("allows only for github.com/acme/ml");
    expect(existsSync(join(work, "local", "attempts", s.handle, "pid"))).toBe(false);
    // `@*` says any repository may, explicitly.
    const any = executor({ REPRISE_LOCAL_SECRETS: "API_TOKEN@*", API_TOKEN: VALUE });
    const t = spec({});
    await any.launch(t);
    expect(await any.wait(t)).toMatchObject({ ok: true, outputs: { set: true } });
  });

  it("an entry without a repository is refused when the executor is built, saying what to add", () => {
    expect(() => executor({ REPRISE_LOCAL_SECRETS: "API_TOKEN", API_TOKEN: VALUE })).toThrow(
      '"API_TOKEN" names no repository: write API_TOKEN@REPOSITORY for each repository that may use it (e.g. API_TOKEN@github.com/acme/ml), or API_TOKEN@* for any repository',
    );
  });

  it("masks the value's base64, hex and URL encodings, served while running, stored, and in the failure", async () => {
    const ex = executor({
      REPRISE_LOCAL_SECRETS: `API_TOKEN@${localRepoKey(repo.dir)}`,
      API_TOKEN: ENCODED,
    });
    const gate = `${work}-gate-encoded`;
    const s = spec({
      command: ["/bin/sh", "tasks/encode.sh"],
      env: { GATE: gate, NODE },
      outputs: {},
    });
    await ex.launch(s);
    const logRef = join(work, "local", "attempts", s.handle, "log");
    const deadline = Date.now() + 30_000;
    while (!logFile(s).includes("encoded-all") && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 20));
    const forms = encodings(ENCODED);
    // The task did print them: the file holds what it wrote, until the attempt ends.
    expect(leaked(logFile(s), forms).length).toBeGreaterThan(forms.length);
    const running = (await ex.logTail(logRef, 64 * 1024)) ?? "";
    expect(running).toContain("encoded-all");
    expect(running).toContain("url=***");
    expect(leaked(running, forms)).toEqual([]);

    writeFileSync(gate, "");
    const outcome = await ex.wait(s);
    if (outcome.ok) throw new Error("expected a failure");
    expect(outcome.error.reason).toBe("exit");
    expect(outcome.error.message).toContain("***");
    expect(leaked(outcome.error.message, forms)).toEqual([]);
    const stored = logFile(s);
    expect(stored).toContain("encoded-all");
    expect(leaked(stored, forms)).toEqual([]);
    // Every line the task printed was masked: 7 encodings, od's and xxd's over several lines.
    expect(stored.split("***").length - 1).toBeGreaterThanOrEqual(forms.length);
  });

  it("a restarted executor reports a refused attempt the same way", async () => {
    const s = spec({});
    await executor({}).launch(s);
    const outcome = await executor(allowed).wait(s);
    expect(outcome).toMatchObject({ ok: false, error: { reason: "secrets" } });
  });

  it("withheld secrets (a fork's code) leave the variable unset, and the log says so", async () => {
    const ex = executor(allowed);
    const s = spec({ secretRefs: [], withheldSecrets: ["API_TOKEN"] });
    await ex.launch(s);
    const outcome = await ex.wait(s);
    expect(outcome).toMatchObject({ ok: true, outputs: { set: false } });
    expect(logFile(s)).toContain(
      "[reprise] secrets withheld: the code comes from a fork's pull request, so API_TOKEN is not set",
    );
  });
});
