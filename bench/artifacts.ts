/**
 * Artifacts (docs/design.md section 3a), each figure against a floor measured in the same run:
 *
 * - storing a 1 GiB file output on the local store (a finished task's output: linked into the
 *   store and hashed there) against `sha256sum` plus `cp` of the same file; also a user's file
 *   (`-i data=@PATH`: copied while hashed, one read pass), against the same floor;
 * - a cache hit on a node with three 100 MB artifact outputs against a hit on a node without
 *   artifacts (through the real engine on an in-memory PGlite: one presence check per artifact);
 * - a 10,000-file directory output stored (files/s), and stored again unchanged;
 * - on S3 (a loopback s3rver): the same large file uploaded and downloaded through the store
 *   against a bare lib-storage `Upload` and a bare `GetObject` (artifacts-s3-child.ts), and the
 *   store's RSS while it moves the bytes.
 *
 * BENCH_ARTIFACT_MB sets the large file's size (default 1024).
 */
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import {
  closeSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  rmSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { ArtifactRef } from "../core/artifacts/ref.js";
import { openStore } from "../db/store.js";
import { storeArtifact } from "../runner/artifacts/ingest.js";
import { LocalBlobStore } from "../runner/artifacts/local-store.js";
import { Engine } from "../runner/engine/engine.js";
import type { AttemptOutcome, Executor, LaunchSpec } from "../runner/executors/types.js";
import { registerLocalCommit } from "../runner/registry.js";
import { printTable, type Row, runChild } from "./lib.js";

const BIG_MB = Number(process.env.BENCH_ARTIFACT_MB ?? 1024);
const ROUNDS = 3;
const HITS = 21;
const DIR_FILES = 10_000;

function medianOf(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] as number;
}

async function timed(fn: () => unknown): Promise<number> {
  const t = performance.now();
  await fn();
  return performance.now() - t;
}

function randomFile(path: string, mb: number): void {
  const fd = openSync(path, "w");
  const chunk = randomBytes(1 << 20);
  for (let i = 0; i < mb; i++) {
    chunk[0] = i & 0xff;
    writeSync(fd, chunk);
  }
  closeSync(fd);
}

async function bigFile(tmp: string): Promise<Row[]> {
  const src = join(tmp, "big.bin");
  randomFile(src, BIG_MB);
  const floor: number[] = [];
  const owned: number[] = [];
  const copied: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const copy = join(tmp, `floor-${r}.bin`);
    floor.push(
      await timed(() => {
        execFileSync("sha256sum", [src], { stdio: "ignore" });
        execFileSync("cp", [src, copy]);
      }),
    );
    rmSync(copy);
    // A task's output: the attempt's file, given up to the store.
    const out = join(tmp, `out-${r}.bin`);
    execFileSync("cp", [src, out]);
    const store = new LocalBlobStore(join(tmp, `store-owned-${r}`));
    owned.push(await timed(() => store.putFile(out, { owned: true })));
    const userStore = new LocalBlobStore(join(tmp, `store-copy-${r}`));
    copied.push(await timed(() => userStore.putFile(src)));
    rmSync(join(tmp, `store-owned-${r}`), { recursive: true, force: true });
    rmSync(join(tmp, `store-copy-${r}`), { recursive: true, force: true });
    rmSync(out, { force: true });
  }
  rmSync(src);
  const f = medianOf(floor);
  const label = `${BIG_MB} MiB`;
  return [
    {
      figure: `store a ${label} task output (local store)`,
      value: medianOf(owned),
      peer: "sha256sum + cp",
      peerValue: f,
      target: "<= 1.43x the floor's time (>= 0.7x its throughput)",
      met: medianOf(owned) <= f / 0.7,
    },
    {
      figure: `store a ${label} user file, copied (local store)`,
      value: medianOf(copied),
      peer: "sha256sum + cp",
      peerValue: f,
      target: "<= 1.43x the floor's time",
      met: medianOf(copied) <= f / 0.7,
    },
  ];
}

async function s3(tmp: string): Promise<Row[]> {
  const src = join(tmp, "s3.bin");
  randomFile(src, BIG_MB);
  const child = fileURLToPath(new URL("./artifacts-s3-child.ts", import.meta.url));
  const r = await runChild<{
    bareUp: number;
    bareDown: number;
    up: number;
    down: number;
    peakRssMb: number;
  }>(child, { kind: "s3", src, rounds: ROUNDS } as { kind: string }, 30 * 60_000);
  rmSync(src);
  const label = `${BIG_MB} MiB`;
  return [
    {
      figure: `S3 upload of a ${label} file through the store`,
      value: r.up,
      peer: "bare lib-storage Upload",
      peerValue: r.bareUp,
      target: "<= 1.25x (>= 0.8x its throughput)",
      met: r.up <= r.bareUp / 0.8,
    },
    {
      figure: `S3 download of a ${label} file through the store`,
      value: r.down,
      peer: "bare GetObject to a file",
      peerValue: r.bareDown,
      target: "<= 1.25x (>= 0.8x its throughput)",
      met: r.down <= r.bareDown / 0.8,
    },
    {
      figure: "peak RSS while the store moves it (MB)",
      value: r.peakRssMb,
      unit: "MB",
      peer: "target",
      peerValue: 200,
      target: "< 200 MB (streamed)",
      met: r.peakRssMb < 200,
    },
  ];
}

