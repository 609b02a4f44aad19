/**
 * The pod-side helpers (runner/executors/kubernetes/pod-io/), run as real processes of the
 * bundled CLI (`reprise pod-io fetch-inputs | store-outputs`) against the real broker
 * (runner/executors/kubernetes/broker.ts) over a real S3 store: s3rver behind the gate that
 * checks presigned signatures as S3 does. The broker's attempts are this test's own table, as the
 * executor's informer would give them; the helpers hold only the broker URL and their token.
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import {
  chmodSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer, request, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PutObjectCommand } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { ArtifactRef, ArtifactType } from "../../core/artifacts/ref.js";
import { materialise, readManifest, storeArtifact } from "../../runner/artifacts/ingest.js";
import type { S3BlobStore } from "../../runner/artifacts/s3-store.js";
import { verifyBlob } from "../../runner/artifacts/store.js";
import { type BrokerAttempt, startBroker } from "../../runner/executors/kubernetes/broker.js";
import { cliArgs } from "../fakes/cli.js";
import { type PresigningS3, startPresigningS3 } from "../fakes/presigning-s3.js";
import type { FakeS3 } from "../fakes/s3-server.js";
import type { SignatureGate } from "../fakes/s3-signature-gate.js";

type Broker = Awaited<ReturnType<typeof startBroker>>;

let peer: PresigningS3;
let s3: FakeS3;
let gate: SignatureGate;
let store: S3BlobStore;
let broker: Broker;
let scratch: string;

/** The attempts the broker serves, as the executor's informer would see their Jobs and pods. */
const attempts = new Map<string, BrokerAttempt>();
const watchers = new Map<string, Set<() => void>>();
function setAttempt(handle: string, attempt: BrokerAttempt): void {
  attempts.set(handle, attempt);
  for (const callback of watchers.get(handle) ?? []) callback();
}
const table = {
  lookup: (handle: string) => attempts.get(handle) ?? null,
  onChange(handle: string, callback: () => void) {
    const set = watchers.get(handle) ?? new Set();
    set.add(callback);
    watchers.set(handle, set);
    return () => set.delete(callback);
  },
};

function storeOn(endpoint: string, prefix = "pod-io"): S3BlobStore {
  return peer.store(prefix, endpoint);
}

