/**
 * `reprise artifacts gc` through the real CLI on the embedded store: a workflow writes a file and
 * a directory (cached); gc keeps them while the cache holds them, however old; once the entries
 * are evicted, `--dry-run` names them and removes nothing, gc removes them and their records, and
 * a relaunch computes them again. Blob ages are set with utimes, record ages in the database.
 */
import { mkdtempSync, readdirSync, rmSync, utimesSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { main } from "../../runner/cli/main.js";
import { loadConfig } from "../../runner/config.js";
import { openConfiguredStore } from "../../runner/open-store.js";
import { type CliResult, reprise } from "../fakes/cli.js";
import { type TempRepo, tempRepo } from "../fakes/git-repo.js";

const SPEC = {
  version: 1,
  defaults: { image: "alpine:3", timeout: "1m" },
  tasks: {
    make: {
      command: [
        "sh",
        "-c",
        'printf "made %s" "$REPRISE_INPUT_WORD" > "$REPRISE_OUTPUT_DATA" && mkdir "$REPRISE_OUTPUT_TREE/d" && printf one > "$REPRISE_OUTPUT_TREE/d/one" && printf "%s" "$REPRISE_INPUT_WORD" > "$REPRISE_OUTPUT_TREE/word" && echo "{}" > "$REPRISE_OUTPUTS"',
      ],
      sources: ["reprise.yaml"],
      inputs: { word: "string" },
      outputs: { data: "file", tree: "directory" },
      cache: true,
    },
    count: {
      command: [
        "sh",
        "-c",
        'n=$(cat "$REPRISE_INPUT_DATA" "$REPRISE_INPUT_TREE/word" | wc -c) && echo "{\\"n\\": $n}" > "$REPRISE_OUTPUTS"',
      ],
      sources: ["reprise.yaml"],
      inputs: { data: "file", tree: "directory" },
      outputs: { n: "integer" },
      cache: true,
    },
  },
  workflows: {
    w: {
      inputs: { word: "string" },
      nodes: {
        a: { task: "make", inputs: { word: "${{ inputs.word }}" } },
        b: {
          task: "count",
          inputs: { data: "${{ nodes.a.outputs.data }}", tree: "${{ nodes.a.outputs.tree }}" },
        },
      },
      outputs: { n: "${{ nodes.b.outputs.n }}" },
    },
  },
};

const DAY = 24 * 3_600_000;

let work: string;
let repo: TempRepo;
let env: Record<string, string | undefined>;
let blobsDir: string;
const cli = (...args: string[]) => reprise({ cwd: repo.dir, env }, ...args);
const json = (r: CliResult) => JSON.parse(r.stdout) as Record<string, unknown>;

interface GcDocument {
  dryRun: boolean;
  removed: Array<{ digest: string; size: number; modified: string }>;
  reclaimedBytes: number;
  before: { blobs: number; bytes: number };
  after: { blobs: number; bytes: number };
  kept: Record<"referenced" | "recent" | "unreferenced" | "raced", { blobs: number }>;
  recordsDeleted: number;
  policy: { graceSeconds: number; olderThanSeconds: number | null; maxSizeBytes: number | null };
}

/** The digests of the blobs on disk. */
function stored(): string[] {
  const out: string[] = [];
  for (const shard of safeReaddir(blobsDir))
    for (const hex of safeReaddir(join(blobsDir, shard))) out.push(`sha256:${hex}`);
  return out.sort();
}

function safeReaddir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

/** Dates every blob and every artifact record three days back. */
async function ageEverything(): Promise<void> {
  const when = new Date(Date.now() - 3 * DAY);
  for (const d of stored()) {
    const hex = d.slice("sha256:".length);
    utimesSync(join(blobsDir, hex.slice(0, 2), hex), when, when);
  }
  const open = await openConfiguredStore(loadConfig(env));
  try {
    await open.store.db.execute(sql`update artifacts set created_at = now() - interval '3 days'`);
  } finally {
    await open.close();
  }
}

let execution: string;
let produced: { data: string; tree: string };

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), "reprise-gc-cli-"));
  repo = tempRepo("reprise-gc-cli-repo-");
  repo.write({ "reprise.yaml": `${JSON.stringify(SPEC, null, 2)}\n` });
  repo.commit("a file and a directory");
  env = {
    REPRISE_DATA_DIR: join(work, "data"),
    DATABASE_URL: undefined,
    REPRISE_ARTIFACTS: undefined,
  };
  blobsDir = join(work, "data", "artifacts", "blobs", "sha256");
});

afterAll(() => {
  repo?.remove();
  if (work) rmSync(work, { recursive: true, force: true });
});

