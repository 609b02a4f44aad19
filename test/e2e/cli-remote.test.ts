/**
 * The CLI through a remote server (REPRISE_SERVER, docs/design.md section 11): `reprise serve` runs as
 * a child process on its own embedded database, and `reprise run/relaunch/status` drive the seed
 * story from a git checkout through its API with an API token. The server's data shows the work:
 * its executor's attempt directories, its API; the CLI's own data directory is never created.
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { githubKeyOfRemote } from "../../client/checkout.js";
import type { ExecutionDocument } from "../../core/report/document.js";
import { main } from "../../runner/cli/main.js";
import { freePort } from "../fakes/actions-runner.js";
import { type Background, type CliResult, ROOT, reprise, repriseBackground } from "../fakes/cli.js";

let work: string;
let repo: string;
let serverData: string;
let server: Background;
let token: string;
let cli: Record<string, string | undefined>;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), "reprise-remote-"));
  repo = join(work, "repo");
  execFileSync("bash", [join(ROOT, "examples/seed-pipeline/make-story-repo.sh"), repo], {
    stdio: "ignore",
  });
  serverData = join(work, "server-data");
  const serverEnv = {
    REPRISE_DATA_DIR: serverData,
    DATABASE_URL: "",
    PORT: "0",
    LOG_LEVEL: "warn",
    REPRISE_MAX_PARALLEL: "2",
    REPRISE_SERVER: undefined,
  };
  // A token for the checkout's repository (file://PATH: it has no origin remote), then serve.
  const created = reprise({ cwd: work, env: serverEnv }, "token", "create", "--repo", repo);
  expect(created.code, created.stderr).toBe(0);
  token = created.stdout.trim();
  server = await repriseBackground({ cwd: work, env: serverEnv }, "serve");
  cli = {
    REPRISE_SERVER: server.url,
    REPRISE_TOKEN: token,
    // Must stay untouched: through REPRISE_SERVER nothing opens a local store.
    REPRISE_DATA_DIR: join(work, "cli-data"),
    DATABASE_URL: "",
  };
}, 120_000);

afterAll(async () => {
  await server?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

function doc(r: CliResult): ExecutionDocument {
  try {
    return JSON.parse(r.stdout) as ExecutionDocument;
  } catch {
    throw new Error(`not a JSON document (exit ${r.code}):\n${r.stdout}\n${r.stderr}`);
  }
}

const byNode = (d: ExecutionDocument) => Object.fromEntries(d.nodes.map((n) => [n.id, n]));

/** Process launches per node on the server, counted from its executor's attempt directories. */
function launches(executionId: string): Record<string, number> {
  const dir = join(serverData, "local", "attempts");
  const out: Record<string, number> = {};
  if (!existsSync(dir)) return out;
  for (const name of readdirSync(dir)) {
    if (!name.startsWith(`${executionId}-`)) continue;
    const node = name.slice(executionId.length + 1).replace(/-\d+$/, "");
    out[node] = (out[node] ?? 0) + 1;
  }
  return out;
}

async function serverDoc(id: string): Promise<ExecutionDocument> {
  // A fresh connection each time: a kept-alive one the server is closing as it idles out (5 s)
  // fails the request ("other side closed"), which is this test's fetch, not the server.
  const res = await fetch(`${server.url}/api/v1/executions/${id}`, {
    headers: { authorization: `Bearer ${token}`, connection: "close" },
  });
  expect(res.status).toBe(200);
  return (await res.json()) as ExecutionDocument;
}

