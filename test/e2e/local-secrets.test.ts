/**
 * Task secrets on the local executor, through the real CLI on the embedded store (docs/design.md
 * section 2): a secret REPRISE_LOCAL_SECRETS allows for the repository reaches the task and is
 * `***` in `reprise logs`, base64-encoded too; rotating its value changes no digest, so the
 * relaunch is all cache hits; one that is not allowed, or allowed for another repository only,
 * fails the node, saying what to set; a malformed list, or an entry without a repository, stops
 * the start (exit 2); and the value is nowhere under the data directory, database included.
 */
import { mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { localRepoKey } from "../../core/version/repo-key.js";
import { type CliResult, reprise } from "../fakes/cli.js";
import { type TempRepo, tempRepo } from "../fakes/git-repo.js";

const NODE = process.execPath;
const FIRST = "first-Value-of-the-token-7f3a9c";
const ROTATED = "rotated-Value-of-the-token-52be1d";

const SPEC = {
  version: 1,
  defaults: { image: "node:20-slim", timeout: "2m" },
  tasks: {
    call: {
      command: [NODE, "tasks/call.mjs"],
      sources: ["tasks/call.mjs"],
      outputs: { length: "integer" },
      cache: true,
      secrets: [{ env: "API_TOKEN", secret: "api", key: "token" }],
    },
    other: {
      command: [NODE, "tasks/call.mjs"],
      sources: ["tasks/call.mjs"],
      outputs: { length: "integer" },
      secrets: [{ env: "API_TOKEN", secret: "vault-creds", key: "root.token" }],
    },
  },
  workflows: {
    w: { nodes: { a: { task: "call" } }, outputs: { length: "${{ nodes.a.outputs.length }}" } },
    denied: { nodes: { x: { task: "other" } } },
  },
};

const FILES = {
  "reprise.yaml": `${JSON.stringify(SPEC, null, 2)}\n`,
  "tasks/call.mjs": `import { writeFileSync } from "node:fs";
const token = process.env.API_TOKEN;
console.log("calling the API with " + token);
console.log("and with " + Buffer.from(token).toString("base64"));
writeFileSync(process.env.REPRISE_OUTPUTS, JSON.stringify({ length: token.length }));
`,
};

interface Node {
  id: string;
  status: string;
  cache: string | null;
  attempts: number;
  taskDigest: string;
  cacheKey: string | null;
  error: { kind: string; reason: string; message: string } | null;
}

let work: string;
let repo: TempRepo;
/** Another repository whose spec names the same secret. */
let other: TempRepo;
let dataDir: string;
const cli = (extra: Record<string, string | undefined>, ...args: string[]) =>
  reprise(
    {
      cwd: repo.dir,
      env: {
        REPRISE_DATA_DIR: dataDir,
        DATABASE_URL: undefined,
        REPRISE_EXECUTOR: undefined,
        REPRISE_LOCAL_SECRETS: `API_TOKEN@${localRepoKey(realpathSync(repo.dir))}`,
        API_TOKEN: FIRST,
        ...extra,
      },
    },
    ...args,
  );

function json<T>(r: CliResult): T {
  try {
    return JSON.parse(r.stdout) as T;
  } catch {
    throw new Error(`not a JSON document (exit ${r.code}):\n${r.stdout}\n${r.stderr}`);
  }
}

/** Every file under `dir` whose bytes contain `needle`. */
function filesContaining(dir: string, needle: string): string[] {
  const found: string[] = [];
  const bytes = Buffer.from(needle, "utf8");
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const path = join(d, name);
      const st = statSync(path, { throwIfNoEntry: false });
      if (!st) continue;
      if (st.isDirectory()) walk(path);
      else if (st.isFile() && readFileSync(path).includes(bytes)) found.push(path);
    }
  };
  walk(dir);
  return found;
}

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), "reprise-local-secrets-e2e-"));
  dataDir = join(work, "data");
  repo = tempRepo("reprise-local-secrets-e2e-repo-");
  repo.write(FILES);
  repo.commit("a task that calls an API with a token");
  other = tempRepo("reprise-local-secrets-e2e-other-");
  other.write(FILES);
  other.commit("the same spec in another repository");
});
afterAll(() => {
  other.remove();
  repo.remove();
  rmSync(work, { recursive: true, force: true });
});

