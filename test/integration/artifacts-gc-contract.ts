/**
 * The artifact store's garbage collection (runner/artifacts/gc.ts), run on every driver: PGlite
 * always, real Postgres when DATABASE_URL is set. Real things throughout: a LocalBlobStore in a
 * temporary directory (blob ages set with utimes), versions registered from temporary git
 * repositories, and for the race, the engine and the local executor running `sh` tasks that
 * write and read files and directories.
 *
 * Each test has its own blob store and writes bytes no other test writes, so the references other
 * tests leave in the shared database cannot keep (or lose) its blobs.
 */
import { randomBytes, randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { mkdir, unlink, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ArtifactRef } from "../../core/artifacts/ref.js";
import type { JsonValue } from "../../core/spec/types.js";
import type { Store } from "../../db/store.js";
import type { ExecutionRecord, ExecutionState, VersionRecord } from "../../db/types.js";
import { collectGarbage, GC_GRACE_MS, type GcOptions } from "../../runner/artifacts/gc.js";
import { readManifest, storeArtifact } from "../../runner/artifacts/ingest.js";
import { LocalBlobStore } from "../../runner/artifacts/local-store.js";
import { type BlobInfo, BlobMissingError, type BlobStore } from "../../runner/artifacts/store.js";
import { Engine } from "../../runner/engine/engine.js";
import { createLocalExecutor, type LocalExecutor } from "../../runner/executors/local/index.js";
import { registerLocalCommit } from "../../runner/registry.js";
import { type TempRepo, tempRepo } from "../fakes/git-repo.js";
import { type Driver, openTestStore, type TestStore } from "../setup/stores.js";

const DAY = 24 * 3_600_000;

/** Tasks that do nothing: these tests write executions' references themselves. */
const IDLE_SPEC = {
  version: 1,
  defaults: { image: "alpine:3", timeout: "1m" },
  tasks: {
    make: {
      command: ["sh", "-c", "true"],
      inputs: { seed: "file" },
      outputs: { data: "file", tree: "directory" },
    },
    read: {
      command: ["sh", "-c", "true"],
      inputs: { data: "file", tree: "directory" },
      outputs: { n: "integer" },
    },
  },
  workflows: {
    w: {
      inputs: { seed: "file" },
      nodes: {
        a: { task: "make", inputs: { seed: "${{ inputs.seed }}" } },
        b: {
          task: "read",
          inputs: { data: "${{ nodes.a.outputs.data }}", tree: "${{ nodes.a.outputs.tree }}" },
        },
      },
    },
  },
};

/**
 * The race's pipeline. `make` is cached and writes bytes that depend on the word only, so its
 * results stay referenced by the cache; `stamp` is not cached and writes bytes unique to its
 * execution, garbage once the execution ends; `pause` outlasts gc's grace period (shortened to
 * two seconds here), so that what `read` then reads (a file and two directories) is kept by the
 * running execution's references alone.
 */
const RACE_SPEC = {
  version: 1,
  defaults: { image: "alpine:3", timeout: "1m" },
  tasks: {
    make: {
      command: [
        "sh",
        "-c",
        'printf "made %s" "$REPRISE_INPUT_WORD" > "$REPRISE_OUTPUT_DATA" && printf shared > "$REPRISE_OUTPUT_TREE/shared" && printf "%s" "$REPRISE_INPUT_WORD" > "$REPRISE_OUTPUT_TREE/word" && echo "{}" > "$REPRISE_OUTPUTS"',
      ],
      inputs: { word: "string" },
      outputs: { data: "file", tree: "directory" },
      cache: true,
    },
    stamp: {
      command: [
        "sh",
        "-c",
        'cat "$REPRISE_INPUT_DATA" > "$REPRISE_OUTPUT_STAMPED" && printf " %s" "$REPRISE_EXECUTION_ID" >> "$REPRISE_OUTPUT_STAMPED" && mkdir "$REPRISE_OUTPUT_LOG/x" && printf "%s" "$REPRISE_EXECUTION_ID" > "$REPRISE_OUTPUT_LOG/x/id" && echo "{}" > "$REPRISE_OUTPUTS"',
      ],
      inputs: { data: "file" },
      outputs: { stamped: "file", log: "directory" },
    },
    pause: {
      command: ["sh", "-c", 'sleep 3 && echo \'{"ok": true}\' > "$REPRISE_OUTPUTS"'],
      outputs: { ok: "boolean" },
    },
    read: {
      command: [
        "sh",
        "-c",
        'n=$(cat "$REPRISE_INPUT_STAMPED" "$REPRISE_INPUT_TREE/word" "$REPRISE_INPUT_LOG/x/id" | wc -c) && echo "{\\"n\\": $n}" > "$REPRISE_OUTPUTS"',
      ],
      inputs: { stamped: "file", tree: "directory", log: "directory" },
      outputs: { n: "integer" },
    },
  },
  workflows: {
    w: {
      inputs: { word: "string" },
      nodes: {
        a: { task: "make", inputs: { word: "${{ inputs.word }}" } },
        s: { task: "stamp", inputs: { data: "${{ nodes.a.outputs.data }}" } },
        // Past the grace period by the time `r` reads them: only the running execution holds them.
        p: { task: "pause", after: ["s"] },
        r: {
          task: "read",
          after: ["p"],
          inputs: {
            stamped: "${{ nodes.s.outputs.stamped }}",
            tree: "${{ nodes.a.outputs.tree }}",
            log: "${{ nodes.s.outputs.log }}",
          },
        },
      },
      outputs: { n: "${{ nodes.r.outputs.n }}" },
    },
  },
};

export function artifactsGcContract(driver: Driver): void {
  let t: TestStore;
  let store: Store;
  const temps: string[] = [];
  const repos: TempRepo[] = [];
  const executors: LocalExecutor[] = [];

  beforeAll(async () => {
    t = await openTestStore(driver);
    store = t.store;
  });

  afterAll(async () => {
    for (const e of executors) await e.close();
    await t?.dispose();
    for (const r of repos) r.remove();
    for (const d of temps) rmSync(d, { recursive: true, force: true });
  });

  function temp(prefix: string): string {
    const d = mkdtempSync(join(tmpdir(), prefix));
    temps.push(d);
    return d;
  }

  function blobStore(): LocalBlobStore {
    return new LocalBlobStore(join(temp("reprise-gc-blobs-"), "artifacts"));
  }

  /** Stores bytes no other test has and dates the blob `ageMs` ago. */
  async function put(blobs: LocalBlobStore, ageMs = 2 * DAY, size?: number): Promise<ArtifactRef> {
    const bytes = size === undefined ? Buffer.from(`blob ${randomUUID()}`) : randomBytes(size);
    const { digest } = await blobs.putBytes(bytes);
    await age(blobs, digest, ageMs);
    return { artifact: digest, type: "file", size: bytes.length };
  }

  async function age(blobs: LocalBlobStore, digest: string, ageMs: number): Promise<void> {
    const when = new Date(Date.now() - ageMs);
    await utimes(blobs.path(digest), when, when);
  }

  /** A directory artifact of these files (path -> content), its blobs dated `ageMs` ago. */
  async function directory(
    blobs: LocalBlobStore,
    files: Record<string, string>,
    ageMs = 2 * DAY,
  ): Promise<{ ref: ArtifactRef; files: Record<string, string> }> {
    const dir = join(temp("reprise-gc-dir-"), "d");
    for (const [path, content] of Object.entries(files)) {
      await mkdir(dirname(join(dir, path)), { recursive: true });
      await writeFile(join(dir, path), content);
    }
    const ref = await storeArtifact(blobs, dir, "directory", "test");
    const manifest = await readManifest(blobs, ref.artifact);
    const digests: Record<string, string> = {};
    for (const e of manifest.entries)
      if (e.kind !== "symlink") {
        digests[e.path] = e.digest;
        await age(blobs, e.digest, ageMs);
      }
    await age(blobs, ref.artifact, ageMs);
    return { ref, files: digests };
  }

  async function present(blobs: BlobStore, refs: ReadonlyArray<ArtifactRef | string>) {
    return Promise.all(refs.map((r) => blobs.has(typeof r === "string" ? r : r.artifact)));
  }

  /** A repository with one commit per entry of `specs`, each registered. */
  async function versions(n = 1, spec: object = IDLE_SPEC): Promise<VersionRecord[]> {
    const repo = tempRepo("reprise-gc-repo-");
    repos.push(repo);
    const out: VersionRecord[] = [];
    for (let i = 0; i < n; i++) {
      repo.write({ "reprise.yaml": `${JSON.stringify(spec, null, 2)}\n`, "n.txt": `${i}\n` });
      repo.commit(`commit ${i}`);
      const { version } = await registerLocalCommit(store, repo.dir, "HEAD");
      if (version.status !== "registered") throw new Error("the spec did not register");
      out.push(version);
    }
    return out;
  }

  /** An execution in `state` whose documents hold these references (written as the engine would). */
  async function execution(
    v: VersionRecord,
    state: ExecutionState,
    docs: {
      inputs?: Record<string, JsonValue>;
      outputs?: Record<string, JsonValue>;
      nodes?: Record<
        string,
        { inputs?: Record<string, JsonValue>; outputs?: Record<string, JsonValue> }
      >;
    } = {},
  ): Promise<string> {
    const e = await store.executions.create({
      repo: v.repo,
      sha: v.sha,
      workflow: "w",
      inputs: docs.inputs ?? {},
      trigger: { kind: "cli", actor: "gc-test" },
    });
    const finished = ["SUCCEEDED", "FAILED", "ABORTED"].includes(state);
    await store.db.execute(
      sql`update executions set state = ${state},
                 outputs = ${docs.outputs ? JSON.stringify(docs.outputs) : null}::jsonb,
                 finished_at = ${finished ? sql`now()` : sql`null`}
           where id = ${e.id}`,
    );
    for (const [node, d] of Object.entries(docs.nodes ?? {}))
      await store.db.execute(
        sql`update node_executions
               set inputs = ${d.inputs ? JSON.stringify(d.inputs) : null}::jsonb,
                   outputs = ${d.outputs ? JSON.stringify(d.outputs) : null}::jsonb
             where execution_id = ${e.id} and node_id = ${node}`,
      );
    return e.id;
  }

  async function setState(id: string, state: ExecutionState): Promise<void> {
    await store.db.execute(sql`update executions set state = ${state} where id = ${id}`);
  }

  /** A cache entry of `repo` whose outputs are `outputs`; returns its key. */
  async function cacheEntry(repo: string, outputs: Record<string, JsonValue>): Promise<string> {
    const key = `sha256:${randomBytes(32).toString("hex")}`;
    await store.db.execute(
      sql`insert into cache_entries (key, repo, task_name, task_digest, identity, outputs, source_execution_id, source_node_id)
          values (${key}, ${repo}, 'make', ${key}, '{}'::jsonb, ${JSON.stringify(outputs)}::jsonb, 'elsewhere', 'a')`,
    );
    return key;
  }

  const asJson = (r: ArtifactRef) => r as unknown as JsonValue;

  async function recordsOf(digest: string): Promise<string[]> {
    const rs = await store.db.execute(
      sql`select repo from artifacts where digest = ${digest} order by repo`,
    );
    return (rs as unknown as { rows: Array<{ repo: string }> }).rows.map((r) => r.repo);
  }

  /** Records `digest` as an upload of `repo`, dated `ageMs` ago (0: now). */
  async function record(repo: string, r: ArtifactRef, ageMs = 2 * DAY): Promise<void> {
    await store.artifacts.recordUpload(
      repo,
      { digest: r.artifact, type: r.type, size: r.size, files: r.files ?? null },
      "gc-test",
    );
    await store.db.execute(
      sql`update artifacts set created_at = now() - make_interval(secs => ${ageMs / 1000})
           where repo = ${repo} and digest = ${r.artifact}`,
    );
  }

  const gc = (blobs: BlobStore, options: GcOptions = {}) => collectGarbage(store, blobs, options);
  const removedOf = (r: { removed: BlobInfo[] }) => r.removed.map((b) => b.digest);

  describe(`what gc removes [${driver}]`, () => {
    it("removes an unreferenced blob past the grace period and keeps one stored within it", async () => {
      const blobs = blobStore();
      const old = await put(blobs, 2 * DAY);
      const fresh = await put(blobs, 0);
      const report = await gc(blobs);
      expect(removedOf(report)).toEqual([old.artifact]);
      expect(report.reclaimedBytes).toBe(old.size);
      expect(await present(blobs, [old, fresh])).toEqual([false, true]);
      expect(report.before).toEqual({ blobs: 2, bytes: old.size + fresh.size });
      expect(report.after).toEqual({ blobs: 1, bytes: fresh.size });
      expect(report.kept.recent).toEqual({ blobs: 1, bytes: fresh.size });
      expect(report.policy.graceMs).toBe(GC_GRACE_MS);
    });

    it("keeps what a cache entry references, and removes it once the entry is evicted", async () => {
      const blobs = blobStore();
      const [v] = (await versions()) as [VersionRecord];
      const x = await put(blobs);
      const key = await cacheEntry(v.repo, { data: asJson(x) });
      // The execution that computed it is finished and not production: only the cache holds it.
      await execution(v, "SUCCEEDED", { nodes: { a: { outputs: { data: asJson(x) } } } });
      expect(removedOf(await gc(blobs))).toEqual([]);
      expect(await present(blobs, [x])).toEqual([true]);

      expect(await store.cache.evict(v.repo, { key })).toBe(1);
      expect(removedOf(await gc(blobs))).toEqual([x.artifact]);
    });

    it("keeps every execution's of a version production ever had, and removes a finished execution's of any other", async () => {
      const blobs = blobStore();
      const [v1, v2, v3] = (await versions(3)) as [VersionRecord, VersionRecord, VersionRecord];
      await store.production.activate({ repo: v1.repo, sha: v1.sha, actor: "t", reason: "first" });
      await store.production.activate({ repo: v2.repo, sha: v2.sha, actor: "t", reason: "next" });
      const [input, output, nodeInput, other, otherOutput] = [
        await put(blobs),
        await put(blobs),
        await put(blobs),
        await put(blobs),
        await put(blobs),
      ] as [ArtifactRef, ArtifactRef, ArtifactRef, ArtifactRef, ArtifactRef];
      // v1 was production once (v2 replaced it): a rollback to it must find its results.
      await execution(v1, "SUCCEEDED", {
        inputs: { seed: asJson(input) },
        nodes: { a: { outputs: { data: asJson(output) } } },
      });
      await execution(v2, "FAILED", { nodes: { b: { inputs: { data: asJson(nodeInput) } } } });
      await execution(v3, "SUCCEEDED", {
        outputs: { n: asJson(otherOutput) },
        nodes: { a: { outputs: { data: asJson(other) } } },
      });
      const report = await gc(blobs);
      expect(removedOf(report).sort()).toEqual([other.artifact, otherOutput.artifact].sort());
      expect(await present(blobs, [input, output, nodeInput])).toEqual([true, true, true]);
      expect(report.kept.referenced.blobs).toBe(3);
    });

    it("keeps what an unfinished execution references, and removes it once the execution ends", async () => {
      const blobs = blobStore();
      const [v] = (await versions()) as [VersionRecord];
      const [queued, output, input, aborting] = [
        await put(blobs),
        await put(blobs),
        await put(blobs),
        await put(blobs),
      ] as [ArtifactRef, ArtifactRef, ArtifactRef, ArtifactRef];
      await execution(v, "QUEUED", { inputs: { seed: asJson(queued) } });
      const running = await execution(v, "RUNNING", {
        nodes: { a: { outputs: { data: asJson(output) } }, b: { inputs: { data: asJson(input) } } },
      });
      await execution(v, "ABORTING", { nodes: { a: { inputs: { seed: asJson(aborting) } } } });
      expect(removedOf(await gc(blobs))).toEqual([]);
      expect(await present(blobs, [queued, output, input, aborting])).toEqual([
        true,
        true,
        true,
        true,
      ]);

      await setState(running, "SUCCEEDED");
      expect(removedOf(await gc(blobs)).sort()).toEqual([output.artifact, input.artifact].sort());
    });

    it("keeps a live directory's manifest and files, removes them with it, and keeps a file a live directory shares", async () => {
      const blobs = blobStore();
      const [v] = (await versions()) as [VersionRecord];
      const tag = randomUUID();
      const live = await directory(blobs, { "x/shared": `shared ${tag}`, z: `only live ${tag}` });
      const dead = await directory(blobs, { "x/shared": `shared ${tag}`, y: `only dead ${tag}` });
      const key = await cacheEntry(v.repo, { tree: asJson(live.ref) });
      await execution(v, "SUCCEEDED", { nodes: { a: { outputs: { tree: asJson(dead.ref) } } } });

      const report = await gc(blobs);
      expect(removedOf(report).sort()).toEqual([dead.ref.artifact, dead.files.y].sort());
      expect(
        await present(blobs, [
          live.ref.artifact,
          live.files["x/shared"] as string,
          live.files.z as string,
        ]),
      ).toEqual([true, true, true]);

      await store.cache.evict(v.repo, { key });
      expect(removedOf(await gc(blobs)).sort()).toEqual(
        [live.ref.artifact, live.files["x/shared"], live.files.z].sort(),
      );
    });

    it("lets a directory whose manifest is gone, or is no manifest, keep none of the files", async () => {
      const blobs = blobStore();
      const [v] = (await versions()) as [VersionRecord];
      const lost = await directory(blobs, { a: `a ${randomUUID()}`, b: `b ${randomUUID()}` });
      await unlink(blobs.path(lost.ref.artifact));
      const notAManifest = await put(blobs);
      await cacheEntry(v.repo, {
        lost: asJson(lost.ref),
        odd: asJson({ ...notAManifest, type: "directory", files: 1 }),
      });
      const report = await gc(blobs);
      expect(removedOf(report).sort()).toEqual([lost.files.a, lost.files.b].sort());
      // The blob named as a directory is referenced itself: kept.
      expect(await present(blobs, [notAManifest])).toEqual([true]);
    });
  });

  describe(`limits [${driver}]`, () => {
    it("--older-than removes only the unreferenced blobs stored at least that long ago", async () => {
      const blobs = blobStore();
      const forty = await put(blobs, 40 * DAY);
      const twenty = await put(blobs, 20 * DAY);
      const five = await put(blobs, 5 * DAY);
      const report = await gc(blobs, { olderThanMs: 10 * DAY });
      expect(removedOf(report)).toEqual([forty.artifact, twenty.artifact]);
      expect(report.kept.unreferenced).toEqual({ blobs: 1, bytes: five.size });
      expect(await present(blobs, [five])).toEqual([true]);
    });

    it("--max-size removes the oldest unreferenced blobs until the store fits, and says when it cannot", async () => {
      const blobs = blobStore();
      const [v] = (await versions()) as [VersionRecord];
      const live = await put(blobs, 50 * DAY, 8_000);
      await cacheEntry(v.repo, { data: asJson(live) });
      const a = await put(blobs, 30 * DAY, 1_000);
      const b = await put(blobs, 20 * DAY, 2_000);
      const c = await put(blobs, 10 * DAY, 4_000);
      // 15,000 bytes: a and b make it 12,000.
      const fits = await gc(blobs, { maxBytes: 12_000 });
      expect(removedOf(fits)).toEqual([a.artifact, b.artifact]);
      expect(fits.after).toEqual({ blobs: 2, bytes: 12_000 });
      expect(fits.overMaxSize).toBe(false);

      // The live 8,000 bytes stay whatever the limit.
      const short = await gc(blobs, { maxBytes: 5_000 });
      expect(removedOf(short)).toEqual([c.artifact]);
      expect(short.after.bytes).toBe(8_000);
      expect(short.overMaxSize).toBe(true);
      expect(await present(blobs, [live])).toEqual([true]);
    });

    it("with --older-than and --max-size, removes a blob when either says so", async () => {
      const blobs = blobStore();
      const a = await put(blobs, 30 * DAY, 1_000);
      const b = await put(blobs, 20 * DAY, 1_000);
      const c = await put(blobs, 10 * DAY, 1_000);
      // Age alone takes a; size alone (at most 1,500 bytes) takes a and b.
      const report = await gc(blobs, { olderThanMs: 25 * DAY, maxBytes: 1_500 });
      expect(removedOf(report)).toEqual([a.artifact, b.artifact]);
      expect(await present(blobs, [c])).toEqual([true]);
    });

    it("--dry-run removes nothing and deletes no record, and names what a real run removes", async () => {
      const blobs = blobStore();
      const [v] = (await versions()) as [VersionRecord];
      const x = await put(blobs, 3 * DAY);
      const y = await put(blobs, 2 * DAY);
      await record(v.repo, x);
      const seen: string[] = [];
      const dry = await gc(blobs, { dryRun: true, onRemoved: (b) => void seen.push(b.digest) });
      expect(dry.dryRun).toBe(true);
      expect(removedOf(dry)).toEqual([x.artifact, y.artifact]);
      expect(seen).toEqual([x.artifact, y.artifact]);
      expect(dry.recordsDeleted).toBe(0);
      expect(await present(blobs, [x, y])).toEqual([true, true]);
      expect(await recordsOf(x.artifact)).toEqual([v.repo]);

      const real = await gc(blobs);
      expect(removedOf(real)).toEqual(removedOf(dry));
      expect(real.after).toEqual(dry.after);
    });
  });

  describe(`records [${driver}]`, () => {
    it("deletes the records of the blobs it removes, in every repository, and keeps those of kept blobs", async () => {
      const blobs = blobStore();
      const [v] = (await versions()) as [VersionRecord];
      const [w] = (await versions()) as [VersionRecord];
      const gone = await put(blobs);
      const kept = await put(blobs);
      await record(v.repo, gone);
      await record(w.repo, gone);
      await record(v.repo, kept);
      await cacheEntry(v.repo, { data: asJson(kept) });
      const report = await gc(blobs);
      expect(removedOf(report)).toEqual([gone.artifact]);
      expect(report.recordsDeleted).toBe(2);
      expect(await recordsOf(gone.artifact)).toEqual([]);
      expect(await recordsOf(kept.artifact)).toEqual([v.repo]);
    });

    it("keeps an old blob whose record is recent: an upload about to be used", async () => {
      const blobs = blobStore();
      const [v] = (await versions()) as [VersionRecord];
      const uploaded = await put(blobs, 2 * DAY);
      await record(v.repo, uploaded, 0);
      const report = await gc(blobs);
      expect(removedOf(report)).toEqual([]);
      expect(report.kept.referenced.blobs).toBe(1);
    });
  });

  describe(`while references change [${driver}]`, () => {
    it("reads references after listing: a reference made while the store is listed is seen", async () => {
      const blobs = blobStore();
      const [v] = (await versions()) as [VersionRecord];
      const x = await put(blobs);
      const listing = hooked(blobs, {
        afterList: async () => void (await cacheEntry(v.repo, { data: asJson(x) })),
      });
      expect(removedOf(await gc(listing))).toEqual([]);
      expect(await present(blobs, [x])).toEqual([true]);
    });

    it("re-reads references before each batch: a blob referenced meanwhile is kept", async () => {
      const blobs = blobStore();
      const [v] = (await versions()) as [VersionRecord];
      const a = await put(blobs, 30 * DAY);
      const b = await put(blobs, 20 * DAY);
      const c = await put(blobs, 10 * DAY);
      const report = await gc(blobs, {
        batchSize: 1,
        onRemoved: async (removed) => {
          if (removed.digest === a.artifact) await cacheEntry(v.repo, { data: asJson(c) });
        },
      });
      expect(removedOf(report)).toEqual([a.artifact, b.artifact]);
      expect(report.kept.raced).toEqual({ blobs: 1, bytes: c.size });
      expect(await present(blobs, [c])).toEqual([true]);
    });

    it("keeps the files of a directory referenced meanwhile", async () => {
      const blobs = blobStore();
      const [v] = (await versions()) as [VersionRecord];
      const first = await put(blobs, 30 * DAY);
      const dir = await directory(
        blobs,
        { f: `f ${randomUUID()}`, g: `g ${randomUUID()}` },
        10 * DAY,
      );
      const report = await gc(blobs, {
        batchSize: 1,
        onRemoved: async (removed) => {
          if (removed.digest === first.artifact)
            await cacheEntry(v.repo, { tree: asJson(dir.ref) });
        },
      });
      expect(removedOf(report)).toEqual([first.artifact]);
      expect(
        await present(blobs, [dir.ref.artifact, dir.files.f as string, dir.files.g as string]),
      ).toEqual([true, true, true]);
    });

    it("keeps a blob stored again after it was listed (a task wrote the same bytes), and its records", async () => {
      const blobs = blobStore();
      const [v] = (await versions()) as [VersionRecord];
      const a = await put(blobs, 30 * DAY);
      const bytes = Buffer.from(`again ${randomUUID()}`);
      const { digest } = await blobs.putBytes(bytes);
      await age(blobs, digest, 20 * DAY);
      const again = { artifact: digest, type: "file" as const, size: bytes.length };
      await record(v.repo, again);
      const report = await gc(blobs, {
        batchSize: 1,
        onRemoved: async (removed) => {
          // Listed old, stored again now: what a task producing the same bytes does.
          if (removed.digest === a.artifact) await blobs.putBytes(bytes);
        },
      });
      expect(removedOf(report)).toEqual([a.artifact]);
      expect(report.kept.raced.blobs).toBe(1);
      expect(await present(blobs, [again])).toEqual([true]);
      expect(await recordsOf(digest)).toEqual([v.repo]);
      expect(report.recordsDeleted).toBe(0);
    });
  });

  describe(`beside running executions [${driver}]`, () => {
    it("runs over and over while executions produce and consume artifacts: every execution succeeds and nothing live is removed", {
      timeout: 180_000,
    }, async () => {
      const blobs = blobStore();
      const [v] = (await versions(1, RACE_SPEC)) as [VersionRecord];
      const executor = createLocalExecutor({
        dataDir: temp("reprise-gc-data-"),
        env: process.env,
        artifacts: blobs,
      });
      executors.push(executor);
      const engine = new Engine({
        store,
        executor,
        artifacts: blobs,
        owner: "gc-race",
        maxParallel: 8,
        tickMs: 100,
        leaseMs: 10_000,
      });
      // Shorter than `pause`, so the running executions' references are what keeps their
      // artifacts; far above the milliseconds between a task's outputs being stored and their
      // success being recorded, which only the grace period covers.
      const graceMs = 2_000;
      const removed = new Map<string, number>();
      const garbage: string[] = [];
      /** Every digest an execution referenced (directories' files included), by execution. */
      const referencedBy = new Map<string, Set<string>>();
      let running = true;
      let passes = 0;
      const collecting = (async () => {
        while (running) {
          garbage.push((await put(blobs, 2 * DAY)).artifact);
          await gc(blobs, {
            graceMs,
            batchSize: 3,
            onRemoved: (b) => void removed.set(b.digest, Date.now()),
          });
          // A pass that ended while executions still ran: gc and the engine interleaved.
          if (running) passes++;
          await new Promise((r) => setTimeout(r, 10));
        }
      })();

      const words = ["w0", "w1", "w2", "w3"];
      const done: ExecutionRecord[] = [];
      try {
        const drives: Promise<void>[] = [];
        for (let i = 0; i < 16; i++) {
          const created = await store.executions.create({
            repo: v.repo,
            sha: v.sha,
            workflow: "w",
            inputs: { word: words[i % words.length] as string },
            trigger: { kind: "cli", actor: "gc-race" },
          });
          drives.push(
            engine.drive(created.id).then(async (exec) => {
              done.push(exec);
              // Read right away, within the grace period: its directories' files by then.
              referencedBy.set(exec.id, await referencesOf(blobs, exec.id));
            }),
          );
          await new Promise((r) => setTimeout(r, 200));
        }
        await Promise.all(drives);
      } finally {
        running = false;
        await collecting;
      }

      expect(done.map((e) => e.state)).toEqual(done.map(() => "SUCCEEDED"));
      for (const e of done)
        for (const n of await store.executions.nodes(e.id)) {
          // A lost input would show as a second attempt; a lost cached result, as a reason.
          expect(n.attempts, `${e.id}/${n.nodeId}`).toBeLessThanOrEqual(1);
          expect(n.cacheReason, `${e.id}/${n.nodeId}`).toBeNull();
        }
      // Nothing was removed before the executions that referenced it had finished.
      for (const e of done)
        for (const d of referencedBy.get(e.id) ?? []) {
          const at = removed.get(d);
          if (at !== undefined)
            expect(
              (e.finishedAt as Date).getTime(),
              `${d} of ${e.id} removed at ${new Date(at).toISOString()}`,
            ).toBeLessThanOrEqual(at);
        }
      // What the cache holds was never removed, and is all there.
      const cached = await cachedDigests(blobs, v.repo);
      expect(cached.length).toBeGreaterThan(words.length);
      for (const d of cached) expect(removed.has(d), d).toBe(false);
      expect(await present(blobs, cached)).not.toContain(false);
      // And gc did work while the executions ran: the garbage seeded went.
      expect(passes).toBeGreaterThan(0);
      expect(garbage.slice(0, -1).every((d) => removed.has(d))).toBe(true);

      // Once past the grace period, the unique results of the ended executions go too, and
      // every cached one stays.
      await new Promise((r) => setTimeout(r, graceMs + 100));
      await gc(blobs, { graceMs, onRemoved: (b) => void removed.set(b.digest, Date.now()) });
      for (const e of done) {
        const nodes = await store.executions.nodes(e.id);
        const stamp = nodes.find((n) => n.nodeId === "s")?.outputs?.stamped;
        const digest = (stamp as unknown as ArtifactRef | undefined)?.artifact;
        expect(digest && removed.has(digest), `${e.id}'s stamp ${digest}`).toBe(true);
      }
      expect(await present(blobs, cached)).not.toContain(false);
    });
  });

  /** The digests the cache entries of `repo` reference, with the files of their directories. */
  async function cachedDigests(blobs: BlobStore, repo: string): Promise<string[]> {
    const rs = await store.db.execute(sql`select outputs from cache_entries where repo = ${repo}`);
    const docs = (rs as unknown as { rows: Array<{ outputs: Record<string, JsonValue> }> }).rows;
    return [
      ...(await refsIn(
        blobs,
        docs.map((r) => r.outputs),
      )),
    ];
  }

  /** The digests an execution's nodes reference, with the files of its directories. */
  async function referencesOf(blobs: BlobStore, executionId: string): Promise<Set<string>> {
    const nodes = await store.executions.nodes(executionId);
    return refsIn(
      blobs,
      nodes.flatMap((n) => [n.inputs ?? {}, n.outputs ?? {}]),
    );
  }
}

/** The artifact digests among these documents' values, with the files of their directories. */
async function refsIn(
  blobs: BlobStore,
  docs: ReadonlyArray<Record<string, JsonValue>>,
): Promise<Set<string>> {
  const out = new Set<string>();
  for (const doc of docs)
    for (const v of Object.values(doc)) {
      const r = v as unknown as ArtifactRef | null;
      if (!r || typeof r !== "object" || typeof r.artifact !== "string") continue;
      out.add(r.artifact);
      if (r.type !== "directory") continue;
      // Gone already: gc may take it once the execution has ended (checked by its digest).
      const manifest = await readManifest(blobs, r.artifact).catch((e: unknown) => {
        if (e instanceof BlobMissingError) return null;
        throw e;
      });
      for (const e of manifest?.entries ?? []) if (e.kind !== "symlink") out.add(e.digest);
    }
  return out;
}

/** A blob store that runs `afterList` once its listing has been read to the end. */
function hooked(inner: BlobStore, hooks: { afterList: () => Promise<void> }): BlobStore {
  return {
    location: inner.location,
    has: (d) => inner.has(d),
    stat: (d) => inner.stat(d),
    putFile: (p, o) => inner.putFile(p, o),
    putBytes: (b) => inner.putBytes(b),
    putStream: (s, e, m) => inner.putStream(s, e, m),
    getFile: (d, dest, mode) => inner.getFile(d, dest, mode),
    getStream: (d) => inner.getStream(d),
    getBytes: (d, max) => inner.getBytes(d, max),
    delete: (d) => inner.delete(d),
    async *list() {
      yield* inner.list();
      await hooks.afterList();
    },
  };
}