describe("the CLI through REPRISE_SERVER", () => {
  let first: ExecutionDocument;
  let second: ExecutionDocument;

  it("runs at `broken` on the server: registers the commit there, follows it, exit 1 with the document", async () => {
    const r = reprise({ cwd: repo, env: cli }, "run", "train", "--ref", "broken", "--json");
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toMatch(/registered [0-9a-f]{12} of file:\/\/.* on http:\/\/127\.0\.0\.1:/);
    first = doc(r);
    const n = byNode(first);
    expect(first.status).toBe("FAILED");
    expect(n.prepare).toMatchObject({ status: "SUCCEEDED", cache: "POPULATED" });
    expect(n.train).toMatchObject({ status: "FAILED", cache: "MISS" });
    expect(n.evaluate).toMatchObject({ status: "SKIPPED" });
    // The server ran it, and its API serves the very document the CLI printed.
    expect(launches(first.id)).toEqual({ prepare: 1, featurize: 1, train: 1 });
    expect(await serverDoc(first.id)).toEqual(first);
    expect(existsSync(join(work, "cli-data"))).toBe(false);
  }, 120_000);

  it("relaunches at `fixed`: registers it, prepare and featurize come from the server's cache", () => {
    const r = reprise({ cwd: repo, env: cli }, "relaunch", first.id, "--ref", "fixed", "--json");
    expect(r.code, r.stderr).toBe(0);
    second = doc(r);
    const n = byNode(second);
    expect(second).toMatchObject({ status: "SUCCEEDED", parent: first.id });
    expect(n.prepare).toMatchObject({
      cache: "HIT",
      source: { execution: first.id, node: "prepare" },
    });
    expect(n.featurize).toMatchObject({ cache: "HIT" });
    expect(n.train).toMatchObject({ status: "SUCCEEDED", cache: "POPULATED" });
    expect(launches(second.id)).toEqual({ train: 1, evaluate: 1 });
    expect(Object.keys(second.outputs ?? {}).sort()).toEqual([
      "loss",
      "model",
      "passed",
      "r2",
      "rmse",
    ]);
  }, 120_000);

  it("--detach returns at once with the queued execution; `status` later shows it finished", async () => {
    const r = reprise(
      { cwd: repo, env: cli },
      "run",
      "train",
      "--ref",
      "fixed",
      // An integer input: read with the type the spec at the commit declares.
      "-i",
      "seed=7",
      "--detach",
      "--json",
    );
    expect(r.code, r.stderr).toBe(0);
    const queued = doc(r);
    expect(["QUEUED", "RUNNING"]).toContain(queued.status);
    // Registered already: nothing posted again.
    expect(r.stderr).not.toContain("registered");
    let status: ExecutionDocument = queued;
    for (let i = 0; i < 60 && !["SUCCEEDED", "FAILED"].includes(status.status); i++) {
      await new Promise((res) => setTimeout(res, 500));
      const s = reprise({ cwd: work, env: cli }, "status", queued.id, "--json");
      status = doc(s);
      expect(s.code, s.stderr).toBe(status.status === "FAILED" ? 1 : 0);
    }
    expect(status).toMatchObject({
      id: queued.id,
      status: "SUCCEEDED",
      inputs: { seed: 7 },
    });
    expect(status).toEqual(await serverDoc(queued.id));
  }, 120_000);

  it("shows the same live progress on a terminal as a local run", async () => {
    const out: string[] = [];
    const err: string[] = [];
    const code = await main(
      ["run", "train", "--ref", "fixed", "--repo", repo],
      { out: (l) => out.push(l), err: (l) => err.push(l) },
      work,
      cli,
      true,
    );
    expect(code, err.join("\n")).toBe(0);
    const text = out.join("\n");
    expect(text).toMatch(/^execution \S+ {2}train @ [0-9a-f]{12}$/m);
    expect(text).toMatch(/ {2}✓ prepare cached \(from \S+\/prepare\)/);
    expect(text).toMatch(/ {2}✓ evaluate cached/);
    expect(text).toMatch(/SUCCEEDED$/m);
  }, 120_000);

  it("a refused token exits 2 naming REPRISE_TOKEN; so does none at all", () => {
    const wrong = reprise(
      { cwd: repo, env: { ...cli, REPRISE_TOKEN: "rp_not-a-token" } },
      "run",
      "train",
      "--ref",
      "fixed",
    );
    expect(wrong.code).toBe(2);
    expect(wrong.stderr).toContain("refused REPRISE_TOKEN");
    const none = reprise(
      { cwd: repo, env: { ...cli, REPRISE_TOKEN: undefined } },
      "status",
      first.id,
    );
    expect(none.code).toBe(2);
    expect(none.stderr).toContain("set REPRISE_TOKEN");
  }, 60_000);

  it("an unreachable or malformed server exits 2 with what to fix; commands the API lacks here say so", async () => {
    const closed = `http://127.0.0.1:${await freePort()}`;
    const unreachable = reprise(
      { cwd: repo, env: { ...cli, REPRISE_SERVER: closed } },
      "run",
      "train",
      "--ref",
      "fixed",
    );
    expect(unreachable.code).toBe(2);
    expect(unreachable.stderr).toContain(`cannot reach the Reprise server at ${closed}`);
    expect(unreachable.stderr).toContain("REPRISE_SERVER");

    const malformed = reprise(
      { cwd: repo, env: { ...cli, REPRISE_SERVER: "reprise.example.com" } },
      "status",
      first.id,
    );
    expect(malformed.code).toBe(2);
    expect(malformed.stderr).toContain("REPRISE_SERVER: must be the Reprise server's http://");

    const lineage = reprise({ cwd: repo, env: cli }, "lineage", first.id, "prepare");
    expect(lineage.code).toBe(2);
    expect(lineage.stderr).toContain("not available through REPRISE_SERVER yet");
    expect(existsSync(join(work, "cli-data"))).toBe(false);
  }, 60_000);
});

