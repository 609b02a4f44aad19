/**
 * The artifact store's contract on the local filesystem adapter, and how it fails when it cannot
 * write: on real tmpfs mounts, one tiny, one read-only (mounting needs root, as CI runs; without
 * it these fail, they are not skipped).
 */
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { chmod, mkdtemp, readdir, readFile, rm, unlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { LocalBlobStore } from "../../runner/artifacts/local-store.js";
import { type BlobStore, BlobStoreError, presigner } from "../../runner/artifacts/store.js";
import { artifactStoreContract, damaged, sha256 } from "./artifact-store-contract.js";

artifactStoreContract("local", async () => {
  const root = await mkdtemp(join(tmpdir(), "reprise-blobs-"));
  const store = new LocalBlobStore(join(root, "artifacts"));
  return {
    store,
    async corrupt(digest) {
      const path = store.path(digest);
      const bytes = await readFile(path);
      await chmod(path, 0o644);
      await writeFile(path, damaged(bytes));
      await chmod(path, 0o444);
    },
    remove: (digest) => unlink(store.path(digest)),
    close: () => rm(root, { recursive: true, force: true }),
  };
});

const mounts: string[] = [];

function tmpfs(size: string, readOnly = false): string {
  const dir = mkdtempSync(join(tmpdir(), "reprise-tmpfs-"));
  execFileSync("mount", [
    "-t",
    "tmpfs",
    "-o",
    `size=${size}${readOnly ? ",ro" : ""}`,
    "tmpfs",
    dir,
  ]);
  mounts.push(dir);
  return dir;
}

afterAll(() => {
  for (const m of mounts) {
    execFileSync("umount", ["-l", m]);
    rmSync(m, { recursive: true, force: true });
  }
});

/** Every file under `dir`, relative; none when it does not exist. */
async function filesUnder(dir: string): Promise<string[]> {
  try {
    const entries = await readdir(dir, { recursive: true, withFileTypes: true });
    return entries.filter((e) => !e.isDirectory()).map((e) => join(e.parentPath, e.name));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw e;
  }
}

describe("the local artifact store when it cannot write", () => {
  it("says the disk is full, leaves no blob and no temporary file, and works once there is room", async () => {
    const disk = tmpfs("1m");
    const root = join(disk, "artifacts");
    const store = new LocalBlobStore(root);
    const work = await mkdtemp(join(tmpdir(), "reprise-blobs-work-"));
    try {
      const big = randomBytes(2 * 1024 * 1024);
      const path = join(work, "big");
      await writeFile(path, big);

      const put = store.putFile(path);
      await expect(put).rejects.toThrow(BlobStoreError);
      await expect(put).rejects.toThrow(
        `in the artifact store ${store.location}: the disk is full: free space or point REPRISE_ARTIFACTS at a larger volume`,
      );
      const streamed = store.putStream(
        [big.subarray(0, 1024 * 1024), big.subarray(1024 * 1024)],
        sha256(big),
      );
      await expect(streamed).rejects.toThrow(/the disk is full/);
      await expect(store.putBytes(big)).rejects.toThrow(BlobStoreError);

      expect(await filesUnder(join(root, "blobs"))).toEqual([]);
      expect(await filesUnder(join(root, "tmp"))).toEqual([]);
      expect(await store.has(sha256(big))).toBe(false);

      const small = Buffer.from("fits");
      const ok = await store.putBytes(small);
      expect((await store.getBytes(ok.digest, 10)).equals(small)).toBe(true);
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  });

  it("says a read-only store is not writable and what to do", async () => {
    const ro = tmpfs("1m", true);
    const store = new LocalBlobStore(join(ro, "artifacts"));
    const put = store.putBytes(Buffer.from("x"));
    await expect(put).rejects.toThrow(BlobStoreError);
    await expect(put).rejects.toThrow(
      `${join(ro, "artifacts")} is not writable (EROFS): fix its permissions or point REPRISE_ARTIFACTS elsewhere`,
    );
    expect(await filesUnder(join(ro, "artifacts"))).toEqual([]);
  });

  it("names the root when it cannot be made (a file where a directory should be)", async () => {
    const work = await mkdtemp(join(tmpdir(), "reprise-blobs-work-"));
    try {
      await writeFile(join(work, "plain"), "not a directory");
      const root = join(work, "plain", "artifacts");
      const put = new LocalBlobStore(root).putBytes(Buffer.from("x"));
      await expect(put).rejects.toThrow(BlobStoreError);
      await expect(put).rejects.toThrow(`could not prepare ${root} in the artifact store`);
      await expect(put).rejects.toThrow(/ENOTDIR/);
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  });
});

describe("the local artifact store and pods", () => {
  it("cannot presign: a pod cannot reach it, and the refusal says to use S3", () => {
    const store: BlobStore = new LocalBlobStore(join(tmpdir(), "reprise-never-made"));
    expect(store.presignGet).toBeUndefined();
    expect(store.presignPut).toBeUndefined();
    const refuse = () => presigner(store, "task train on Kubernetes");
    expect(refuse).toThrow(BlobStoreError);
    expect(refuse).toThrow(
      `task train on Kubernetes needs an artifact store that pods can reach with presigned URLs, and ${store.location} is on the runner's own filesystem: set REPRISE_ARTIFACTS=s3://BUCKET/PREFIX`,
    );
  });
});

describe("the local artifact store's streams", () => {
  it("close the blob's file when a reader stops early", async () => {
    const root = await mkdtemp(join(tmpdir(), "reprise-local-streams-"));
    try {
      const store = new LocalBlobStore(root);
      const { digest } = await store.putBytes(randomBytes(3 * 1024 * 1024));
      const open = async () => (await readdir("/proc/self/fd")).length;
      const before = await open();
      for (let i = 0; i < 20; i++) {
        const stream = await store.getStream(digest);
        await new Promise<void>((resolve) => stream.once("data", () => resolve()));
        stream.destroy();
        await new Promise((resolve) => setImmediate(resolve));
      }
      // Closing is asynchronous: give the last ones a moment.
      for (let i = 0; i < 50 && (await open()) > before; i++)
        await new Promise((resolve) => setTimeout(resolve, 20));
      expect(await open()).toBeLessThanOrEqual(before);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});