async function directory(tmp: string): Promise<Row[]> {
  const dir = join(tmp, "dir");
  for (let i = 0; i < 100; i++) {
    mkdirSync(join(dir, `s${i}`), { recursive: true });
    for (let j = 0; j < DIR_FILES / 100; j++)
      writeFileSync(join(dir, `s${i}`, `${j}.txt`), `file ${i}/${j} ${"x".repeat(j % 50)}\n`);
  }
  const store = new LocalBlobStore(join(tmp, "dir-store"));
  const first = await timed(() => storeArtifact(store, dir, "directory", "bench"));
  const again: number[] = [];
  for (let r = 0; r < ROUNDS; r++)
    again.push(await timed(() => storeArtifact(store, dir, "directory", "bench")));
  const perSecond = (DIR_FILES / first) * 1000;
  return [
    {
      figure: `store a ${DIR_FILES.toLocaleString("en")}-file directory (files/s)`,
      value: perSecond,
      unit: "files/s",
      peer: "target floor",
      peerValue: 2000,
      target: ">= 2,000 files/s",
      met: perSecond >= 2000,
    },
    {
      figure: "store the same directory again, unchanged",
      value: medianOf(again),
      peer: "the first store",
      peerValue: first,
      target: "<= 0.1x (10x faster)",
      met: medianOf(again) <= first / 10,
    },
  ];
}

/** Outputs as the task would have written them, without running anything: the engine alone. */
class OutputsExecutor implements Executor {
  readonly name = "bench-outputs";
  constructor(private readonly outputs: (spec: LaunchSpec) => AttemptOutcome) {}
  async launch(): Promise<void> {}
  async wait(spec: LaunchSpec): Promise<AttemptOutcome> {
    return this.outputs(spec);
  }
  async abort(): Promise<void> {}
  async logTail(): Promise<string | null> {
    return null;
  }
  async close(): Promise<void> {}
}

async function cacheHit(tmp: string): Promise<Row[]> {
  const store = new LocalBlobStore(join(tmp, "hit-store"));
  const refs: ArtifactRef[] = [];
  for (let i = 0; i < 3; i++) {
    const f = join(tmp, `out-${i}.bin`);
    randomFile(f, 100);
    refs.push(await storeArtifact(store, f, "file", "bench", { owned: true }));
  }
  const repo = join(tmp, "hit-repo");
  mkdirSync(repo);
  const git = (...args: string[]) =>
    execFileSync("git", ["-C", repo, ...args], {
      env: { ...process.env, GIT_CONFIG_GLOBAL: "/dev/null" },
    });
  git("init", "-q", "-b", "main");
  writeFileSync(
    join(repo, "reprise.yaml"),
    `version: 1
defaults: { image: "busybox@sha256:${"b".repeat(64)}", timeout: 1m }
tasks:
  plain: { command: ["true"], sources: [reprise.yaml], outputs: { a: string, b: string, c: string }, cache: true }
  data: { command: ["false"], sources: [reprise.yaml], outputs: { a: file, b: file, c: file }, cache: true }
workflows:
  plain: { nodes: { n: { task: plain } } }
  data: { nodes: { n: { task: data } } }
`,
  );
  git("add", "-A");
  git("-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", "bench");
  const opened = await openStore({ memory: true, migrate: true });
  try {
    const { version } = await registerLocalCommit(opened.store, repo, "HEAD");
    const executor = new OutputsExecutor((spec) => ({
      ok: true,
      logRef: "",
      outputs:
        spec.taskName === "data"
          ? ({ a: refs[0], b: refs[1], c: refs[2] } as never)
          : { a: "x", b: "y", c: "z" },
    }));
    const engine = new Engine({
      store: opened.store,
      executor,
      artifacts: store,
      owner: "bench",
      maxParallel: 4,
      tickMs: 1_000,
    });
    const once = async (workflow: string) => {
      const e = await opened.store.executions.create({
        repo: version.repo,
        sha: version.sha,
        workflow,
        inputs: {},
        trigger: { kind: "cli", actor: "bench" },
      });
      const t = performance.now();
      const done = await engine.drive(e.id);
      const ms = performance.now() - t;
      if (done.state !== "SUCCEEDED") throw new Error(`${workflow}: ${done.state}`);
      return ms;
    };
    // The first of each populates the cache; the rest are hits.
    await once("plain");
    await once("data");
    const plain: number[] = [];
    const data: number[] = [];
    for (let i = 0; i < HITS; i++) {
      plain.push(await once("plain"));
      data.push(await once("data"));
    }
    return [
      {
        figure: "cache hit of a node with three 100 MB artifact outputs",
        value: medianOf(data),
        peer: "a hit without artifacts",
        peerValue: medianOf(plain),
        target: "<= 3x",
        met: medianOf(data) <= 3 * medianOf(plain),
      },
    ];
  } finally {
    await opened.close();
  }
}

export async function benchArtifacts(): Promise<Row[]> {
  const tmp = mkdtempSync(join(tmpdir(), "reprise-bench-artifacts-"));
  try {
    return [
      ...(await bigFile(tmp)),
      ...(await s3(tmp)),
      ...(await directory(tmp)),
      ...(await cacheHit(tmp)),
    ];
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) printTable(await benchArtifacts());