// Each CLI call starts a process and opens the embedded database (the first creates it).
describe("reprise artifacts gc", () => {
  it("keeps what the cache holds, however old", async () => {
    const run = cli("run", "w", "-i", "word=abc", "--json");
    expect(run.code, run.stderr).toBe(0);
    const doc = json(run) as {
      id: string;
      nodes: Array<{ id: string; outputs: Record<string, { artifact: string }> }>;
    };
    execution = doc.id;
    const a = doc.nodes.find((n) => n.id === "a");
    produced = { data: a?.outputs.data?.artifact ?? "", tree: a?.outputs.tree?.artifact ?? "" };
    // The file, the manifest and the directory's two files.
    expect(stored()).toHaveLength(4);
    expect(stored()).toContain(produced.data);
    expect(stored()).toContain(produced.tree);

    await ageEverything();
    const gc = cli("artifacts", "gc", "--json");
    expect(gc.code, gc.stderr).toBe(0);
    const report = json(gc) as unknown as GcDocument;
    expect(report.removed).toEqual([]);
    expect(report.kept.referenced.blobs).toBe(4);
    expect(report.policy).toEqual({
      graceSeconds: 3600,
      olderThanSeconds: null,
      maxSizeBytes: null,
    });
    expect(stored()).toHaveLength(4);
  }, 120_000);

  it("once the cache entries are evicted, --dry-run names the blobs and removes nothing", () => {
    const evict = cli("cache", "evict", "--task", "make");
    expect(evict.code, evict.stderr).toBe(0);
    const dry = cli("artifacts", "gc", "--dry-run");
    expect(dry.code, dry.stderr).toBe(0);
    for (const d of stored()) expect(dry.stdout).toContain(`would remove ${d}`);
    expect(dry.stdout).toMatch(
      /dry run: would remove 4 blobs \(\d+ B\) from file:\/\/.*nothing was removed/,
    );
    expect(stored()).toHaveLength(4);
  }, 120_000);

  it("removes them, oldest first, with their records, and says what the store holds after", () => {
    const before = stored();
    const gc = cli("artifacts", "gc", "--older-than", "1d", "--max-size", "50GiB", "--json");
    expect(gc.code, gc.stderr).toBe(0);
    const report = json(gc) as unknown as GcDocument;
    expect(report.dryRun).toBe(false);
    expect(report.removed.map((b) => b.digest).sort()).toEqual(before);
    expect(report.reclaimedBytes).toBe(report.removed.reduce((n, b) => n + b.size, 0));
    expect(report.after).toEqual({ blobs: 0, bytes: 0 });
    // One record per value (the file, the directory); a directory's files have none.
    expect(report.recordsDeleted).toBe(2);
    expect(report.policy.olderThanSeconds).toBe(86_400);
    expect(report.policy.maxSizeBytes).toBe(50 * 2 ** 30);
    expect(stored()).toEqual([]);

    const get = cli("artifacts", "get", produced.data, "-o", join(work, "out"));
    expect(get.code).toBe(2);
    expect(get.stderr).toContain("is not an artifact of");

    const again = cli("artifacts", "gc");
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toMatch(/^nothing removed in file:\/\/.*: it holds 0 B in 0 blobs/m);
  }, 120_000);

  it("leaves a relaunch to compute them again", () => {
    const relaunch = cli("relaunch", execution, "--json");
    expect(relaunch.code, relaunch.stderr).toBe(0);
    const doc = json(relaunch) as { status: string; nodes: Array<{ id: string; cache: string }> };
    expect(doc.status).toBe("SUCCEEDED");
    expect(doc.nodes.find((n) => n.id === "a")?.cache).toBe("POPULATED");
    expect(stored()).toContain(produced.data);
    expect(stored()).toContain(produced.tree);
  }, 120_000);

  it("refuses a limit it cannot read, naming the flag and an example (exit 2)", async () => {
    // The arguments are refused before anything opens: the entry point in-process is enough.
    const usage = async (...args: string[]) => {
      const lines: string[] = [];
      const io = { out: () => undefined, err: (line: string) => void lines.push(line) };
      const code = await main(args, io, repo.dir, env);
      return { code, stderr: lines.join("\n") };
    };
    const age = await usage("artifacts", "gc", "--older-than", "30");
    expect(age.code).toBe(2);
    expect(age.stderr).toContain(
      "--older-than takes a duration (d, h, m, s), e.g. --older-than 30d",
    );
    expect(age.stderr).toContain('got "30"');
    const size = await usage("artifacts", "gc", "--max-size", "lots");
    expect(size.code).toBe(2);
    expect(size.stderr).toContain("e.g. --max-size 50GiB");
    const extra = await usage("artifacts", "gc", "now");
    expect(extra.code).toBe(2);
    expect(extra.stderr).toContain("artifacts gc takes no argument");
    const mixed = await usage("artifacts", "ls", "x", "--dry-run");
    expect(mixed.code).toBe(2);
    expect(mixed.stderr).toContain("artifacts ls does not take --dry-run");
  }, 120_000);
});