beforeAll(async () => {
  peer = await startPresigningS3();
  ({ s3, gate } = peer);
  store = storeOn(gate.endpoint);
  broker = await startBroker({ listen: "127.0.0.1:0", key: randomBytes(32), store, ...table });
  scratch = await mkdtemp(join(tmpdir(), "reprise-pod-io-"));
});
afterAll(async () => {
  await broker?.close();
  await peer?.close();
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

let n = 0;
let dir: string;
let handle: string;
beforeEach(() => {
  n++;
  handle = `attempt-${n}-${randomBytes(3).toString("hex")}`;
  dir = join(scratch, handle);
  mkdirSync(dir);
});

function attempt(over: Partial<BrokerAttempt> = {}): BrokerAttempt {
  return {
    inputs: {},
    outputs: {},
    deadlineMs: Date.now() + 3600_000,
    finished: false,
    task: { state: "waiting" },
    ...over,
  };
}

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  /** What the helper wrote as its termination message, parsed; null when it wrote none. */
  message: unknown;
}

/** Runs `reprise pod-io <helper>` as the pod would, with only the Job's environment. */
function podIo(
  helper: "fetch-inputs" | "store-outputs",
  env: Record<string, string>,
  opts: {
    brokerUrl?: string;
    token?: string;
    onStderr?: (all: string, signal: (s: NodeJS.Signals) => void) => void;
  } = {},
): Promise<Run> {
  const terminationLog = join(dir, `${helper}.termination-log`);
  const child = spawn(process.execPath, cliArgs("pod-io", helper), {
    env: {
      PATH: process.env.PATH,
      HOME: dir,
      REPRISE_BROKER_URL: opts.brokerUrl ?? broker.url,
      REPRISE_BROKER_TOKEN: opts.token ?? broker.token(handle),
      REPRISE_ATTEMPT: handle,
      REPRISE_TERMINATION_LOG: terminationLog,
      ...env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (c: string) => {
    stdout += c;
  });
  child.stderr.setEncoding("utf8").on("data", (c: string) => {
    stderr += c;
    opts.onStderr?.(stderr, (sig) => child.kill(sig));
  });
  return new Promise((resolve, reject) => {
    child.once("error", reject);
    child.once("close", (code) => {
      const message = existsSync(terminationLog)
        ? (JSON.parse(readFileSync(terminationLog, "utf8")) as unknown)
        : null;
      resolve({ code, stdout, stderr, message });
    });
  });
}

/** A directory with a file in a subdirectory, an executable and a link: every kind of entry. */
function writeTree(root: string, seed: string): void {
  mkdirSync(join(root, "sub"), { recursive: true });
  writeFileSync(join(root, "a.txt"), `alpha ${seed}\n`);
  writeFileSync(join(root, "sub", "b.bin"), randomBytes(70_000));
  writeFileSync(join(root, "sub", "run.sh"), `#!/bin/sh\necho ${seed}\n`);
  chmodSync(join(root, "sub", "run.sh"), 0o755);
  symlinkSync("a.txt", join(root, "link"));
}

/** The tree under `root`, as kind, mode and content (or target) by relative path. */
function treeOf(root: string): Record<string, string> {
  const out: Record<string, string> = {};
  const visit = (rel: string) => {
    for (const name of readdirSync(join(root, rel)).sort()) {
      const path = rel ? `${rel}/${name}` : name;
      const s = lstatSync(join(root, path));
      if (s.isDirectory()) visit(path);
      else if (s.isSymbolicLink()) out[path] = `link -> ${readlinkSync(join(root, path))}`;
      else
        out[path] =
          `${(s.mode & 0o777).toString(8)} ${readFileSync(join(root, path)).toString("base64")}`;
    }
  };
  visit("");
  return out;
}

async function storeFile(bytes: Buffer): Promise<ArtifactRef> {
  const path = join(dir, `src-${randomBytes(4).toString("hex")}`);
  writeFileSync(path, bytes);
  return storeArtifact(store, path, "file", "test input");
}

/** Every blob of `ref` is in the store, whole and right. */
async function expectStored(ref: ArtifactRef): Promise<void> {
  if (ref.type === "file") {
    expect(await verifyBlob(store, ref.artifact, ref.size)).toEqual({ ok: true, size: ref.size });
    return;
  }
  const manifest = await readManifest(store, ref.artifact);
  for (const e of manifest.entries)
    if (e.kind !== "symlink")
      expect(await verifyBlob(store, e.digest, e.size)).toEqual({ ok: true, size: e.size });
}

const OUTPUTS = (o: Record<string, ArtifactType>) => JSON.stringify(o);

describe("reprise pod-io fetch-inputs", () => {
  it("materialises a file and a directory read-only and byte-exact, and lays out the outputs", async () => {
    const bytes = randomBytes(300_000);
    const file = await storeFile(bytes);
    const src = join(dir, "tree");
    writeTree(src, "in");
    const tree = await storeArtifact(store, src, "directory", "test input");
    setAttempt(
      handle,
      attempt({
        inputs: { data: file, tree },
        outputs: { result: "file", report: "directory" },
      }),
    );
    const io = join(dir, "io");
    const run = await podIo("fetch-inputs", {
      REPRISE_IO_DIR: io,
      REPRISE_IO_OUTPUTS: OUTPUTS({ result: "file", report: "directory" }),
    });
    expect(run.code, run.stderr).toBe(0);
    expect(readFileSync(join(io, "in", "data")).equals(bytes)).toBe(true);
    expect(lstatSync(join(io, "in", "data")).mode & 0o777).toBe(0o444);
    const expected = treeOf(src);
    // Read-only as materialised: files 444, executables 555, links kept as links.
    for (const [path, v] of Object.entries(expected))
      expected[path] = v.replace(/^644 /, "444 ").replace(/^755 /, "555 ");
    expect(treeOf(join(io, "in", "tree"))).toEqual(expected);
    expect(expected.link).toBe("link -> a.txt");
    expect(readdirSync(join(io, "out"))).toEqual(["report"]);
    expect(readdirSync(join(io, "out", "report"))).toEqual([]);
  });

  it("fails with a clear message, and leaves nothing in place, when a blob in the store is corrupt", async () => {
    const bytes = randomBytes(50_000);
    const file = await storeFile(bytes);
    // Behind the store's back: the same key now holds other bytes of the same size.
    await s3.client.send(
      new PutObjectCommand({
        Bucket: s3.bucket,
        Key: store.key(file.artifact),
        Body: randomBytes(50_000),
      }),
    );
    setAttempt(handle, attempt({ inputs: { data: file } }));
    const io = join(dir, "io");
    const run = await podIo("fetch-inputs", { REPRISE_IO_DIR: io });
    expect(run.code).toBe(4);
    expect(run.stderr).toContain(file.artifact);
    expect(run.stderr).toContain("corrupt");
    expect(run.message).toEqual({
      error: {
        kind: "system",
        reason: "input-missing",
        message: expect.stringContaining(`${file.artifact}`),
      },
    });
    expect(readdirSync(join(io, "in"))).toEqual([]);
  });

  it("exits 4 saying where it looked when the broker cannot be reached", async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, "127.0.0.1", resolve));
    const { port } = closed.address() as AddressInfo;
    await new Promise((resolve) => closed.close(resolve));
    const run = await podIo(
      "fetch-inputs",
      { REPRISE_IO_DIR: join(dir, "io"), REPRISE_IO_RETRIES: "2" },
      { brokerUrl: `http://127.0.0.1:${port}` },
    );
    expect(run.code).toBe(4);
    expect(run.message).toEqual({
      error: {
        kind: "system",
        reason: "fetch",
        message: expect.stringMatching(
          /could not reach the broker .*ECONNREFUSED.*REPRISE_BROKER_URL.*tried 2 times/,
        ),
      },
    });
  });

  it("exits 4 naming the token when the broker refuses it", async () => {
    setAttempt(handle, attempt());
    const run = await podIo(
      "fetch-inputs",
      { REPRISE_IO_DIR: join(dir, "io") },
      { token: broker.token("another-attempt") },
    );
    expect(run.code).toBe(4);
    expect(run.stderr).toContain("REPRISE_BROKER_TOKEN");
  });
});