// Every CLI call opens the embedded database (seconds each): the story uses as few as it can.
describe("task secrets on the local executor, through the CLI", () => {
  let first: { id: string; nodes: Node[]; outputs: Record<string, unknown> };

  it("an allowed secret reaches the task, and `reprise logs` shows *** in its place", () => {
    const r = cli({}, "run", "w", "--json");
    expect(r.code, r.stderr).toBe(0);
    first = json(r);
    expect(first.outputs).toEqual({ length: FIRST.length });
    expect(first.nodes[0]).toMatchObject({ status: "SUCCEEDED", cache: "POPULATED" });
    expect(r.stdout + r.stderr).not.toContain(FIRST);

    const logs = cli({}, "logs", first.id, "a");
    expect(logs.code, logs.stderr).toBe(0);
    expect(logs.stdout).toContain("calling the API with ***");
    expect(logs.stdout).toContain("and with ***");
    expect(logs.stdout).not.toContain(Buffer.from(FIRST).toString("base64").slice(0, 20));
    expect(logs.stdout).toContain("[reprise] secrets: API_TOKEN from API_TOKEN");
    expect(logs.stdout).not.toContain(FIRST);
  }, 120_000);

  it("rotating the value changes no digest: the relaunch is all cache hits", () => {
    const r = cli({ API_TOKEN: ROTATED }, "relaunch", first.id, "--json");
    expect(r.code, r.stderr).toBe(0);
    const again = json<{ nodes: Node[]; outputs: Record<string, unknown> }>(r);
    const [before, after] = [first.nodes[0] as Node, again.nodes[0] as Node];
    expect(after).toMatchObject({ status: "SUCCEEDED", cache: "HIT", attempts: 0 });
    expect(after.taskDigest).toBe(before.taskDigest);
    expect(after.cacheKey).toBe(before.cacheKey);
    expect(again.outputs).toEqual({ length: FIRST.length });
  }, 120_000);

  it("a secret REPRISE_LOCAL_SECRETS does not allow fails the node, saying what to set", () => {
    const r = cli({}, "run", "denied", "--json");
    expect(r.code, r.stderr).toBe(1);
    const d = json<{ id: string; status: string; nodes: Node[] }>(r);
    expect(d.status).toBe("FAILED");
    const x = d.nodes[0] as Node;
    expect(x).toMatchObject({ status: "FAILED", attempts: 1 });
    expect(x.error).toMatchObject({ kind: "user", reason: "secrets" });
    expect(x.error?.message).toContain(
      `secret vault-creds/root.token (as API_TOKEN) is read from the runner's environment variable VAULT_CREDS_ROOT_TOKEN, which REPRISE_LOCAL_SECRETS does not allow: set VAULT_CREDS_ROOT_TOKEN where reprise runs and add VAULT_CREDS_ROOT_TOKEN@${localRepoKey(realpathSync(repo.dir))} to REPRISE_LOCAL_SECRETS`,
    );
    const logs = cli({}, "logs", d.id, "x");
    expect(logs.stdout).toContain("REPRISE_LOCAL_SECRETS does not allow");
  }, 120_000);

  it("another repository's spec naming the secret is refused, saying what to set", () => {
    const key = localRepoKey(realpathSync(other.dir));
    const r = reprise(
      {
        cwd: other.dir,
        env: {
          REPRISE_DATA_DIR: dataDir,
          DATABASE_URL: undefined,
          REPRISE_EXECUTOR: undefined,
          REPRISE_LOCAL_SECRETS: `API_TOKEN@${localRepoKey(realpathSync(repo.dir))}`,
          API_TOKEN: FIRST,
        },
      },
      "run",
      "w",
      "--json",
    );
    expect(r.code, r.stderr).toBe(1);
    const a = json<{ nodes: Node[] }>(r).nodes[0] as Node;
    expect(a).toMatchObject({ status: "FAILED", error: { kind: "user", reason: "secrets" } });
    expect(a.error?.message).toContain(
      `which REPRISE_LOCAL_SECRETS allows only for ${localRepoKey(realpathSync(repo.dir))}, not for ${key}: add API_TOKEN@${key} to REPRISE_LOCAL_SECRETS`,
    );
    expect(r.stdout + r.stderr).not.toContain(FIRST);
  }, 120_000);

  it("a malformed REPRISE_LOCAL_SECRETS, or an entry without a repository, stops the start (exit 2)", () => {
    const r = cli({ REPRISE_LOCAL_SECRETS: "API_TOKEN@*,api-token@*" }, "run", "w");
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(
      'REPRISE_LOCAL_SECRETS: "api-token" is not an environment variable name',
    );
    const bare = cli({ REPRISE_LOCAL_SECRETS: "API_TOKEN" }, "run", "w");
    expect(bare.code).toBe(2);
    expect(bare.stderr).toContain(
      'REPRISE_LOCAL_SECRETS: "API_TOKEN" names no repository: write API_TOKEN@REPOSITORY for each repository that may use it',
    );
  }, 60_000);

  it("no value is stored anywhere under the data directory, database included", () => {
    expect(filesContaining(dataDir, FIRST)).toEqual([]);
    expect(filesContaining(dataDir, ROTATED)).toEqual([]);
  });
});
