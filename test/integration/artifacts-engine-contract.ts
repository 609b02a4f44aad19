/**
 * Artifacts through the engine and the local executor, on a real store, real git and real
 * processes (the task I/O and memo cache sections of docs/design.md): file and directory values
 * pass between tasks by content, the cache key sees digests only, results whose bytes the
 * store lost are computed again (between executions and within one), and outputs that are not
 * what was declared fail the attempt with a message naming them.
 */
import { execFileSync } from "node:child_process";
import {
  chmodSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import type { JsonValue } from "../../core/spec/types.js";
import type { Store } from "../../db/store.js";
import type { ExecutionRecord, NodeRecord, VersionRecord } from "../../db/types.js";
import { LocalBlobStore } from "../../runner/artifacts/local-store.js";
import type { BlobStore } from "../../runner/artifacts/store.js";
import { Engine } from "../../runner/engine/engine.js";
import { createLocalExecutor, type LocalExecutor } from "../../runner/executors/local/index.js";
import { registerLocalCommit } from "../../runner/registry.js";
import { type TempRepo, tempRepo } from "../fakes/git-repo.js";
import { taskScratchRoot } from "../fakes/task-project.js";
import { type Driver, openTestStore, type TestStore } from "../setup/stores.js";

type Nodes = Record<string, NodeRecord>;

async function localBackend(dataDir: string): Promise<BackendHarness> {
  const blobs = new LocalBlobStore(join(dataDir, "artifacts"));
  return {
    blobs,
    remove: async (digest) => rmSync(blobs.path(digest)),
    async corrupt(digest) {
      const path = blobs.path(digest);
      const bytes = readFileSync(path);
      bytes[bytes.length - 1] = (bytes.at(-1) ?? 0) ^ 1;
      chmodSync(path, 0o644);
      writeFileSync(path, bytes);
    },
    close: async () => undefined,
  };
}

/** A shell task: `script` runs with sh -c; every run appends "EXECUTION NODE" to $COUNT_FILE. */
function sh(script: string, extra: Record<string, unknown> = {}) {
  return {
    command: [
      "sh",
      "-c",
      `echo "$REPRISE_EXECUTION_ID $REPRISE_NODE_ID" >> "$COUNT_FILE"; ${script}`,
    ],
    // A file no commit changes: a task's digest moves with its own command only.
    sources: ["static.txt"],
    cache: true,
    ...extra,
  };
}

/** An artifact store under test, and how to damage it behind its back. */
export interface BackendHarness {
  blobs: BlobStore;
  /** Deletes the blob the way an operator or a lifecycle rule would (unlink; S3 DeleteObject). */
  remove(digest: string): Promise<void>;
  /** Replaces the blob's bytes with others of the same length. */
  corrupt(digest: string): Promise<void>;
  close(): Promise<void>;
}

/**
 * `backend` makes the artifact store (local unless given). `diskTests`: the tests of the local
 * disk itself (a full disk, a 100,000-file directory), which neither the database driver nor
 * another store changes: the PGlite suite on the local store runs them, once.
 */
export function artifactsEngineContract(
  driver: Driver,
  options: { backend?: (dataDir: string) => Promise<BackendHarness>; diskTests?: boolean } = {},
): void {
  const backend = options.backend;
  let t: TestStore;
  let store: Store;
  let dataDir: string;
  let blobs: BlobStore;
  let harness: BackendHarness;
  let counter: string;
  const repos: TempRepo[] = [];
  const executors: LocalExecutor[] = [];
  let scratch = "";

  beforeAll(async () => {
    t = await openTestStore(driver);
    store = t.store;
    dataDir = mkdtempSync(join(tmpdir(), "reprise-artifacts-engine-"));
    harness = await (backend ?? localBackend)(dataDir);
    blobs = harness.blobs;
    // Outside the data directory, which the sandbox hides from tasks (task-project.ts).
    scratch = mkdtempSync(join(taskScratchRoot(), "reprise-artifacts-runs-"));
    counter = join(scratch, "runs.txt");
  });

  afterAll(async () => {
    for (const e of executors) await e.close();
    await harness?.close();
    await t?.dispose();
    for (const r of repos) r.remove();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  function engine(artifacts = blobs): Engine {
    const executor = createLocalExecutor({ dataDir, env: process.env, artifacts });
    executors.push(executor);
    return new Engine({
      store,
      executor,
      artifacts,
      owner: "artifacts-test",
      maxParallel: 4,
      tickMs: 100,
      leaseMs: 5_000,
    });
  }

  async function register(
    spec: { tasks: Record<string, unknown>; workflows: Record<string, unknown> },
    repo = tempRepo("reprise-artifacts-repo-"),
  ): Promise<{ version: VersionRecord; repo: TempRepo }> {
    if (!repos.includes(repo)) repos.push(repo);
    const tasks = Object.fromEntries(
      Object.entries(spec.tasks).map(([name, task]) => [
        name,
        {
          ...(task as object),
          env: { COUNT_FILE: counter, ...((task as { env?: object }).env ?? {}) },
        },
      ]),
    );
    const doc = { version: 1, defaults: { image: "busybox", timeout: "2m" }, ...spec, tasks };
    repo.write({ "reprise.yaml": `${JSON.stringify(doc, null, 2)}\n`, "static.txt": "static\n" });
    repo.commit("spec");
    const { version } = await registerLocalCommit(store, repo.dir, "HEAD");
    if (version.status !== "registered")
      throw new Error(version.errors.map((e) => e.message).join("\n"));
    return { version, repo };
  }

  async function run(
    v: VersionRecord,
    inputs: Record<string, JsonValue> = {},
    e = engine(),
  ): Promise<{ exec: ExecutionRecord; nodes: Nodes }> {
    const created = await store.executions.create({
      repo: v.repo,
      sha: v.sha,
      workflow: "w",
      inputs,
      trigger: { kind: "cli", actor: "artifacts-test" },
    });
    const exec = await e.drive(created.id);
    const nodes = Object.fromEntries(
      (await store.executions.nodes(exec.id)).map((n) => [n.nodeId, n]),
    );
    return { exec, nodes };
  }

  function runs(execution: string): string[] {
    if (!existsSync(counter)) return [];
    return readFileSync(counter, "utf8")
      .split("\n")
      .filter((l) => l.startsWith(`${execution} `))
      .map((l) => l.split(" ")[1] as string)
      .sort();
  }

  const ref = (n: NodeRecord | undefined, name: string) =>
    n?.outputs?.[name] as { artifact: string; type: string; size: number; files?: number };

  it("passes a file between tasks by content, records its producer and hands the reader a read-only path", async () => {
    const { version } = await register({
      tasks: {
        make: sh(`printf 'a,b\\n1,2\\n' > "$REPRISE_OUTPUT_DATA"`, { outputs: { data: "file" } }),
        read: sh(
          `test ! -w "$REPRISE_INPUT_DATA" || [ "$(id -u)" = 0 ] || exit 9
           printf '{"text":"%s","digest":"%s","same":%s}' "$(tr '\\n' ' ' < "$REPRISE_INPUT_DATA")" "$REPRISE_INPUT_DATA_DIGEST" \\
             "$(node -e 'const i=require(process.env.REPRISE_INPUTS);process.stdout.write(String(i.data===process.env.REPRISE_INPUT_DATA))')" > "$REPRISE_OUTPUTS"`,
          {
            inputs: { data: "file" },
            outputs: { text: "string", digest: "string", same: "boolean" },
          },
        ),
      },
      workflows: {
        w: {
          nodes: {
            make: { task: "make" },
            read: { task: "read", inputs: { data: "${{ nodes.make.outputs.data }}" } },
          },
          outputs: { data: "${{ nodes.make.outputs.data }}" },
        },
      },
    });
    const { exec, nodes } = await run(version);
    expect(exec.state, JSON.stringify(nodes.read?.error)).toBe("SUCCEEDED");
    const data = ref(nodes.make, "data");
    expect(data).toEqual({
      artifact: `sha256:${execFileSync("sh", ["-c", "printf 'a,b\\n1,2\\n' | sha256sum"], { encoding: "utf8" }).slice(0, 64)}`,
      type: "file",
      size: 8,
    });
    expect(exec.outputs?.data).toEqual(data);
    expect(nodes.read?.outputs).toEqual({ text: "a,b 1,2 ", digest: data.artifact, same: true });
    expect(await blobs.has(data.artifact)).toBe(true);
    const record = await store.artifacts.get(version.repo, data.artifact);
    expect(record?.producer).toEqual({
      execution: exec.id,
      node: "make",
      taskDigest: nodes.make?.taskDigest,
    });
  });

  it("hits the downstream cache when two different upstream tasks write the same bytes", async () => {
    const spec = (how: string) => ({
      tasks: {
        make: sh(how, { outputs: { data: "file" } }),
        count: sh(
          `wc -c < "$REPRISE_INPUT_DATA" | tr -d ' \\n' | sed 's/.*/{"bytes":&}/' > "$REPRISE_OUTPUTS"`,
          {
            inputs: { data: "file" },
            outputs: { bytes: "integer" },
          },
        ),
      },
      workflows: {
        w: {
          nodes: {
            make: { task: "make" },
            count: { task: "count", inputs: { data: "${{ nodes.make.outputs.data }}" } },
          },
        },
      },
    });
    const repo = tempRepo("reprise-artifacts-repo-");
    const first = await register(spec(`printf 'same bytes' > "$REPRISE_OUTPUT_DATA"`), repo);
    const a = await run(first.version);
    expect(a.exec.state).toBe("SUCCEEDED");
    // Other code (another digest for make), the same bytes: count's key is the same.
    const second = await register(
      spec(`echo 'other code' >/dev/null; printf 'same %s' bytes > "$REPRISE_OUTPUT_DATA"`),
      repo,
    );
    expect(second.version.tasks.make).not.toBe(first.version.tasks.make);
    const b = await run(second.version);
    expect(b.exec.state).toBe("SUCCEEDED");
    expect(runs(b.exec.id)).toEqual(["make"]);
    expect(b.nodes.count?.cacheStatus).toBe("HIT");
    expect(b.nodes.count?.source).toEqual({ execution: a.exec.id, node: "count" });
  });

  it("stores a directory with nested files, an executable and a link inside, and materialises it as it was", async () => {
    const { version } = await register({
      tasks: {
        make: sh(
          `d="$REPRISE_OUTPUT_MODEL"; mkdir -p "$d/weights/layer1"; printf w1 > "$d/weights/layer1/w.bin"
           printf '#!/bin/sh\\necho hi\\n' > "$d/run.sh"; chmod +x "$d/run.sh"; ln -s weights/layer1/w.bin "$d/latest"`,
          { outputs: { model: "directory" } },
        ),
        use: sh(
          `m="$REPRISE_INPUT_MODEL"; printf '{"said":"%s","w":"%s","link":"%s"}' "$("$m/run.sh")" "$(cat "$m/latest")" "$(readlink "$m/latest")" > "$REPRISE_OUTPUTS"`,
          {
            inputs: { model: "directory" },
            outputs: { said: "string", w: "string", link: "string" },
          },
        ),
      },
      workflows: {
        w: {
          nodes: {
            make: { task: "make" },
            use: { task: "use", inputs: { model: "${{ nodes.make.outputs.model }}" } },
          },
        },
      },
    });
    const { exec, nodes } = await run(version);
    expect(exec.state, JSON.stringify(nodes.use?.error ?? nodes.make?.error)).toBe("SUCCEEDED");
    expect(ref(nodes.make, "model")).toMatchObject({ type: "directory", files: 2, size: 2 + 18 });
    expect(nodes.use?.outputs).toEqual({ said: "hi", w: "w1", link: "weights/layer1/w.bin" });
  });

  it("serves a hit only while its artifacts are in the store: a deleted blob is a MISS that says which, and the node runs again", async () => {
    const { version } = await register({
      tasks: {
        make: sh(`printf 'precious' > "$REPRISE_OUTPUT_DATA"`, { outputs: { data: "file" } }),
      },
      workflows: { w: { nodes: { make: { task: "make" } } } },
    });
    const first = await run(version);
    const data = ref(first.nodes.make, "data");
    const hit = await run(version);
    expect(hit.nodes.make?.cacheStatus).toBe("HIT");
    await harness.remove(data.artifact);
    expect(await blobs.has(data.artifact)).toBe(false);
    const again = await run(version);
    expect(again.exec.state).toBe("SUCCEEDED");
    expect(runs(again.exec.id)).toEqual(["make"]);
    expect(again.nodes.make?.cacheStatus).toBe("POPULATED");
    expect(again.nodes.make?.cacheReason).toContain(`${data.artifact} (output "data") is missing`);
    expect(await blobs.has(data.artifact)).toBe(true);
    const after = await run(version);
    expect(after.nodes.make?.cacheStatus).toBe("HIT");
    expect(after.nodes.make?.source).toEqual({ execution: again.exec.id, node: "make" });
  });

  it("computes a lost input again within the execution: corrupt bytes are never handed to a task", async () => {
    const spec = (consumer: string) => ({
      tasks: {
        make: sh(`printf 'v1 data' > "$REPRISE_OUTPUT_DATA"`, { outputs: { data: "file" } }),
        read: sh(
          `printf '{"text":"%s"}' "$(cat "$REPRISE_INPUT_DATA")" > "$REPRISE_OUTPUTS"; : ${consumer}`,
          {
            inputs: { data: "file" },
            outputs: { text: "string" },
          },
        ),
      },
      workflows: {
        w: {
          nodes: {
            make: { task: "make" },
            read: { task: "read", inputs: { data: "${{ nodes.make.outputs.data }}" } },
          },
        },
      },
    });
    const repo = tempRepo("reprise-artifacts-repo-");
    const first = await register(spec("v1"), repo);
    const a = await run(first.version);
    const data = ref(a.nodes.make, "data");
    // Corrupt the blob behind the store's back; a new consumer (new digest) must read it.
    await harness.corrupt(data.artifact);
    const second = await register(spec("v2"), repo);
    const b = await run(second.version);
    expect(b.exec.state, JSON.stringify(b.nodes.read?.error)).toBe("SUCCEEDED");
    expect(b.nodes.read?.outputs).toEqual({ text: "v1 data" });
    // make was served from the cache, its bytes found corrupt when read, and so computed again.
    expect(runs(b.exec.id)).toEqual(["make", "read"]);
    expect(await blobs.has(data.artifact)).toBe(true);
    expect((await blobs.getBytes(data.artifact, 100)).toString()).toBe("v1 data");
  });

  it.each([
    ["nothing is written", ":", /output "data" \(REPRISE_OUTPUT_DATA\): nothing was written at/],
    [
      "a directory where a file was declared",
      `mkdir "$REPRISE_OUTPUT_DATA"`,
      /declared a file, found a directory/,
    ],
    ["a symlink", `ln -s /etc/passwd "$REPRISE_OUTPUT_DATA"`, /declared a file, found a symlink/],
    ["a FIFO (never opened)", `mkfifo "$REPRISE_OUTPUT_DATA"`, /declared a file, found a FIFO/],
  ])("fails the attempt as the task's failure when %s", async (_what, script, message) => {
    const { version } = await register({
      tasks: { make: sh(script, { outputs: { data: "file" } }) },
      workflows: { w: { nodes: { make: { task: "make" } } } },
    });
    const { exec, nodes } = await run(version);
    expect(exec.state).toBe("FAILED");
    expect(nodes.make?.error).toMatchObject({ kind: "user", reason: "outputs" });
    expect(nodes.make?.error?.message).toMatch(message);
  });

  it("refuses a directory output whose link escapes it, and stores nothing for it", async () => {
    const { version } = await register({
      tasks: {
        make: sh(`cd "$REPRISE_OUTPUT_D"; ln -s . a; ln -s a/.. b; printf x > f`, {
          outputs: { d: "directory" },
        }),
      },
      workflows: { w: { nodes: { make: { task: "make" } } } },
    });
    const { nodes } = await run(version);
    expect(nodes.make?.error).toMatchObject({ kind: "user", reason: "outputs" });
    expect(nodes.make?.error?.message).toMatch(
      /output "d".*link "b" -> "a\/\.\." leaves the directory/,
    );
    expect(await store.artifacts.getMany(version.repo, [])).toEqual(new Map());
  });

  // The local disk's own tests, in one suite only (see diskTests above).
  if (backend || options.diskTests === false) return;

  it("stores a 100,000-file directory output", async () => {
    const { version } = await register({
      tasks: {
        make: sh(
          `node -e 'const fs=require("fs"),p=require("path"),d=process.env.REPRISE_OUTPUT_D;for(let i=0;i<100;i++){const s=p.join(d,"s"+i);fs.mkdirSync(s);for(let j=0;j<1000;j++)fs.writeFileSync(p.join(s,j+".txt"),i+"/"+j)}'`,
          { outputs: { d: "directory" } },
        ),
      },
      workflows: { w: { nodes: { make: { task: "make" } } } },
    });
    const { exec, nodes } = await run(version);
    expect(exec.state, JSON.stringify(nodes.make?.error)).toBe("SUCCEEDED");
    expect(ref(nodes.make, "d")).toMatchObject({ type: "directory", files: 100_000 });
  }, 240_000);

  it("fails the attempt as a system failure with a clear message when the store's disk is full, leaving no partial blob", async () => {
    const mount = mkdtempSync(join(tmpdir(), "reprise-artifacts-tmpfs-"));
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=1m", "tmpfs", mount]);
    try {
      const small = new LocalBlobStore(join(mount, "artifacts"));
      const { version } = await register({
        tasks: {
          make: sh(`head -c 3000000 /dev/zero > "$REPRISE_OUTPUT_DATA"`, {
            outputs: { data: "file" },
          }),
        },
        workflows: { w: { nodes: { make: { task: "make" } } } },
      });
      const { exec, nodes } = await run(version, {}, engine(small));
      expect(exec.state).toBe("FAILED");
      expect(nodes.make?.error).toMatchObject({ kind: "system", reason: "artifact-store" });
      expect(nodes.make?.error?.message).toMatch(/the disk is full/);
      // Retried as a system failure, then given up; no blob was published.
      expect(nodes.make?.systemFailures).toBeGreaterThan(1);
      expect(existsSync(join(mount, "artifacts", "blobs"))).toBe(false);
      expect(readdirSync(join(mount, "artifacts", "tmp"))).toEqual([]);
    } finally {
      execFileSync("umount", ["-l", mount]);
      rmSync(mount, { recursive: true, force: true });
    }
  }, 120_000);
}