describe("reprise pod-io store-outputs", () => {
  it("waits for the task, then stores a file and a directory whose refs verify in the store", async () => {
    const outputs = { result: "file", report: "directory" } as const;
    setAttempt(handle, attempt({ outputs, task: { state: "running" } }));
    const out = join(dir, "out");
    mkdirSync(join(out, "report"), { recursive: true });
    const bytes = randomBytes(123_456);
    writeFileSync(join(out, "result"), bytes);
    writeTree(join(out, "report"), "out");
    let flipped = false;
    const run = await podIo(
      "store-outputs",
      { REPRISE_OUT_DIR: out, REPRISE_IO_OUTPUTS: OUTPUTS(outputs) },
      {
        // Once it is long-polling a running task, the task ends.
        onStderr: (all) => {
          if (!flipped && all.includes("the task is running")) {
            flipped = true;
            setAttempt(handle, attempt({ outputs, task: { state: "terminated", exitCode: 0 } }));
          }
        },
      },
    );
    expect(run.code, run.stderr).toBe(0);
    expect(flipped).toBe(true);
    const message = run.message as { outputs: Record<string, ArtifactRef> };
    expect(Object.keys(message.outputs).sort()).toEqual(["report", "result"]);
    expect(JSON.parse(run.stdout.trim())).toEqual(message);
    const { result, report } = message.outputs as { result: ArtifactRef; report: ArtifactRef };
    expect(result).toEqual({
      artifact: expect.stringMatching(/^sha256:/),
      type: "file",
      size: bytes.length,
    });
    expect(report).toMatchObject({ type: "directory", files: 3 });
    await expectStored(result);
    await expectStored(report);
    // Read back through the store: the same bytes, the same tree.
    await materialise(store, result, join(dir, "result-back"));
    expect(readFileSync(join(dir, "result-back")).equals(bytes)).toBe(true);
    await materialise(store, report, join(dir, "report-back"), { writable: true });
    expect(treeOf(join(dir, "report-back"))).toEqual(treeOf(join(out, "report")));
  });

  it("stops waiting on SIGTERM (the pod deleted) and says so", async () => {
    setAttempt(handle, attempt({ outputs: { result: "file" }, task: { state: "running" } }));
    let sent = false;
    const run = await podIo(
      "store-outputs",
      { REPRISE_OUT_DIR: join(dir, "out"), REPRISE_IO_OUTPUTS: OUTPUTS({ result: "file" }) },
      {
        onStderr: (all, signal) => {
          if (!sent && all.includes("the task is running")) {
            sent = true;
            signal("SIGTERM");
          }
        },
      },
    );
    expect(run.code).toBe(4);
    expect(run.message).toEqual({
      error: {
        kind: "system",
        reason: "upload",
        message: expect.stringContaining("stopped by SIGTERM"),
      },
    });
  });

  it("does not send again what the store already has", async () => {
    const bytes = randomBytes(40_000);
    const before = await storeFile(bytes);
    setAttempt(
      handle,
      attempt({ outputs: { result: "file" }, task: { state: "terminated", exitCode: 0 } }),
    );
    const out = join(dir, "out");
    mkdirSync(out);
    writeFileSync(join(out, "result"), bytes);
    const run = await podIo("store-outputs", {
      REPRISE_OUT_DIR: out,
      REPRISE_IO_OUTPUTS: OUTPUTS({ result: "file" }),
    });
    expect(run.code, run.stderr).toBe(0);
    expect(run.message).toEqual({ outputs: { result: before } });
    expect(run.stderr).toContain("0 blobs sent, 1 already in the store");
  });

  it("stores nothing and exits 0 when the task failed", async () => {
    setAttempt(
      handle,
      attempt({ outputs: { result: "file" }, task: { state: "terminated", exitCode: 1 } }),
    );
    const out = join(dir, "out");
    mkdirSync(out);
    const run = await podIo("store-outputs", {
      REPRISE_OUT_DIR: out,
      REPRISE_IO_OUTPUTS: OUTPUTS({ result: "file" }),
    });
    expect(run.code, run.stderr).toBe(0);
    expect(run.message).toEqual({ skipped: "task exited 1" });
  });

  it("exits 3 with the task's mistake when an output is missing", async () => {
    setAttempt(
      handle,
      attempt({ outputs: { result: "file" }, task: { state: "terminated", exitCode: 0 } }),
    );
    const out = join(dir, "out");
    mkdirSync(out);
    const run = await podIo("store-outputs", {
      REPRISE_OUT_DIR: out,
      REPRISE_IO_OUTPUTS: OUTPUTS({ result: "file" }),
    });
    expect(run.code).toBe(3);
    expect(run.message).toEqual({
      error: {
        kind: "user",
        reason: "outputs",
        message: `output "result" (REPRISE_OUTPUT_RESULT): nothing was written at ${join(out, "result")}`,
      },
    });
  });

  it("sends a file above the multipart threshold in parts, which complete into the blob", async () => {
    const small = await startBroker({
      listen: "127.0.0.1:0",
      key: randomBytes(32),
      store,
      multipartBytes: 1024 * 1024,
      // S3's smallest part (but the last).
      partBytes: 5 * 1024 * 1024,
      ...table,
    });
    try {
      setAttempt(
        handle,
        attempt({ outputs: { big: "file" }, task: { state: "terminated", exitCode: 0 } }),
      );
      const out = join(dir, "out");
      mkdirSync(out);
      // Not a whole number of parts, whatever their size: the last one is shorter.
      const bytes = randomBytes(11 * 1024 * 1024 + 12_345);
      writeFileSync(join(out, "big"), bytes);
      const run = await podIo(
        "store-outputs",
        { REPRISE_OUT_DIR: out, REPRISE_IO_OUTPUTS: OUTPUTS({ big: "file" }) },
        { brokerUrl: small.url, token: small.token(handle) },
      );
      expect(run.code, run.stderr).toBe(0);
      const parts = Number(/in (\d+) parts/.exec(run.stderr)?.[1]);
      expect(parts).toBeGreaterThan(1);
      const { big } = (run.message as { outputs: { big: ArtifactRef } }).outputs;
      expect(big.size).toBe(bytes.length);
      await expectStored(big);
      await materialise(store, big, join(dir, "big-back"));
      expect(readFileSync(join(dir, "big-back")).equals(bytes)).toBe(true);
    } finally {
      await small.close();
    }
  });

  it("retries an upload the store fails, then exits 4 saying what the store answered", async () => {
    // In front of the gate, a proxy that answers every PUT 503: uploads fail, the rest passes.
    const failing = await failingPuts(gate.endpoint);
    const flaky = storeOn(failing.endpoint);
    const other = await startBroker({
      listen: "127.0.0.1:0",
      key: randomBytes(32),
      store: flaky,
      ...table,
    });
    try {
      setAttempt(
        handle,
        attempt({ outputs: { result: "file" }, task: { state: "terminated", exitCode: 0 } }),
      );
      const out = join(dir, "out");
      mkdirSync(out);
      writeFileSync(join(out, "result"), randomBytes(10_000));
      const run = await podIo(
        "store-outputs",
        {
          REPRISE_OUT_DIR: out,
          REPRISE_IO_OUTPUTS: OUTPUTS({ result: "file" }),
          REPRISE_IO_RETRIES: "2",
        },
        { brokerUrl: other.url, token: other.token(handle) },
      );
      expect(run.code).toBe(4);
      expect(failing.puts).toBe(2);
      expect(run.message).toEqual({
        error: {
          kind: "system",
          reason: "upload",
          message: expect.stringMatching(
            /could not upload sha256:[0-9a-f]{64}: PUT .* answered 503.*tried 2 times/,
          ),
        },
      });
    } finally {
      await other.close();
      await failing.close();
    }
  });
});

/** A proxy to `upstream` that answers every PUT with 503 and counts them. */
async function failingPuts(
  upstream: string,
): Promise<{ endpoint: string; readonly puts: number; close(): Promise<void> }> {
  const target = new URL(upstream);
  let puts = 0;
  const server: Server = createServer((req, res) => {
    if (req.method === "PUT") {
      puts++;
      req.resume();
      res.writeHead(503, { "content-type": "application/xml" });
      res.end(
        "<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>",
      );
      return;
    }
    // The host header is kept: the gate checks signatures made for this proxy's address.
    const out = request(
      {
        host: target.hostname,
        port: target.port,
        method: req.method,
        path: req.url,
        headers: req.headers,
      },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    out.on("error", (e) => res.destroy(e));
    req.pipe(out);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    get puts() {
      return puts;
    },
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