describe("artifacts through REPRISE_SERVER", () => {
  it("-i data=@DIR uploads a directory input to the server, which runs on it; the same directory again is a cache hit", async () => {
    // A branch of the checkout with a workflow that takes a directory.
    const git = (...args: string[]) =>
      execFileSync("git", ["-C", repo, ...args], {
        encoding: "utf8",
        env: { ...process.env, GIT_CONFIG_GLOBAL: "/dev/null" },
      });
    git("checkout", "-q", "-b", "files", "fixed");
    writeFileSync(
      join(repo, "reprise.yaml"),
      `version: 1
tasks:
  count:
    image: busybox
    command: [sh, -c, 'printf "{\\"files\\":%s,\\"a\\":\\"%s\\"}" "$(find "$REPRISE_INPUT_DATA" -type f | wc -l | tr -d " ")" "$(cat "$REPRISE_INPUT_DATA/a.txt")" > "$REPRISE_OUTPUTS"']
    sources: [reprise.yaml]
    inputs: { data: directory }
    outputs: { files: integer, a: string }
    cache: true
workflows:
  count:
    inputs: { data: directory }
    nodes:
      count: { task: count, inputs: { data: "\${{ inputs.data }}" } }
    outputs: { files: "\${{ nodes.count.outputs.files }}" }
`,
    );
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "count files");
    const data = join(work, "dataset");
    mkdirSync(join(data, "sub"), { recursive: true });
    writeFileSync(join(data, "a.txt"), "alpha");
    writeFileSync(join(data, "sub", "b.txt"), "beta");

    const r = reprise(
      { cwd: repo, env: cli },
      "run",
      "count",
      "--ref",
      "files",
      "-i",
      `data=@${data}`,
      "--json",
    );
    expect(r.code, r.stderr).toBe(0);
    const d = doc(r);
    expect(d.inputs.data).toMatchObject({ type: "directory", files: 2, size: 9 });
    expect(byNode(d).count?.outputs).toEqual({ files: 2, a: "alpha" });
    expect(r.stderr).toMatch(/input data: directory [0-9a-f]{12} \(9 B, 2 files\)/);

    const again = reprise(
      { cwd: repo, env: cli },
      "run",
      "count",
      "--ref",
      "files",
      "-i",
      `data=@${data}`,
      "--json",
    );
    expect(again.code, again.stderr).toBe(0);
    expect(doc(again).inputs.data).toEqual(d.inputs.data);
    expect(byNode(doc(again)).count?.cache).toBe("HIT");
    expect(launches(doc(again).id)).toEqual({});
    // Nothing of it went to a local store.
    expect(existsSync(join(work, "cli-data"))).toBe(false);
    git("checkout", "-q", "main");
  }, 120_000);
});

describe("the repository key of a checkout's origin remote", () => {
  it("is HOST/OWNER/NAME for a remote on the GitHub host, in any of git's URL forms", () => {
    for (const url of [
      "https://github.com/acme/ml.git",
      "https://github.com/acme/ml",
      "git@github.com:acme/ml.git",
      "ssh://git@github.com/acme/ml.git",
    ])
      expect(githubKeyOfRemote(url, "github.com"), url).toBe("github.com/acme/ml");
    expect(githubKeyOfRemote("git@ghe.example.com:acme/ml.git", "ghe.example.com:8443")).toBe(
      "ghe.example.com:8443/acme/ml",
    );
    expect(githubKeyOfRemote("https://gitlab.com/acme/ml.git", "github.com")).toBeNull();
    expect(githubKeyOfRemote("/srv/git/ml.git", "github.com")).toBeNull();
  });
});
