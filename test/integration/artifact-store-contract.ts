/**
 * The artifact store's contract (runner/artifacts/store.ts), run on every adapter: the local
 * filesystem always, S3 against a real S3-protocol server. Each test gets an empty store; the
 * adapter's harness can also damage or remove a blob behind the store's back, as a disk, an
 * operator or another writer would.
 */
import { execFileSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import {
  chmod,
  lstat,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  readlink,
  rm,
  stat,
  symlink,
  utimes,
  writeFile,
} from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ArtifactShapeError, materialise, storeArtifact } from "../../runner/artifacts/ingest.js";
import {
  BlobCorruptError,
  type BlobInfo,
  BlobMismatchError,
  BlobMissingError,
  type BlobStore,
  BlobStoreError,
  verifyBlob,
} from "../../runner/artifacts/store.js";

const MiB = 1024 * 1024;
/** Above S3's 5 MiB smallest part, so an upload there goes in several parts. */
const MULTIPART = 12 * MiB + 3;

export interface StoreUnderTest {
  store: BlobStore;
  /** Overwrites the stored bytes behind the store's back (same length, other bytes). */
  corrupt(digest: string): Promise<void>;
  /** Deletes the blob behind the store's back. */
  remove(digest: string): Promise<void>;
  close(): Promise<void>;
}

export function sha256(bytes: Uint8Array): string {
  return `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
}

/** The same bytes with the first one changed: what a flipped bit on a disk looks like. */
export function damaged(bytes: Uint8Array): Buffer {
  const out = Buffer.from(bytes.length > 0 ? bytes : [0]);
  out[0] = ((out[0] ?? 0) ^ 0xff) & 0xff;
  return out;
}

export async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

export async function listAll(store: BlobStore): Promise<BlobInfo[]> {
  const out: BlobInfo[] = [];
  for await (const info of store.list()) out.push(info);
  return out;
}

export function artifactStoreContract(
  name: string,
  makeStore: () => Promise<StoreUnderTest>,
): void {
  describe(`artifact store contract [${name}]`, () => {
    let t: StoreUnderTest;
    let store: BlobStore;
    let work: string;

    beforeEach(async () => {
      t = await makeStore();
      store = t.store;
      work = await mkdtemp(join(tmpdir(), "reprise-blobs-work-"));
    });
    afterEach(async () => {
      await t?.close();
      await rm(work, { recursive: true, force: true });
    });

    async function file(name: string, bytes: Uint8Array, mode = 0o644): Promise<string> {
      const path = join(work, name);
      await writeFile(path, bytes, { mode });
      await chmod(path, mode);
      return path;
    }

    async function stored(bytes: Uint8Array): Promise<string> {
      const { digest } = await store.putBytes(bytes);
      return digest;
    }

    /** What is left in `work` besides what the test made: no `.partial-` files. */
    async function leftovers(): Promise<string[]> {
      return (await readdir(work)).filter((n) => n.includes(".partial"));
    }

    describe("round trips", () => {
      it.each([
        ["an empty file", 0],
        ["one byte", 1],
        ["a few MiB", 3 * MiB + 17],
        ["a file over S3's 5 MiB part size", MULTIPART],
      ])(
        "stores and reads back %s",
        async (_what, size) => {
          const bytes = randomBytes(size);
          const path = await file("in", bytes);
          const before = Date.now();

          const put = await store.putFile(path);
          expect(put).toEqual({ digest: sha256(bytes), size });

          expect(await store.has(put.digest)).toBe(true);
          const info = await store.stat(put.digest);
          expect(info).toMatchObject({ digest: put.digest, size });
          expect(info?.modified).toBeInstanceOf(Date);
          // Stores keep whole seconds at worst (S3's Last-Modified).
          expect(Math.abs((info?.modified.getTime() ?? 0) - before)).toBeLessThan(60_000);

          const dest = join(work, "out");
          await store.getFile(put.digest, dest, 0o444);
          expect((await readFile(dest)).equals(bytes)).toBe(true);
          expect((await stat(dest)).mode & 0o777).toBe(0o444);

          expect((await readAll(await store.getStream(put.digest))).equals(bytes)).toBe(true);
          expect((await store.getBytes(put.digest, size)).equals(bytes)).toBe(true);
          expect(await leftovers()).toEqual([]);
          // The source is left as it was.
          expect((await readFile(path)).equals(bytes)).toBe(true);
        },
        60_000,
      );

      it("stores bytes and streams, in any chunking, under the digest they hash to", async () => {
        const bytes = randomBytes(70_000);
        expect(await store.putBytes(bytes)).toEqual({ digest: sha256(bytes), size: bytes.length });

        const other = randomBytes(MULTIPART);
        async function* chunks() {
          yield other.subarray(0, 10);
          yield new Uint8Array(0);
          yield other.subarray(10, 6 * MiB);
          yield other.subarray(6 * MiB);
        }
        const put = await store.putStream(chunks(), sha256(other), other.length);
        expect(put).toEqual({ digest: sha256(other), size: other.length });
        expect((await store.getBytes(put.digest, other.length)).equals(other)).toBe(true);

        const empty = await store.putStream([], sha256(new Uint8Array(0)), 0);
        expect(empty.size).toBe(0);
        expect((await store.getBytes(empty.digest, 0)).length).toBe(0);
      }, 60_000);

      it("gives a file the mode asked for", async () => {
        const digest = await stored(Buffer.from("#!/bin/sh\necho hi\n"));
        for (const mode of [0o444, 0o555, 0o644, 0o600]) {
          const dest = join(work, `m${mode.toString(8)}`);
          await store.getFile(digest, dest, mode);
          expect((await stat(dest)).mode & 0o777).toBe(mode);
          expect(await readFile(dest, "utf8")).toBe("#!/bin/sh\necho hi\n");
        }
      });

      it("refuses to write over an existing destination", async () => {
        const digest = await stored(Buffer.from("blob"));
        const dest = await file("taken", Buffer.from("mine"));
        for (const mode of [0o444, 0o644])
          await expect(store.getFile(digest, dest, mode)).rejects.toThrow(/EEXIST|exists/);
        expect(await readFile(dest, "utf8")).toBe("mine");
        expect(await leftovers()).toEqual([]);
      });

      it("keeps one blob for the same bytes stored again, from anywhere", async () => {
        const bytes = randomBytes(4096);
        const a = await store.putFile(await file("a", bytes));
        const b = await store.putFile(await file("b", bytes, 0o755));
        const c = await store.putBytes(bytes);
        const d = await store.putStream([bytes], a.digest, bytes.length);
        expect(new Set([a.digest, b.digest, c.digest, d.digest])).toEqual(new Set([sha256(bytes)]));
        expect([a.size, b.size, c.size, d.size]).toEqual([4096, 4096, 4096, 4096]);
        const all = await listAll(store);
        expect(all.map((i) => i.digest)).toEqual([sha256(bytes)]);
      });
    });

    describe("uploads that are not what they claim", () => {
      it.each([
        ["small", 1000],
        ["multipart-sized", MULTIPART],
      ])(
        "refuses %s bytes that hash to another digest, storing nothing",
        async (_what, size) => {
          const bytes = randomBytes(size);
          const claimed = sha256(randomBytes(8));
          const put = store.putStream([bytes], claimed);
          await expect(put).rejects.toThrow(BlobMismatchError);
          await expect(put).rejects.toThrow(`hash to ${sha256(bytes)}, not ${claimed}`);
          expect(await store.has(claimed)).toBe(false);
          expect(await store.has(sha256(bytes))).toBe(false);
          expect(await listAll(store)).toEqual([]);
          await expect(store.getBytes(claimed, size)).rejects.toThrow(BlobMissingError);
        },
        60_000,
      );

      it.each([
        ["small", 1000],
        ["multipart-sized", MULTIPART],
      ])(
        "refuses %s bytes over the size announced, even when the digest is right",
        async (_what, size) => {
          const bytes = randomBytes(size);
          const put = store.putStream(
            [bytes.subarray(0, 100), bytes.subarray(100)],
            sha256(bytes),
            size - 1,
          );
          await expect(put).rejects.toThrow(BlobMismatchError);
          await expect(put).rejects.toThrow(`more than the ${size - 1} bytes`);
          expect(await store.has(sha256(bytes))).toBe(false);
          expect(await listAll(store)).toEqual([]);
        },
        60_000,
      );

      it("refuses other bytes claiming a stored blob's digest, and keeps the blob", async () => {
        const bytes = randomBytes(5000);
        const digest = await stored(bytes);
        await expect(store.putStream([randomBytes(5000)], digest)).rejects.toThrow(
          BlobMismatchError,
        );
        await expect(store.putStream([bytes], digest, 4999)).rejects.toThrow(BlobMismatchError);
        expect((await store.getBytes(digest, 5000)).equals(bytes)).toBe(true);
      });

      it("refuses a digest that is not one before reading anything", async () => {
        let read = false;
        const source = (function* () {
          read = true;
          yield new Uint8Array(1);
        })();
        await expect(store.putStream(source, "sha256:ABC")).rejects.toThrow(TypeError);
        expect(read).toBe(false);
        await expect(store.has("md5:abc")).rejects.toThrow(TypeError);
      });
    });

    describe("missing blobs", () => {
      const never = sha256(Buffer.from("never stored"));

      it("are absent, and every read says BlobMissingError", async () => {
        expect(await store.has(never)).toBe(false);
        expect(await store.stat(never)).toBeNull();
        const dest = join(work, "out");
        const reads = [
          store.getFile(never, dest, 0o444),
          store.getStream(never),
          store.getBytes(never, 1000),
        ];
        for (const read of reads) {
          await expect(read).rejects.toThrow(BlobMissingError);
          await expect(read).rejects.not.toThrow(BlobCorruptError);
          await expect(read).rejects.toThrow(never);
          await expect(read).rejects.toThrow(store.location);
        }
        await expect(lstat(dest)).rejects.toThrow(/ENOENT/);
        expect(await leftovers()).toEqual([]);
        await store.delete(never);
      });

      it("include blobs removed behind the store's back", async () => {
        const digest = await stored(randomBytes(100));
        await t.remove(digest);
        expect(await store.has(digest)).toBe(false);
        expect(await store.stat(digest)).toBeNull();
        await expect(store.getFile(digest, join(work, "out"), 0o444)).rejects.toThrow(
          BlobMissingError,
        );
        await expect(store.getStream(digest)).rejects.toThrow(BlobMissingError);
        await expect(store.getBytes(digest, 100)).rejects.toThrow(BlobMissingError);
        expect(await listAll(store)).toEqual([]);
      });

      it("include deleted ones; deleting twice is fine", async () => {
        const keep = await stored(Buffer.from("keep"));
        const drop = await stored(Buffer.from("drop"));
        await store.delete(drop);
        await store.delete(drop);
        expect(await store.has(drop)).toBe(false);
        await expect(store.getBytes(drop, 10)).rejects.toThrow(BlobMissingError);
        expect(await store.has(keep)).toBe(true);
        expect((await listAll(store)).map((i) => i.digest)).toEqual([keep]);
      });
    });

    describe("corrupt blobs", () => {
      it.each([
        ["small", 2048],
        ["multipart-sized", MULTIPART],
      ])(
        "getFile refuses a %s one, removes it and leaves no file",
        async (_what, size) => {
          const digest = await stored(randomBytes(size));
          await t.corrupt(digest);
          const dest = join(work, "out");
          const read = store.getFile(digest, dest, 0o444);
          await expect(read).rejects.toThrow(BlobCorruptError);
          await expect(read).rejects.toThrow(/corrupt and has been removed/);
          await expect(lstat(dest)).rejects.toThrow(/ENOENT/);
          expect(await leftovers()).toEqual([]);
          // Self-repair relies on this: the next look says missing, so the blob is made again.
          expect(await store.has(digest)).toBe(false);
          await expect(store.getFile(digest, dest, 0o444)).rejects.toThrow(BlobMissingError);
          expect(await listAll(store)).toEqual([]);
        },
        60_000,
      );

      it("getStream fails at the end with BlobCorruptError and the blob is gone", async () => {
        const digest = await stored(randomBytes(300_000));
        await t.corrupt(digest);
        const stream = await store.getStream(digest);
        const err = await readAll(stream).then(
          () => null,
          (e: unknown) => e,
        );
        expect(err).toBeInstanceOf(BlobCorruptError);
        expect(err).toBeInstanceOf(BlobMissingError);
        expect(await store.has(digest)).toBe(false);
      });

      it("getBytes refuses it and the blob is gone", async () => {
        const digest = await stored(Buffer.from('{"entries":[]}'));
        await t.corrupt(digest);
        await expect(store.getBytes(digest, 1000)).rejects.toThrow(BlobCorruptError);
        expect(await store.has(digest)).toBe(false);
        expect(await store.stat(digest)).toBeNull();
      });

      it("can be stored again afterwards", async () => {
        const bytes = randomBytes(1000);
        const digest = await stored(bytes);
        await t.corrupt(digest);
        await expect(store.getBytes(digest, 1000)).rejects.toThrow(BlobCorruptError);
        await store.putFile(await file("again", bytes));
        expect((await store.getBytes(digest, 1000)).equals(bytes)).toBe(true);
      });
    });

    describe("verifyBlob: the runner's check of bytes someone else uploaded", () => {
      it("confirms a blob that is there, of the announced size, hashing right", async () => {
        const bytes = randomBytes(MULTIPART);
        const digest = await stored(bytes);
        expect(await verifyBlob(store, digest, bytes.length)).toEqual({
          ok: true,
          size: bytes.length,
        });
        expect(await store.has(digest)).toBe(true);
      }, 60_000);

      it("reports a blob never stored, or removed, as missing", async () => {
        const digest = await stored(Buffer.from("gone"));
        await t.remove(digest);
        expect(await verifyBlob(store, digest, 4)).toEqual({ ok: false, problem: "missing" });
        expect(await verifyBlob(store, sha256(Buffer.from("never")), 5)).toEqual({
          ok: false,
          problem: "missing",
        });
      });

      it("reports wrong bytes as corrupt, with what they hash to, and removes them", async () => {
        const bytes = randomBytes(5000);
        const digest = await stored(bytes);
        await t.corrupt(digest);
        expect(await verifyBlob(store, digest, bytes.length)).toEqual({
          ok: false,
          problem: "corrupt",
          actual: sha256(damaged(bytes)),
        });
        expect(await store.has(digest)).toBe(false);
      });

      it("reports right bytes of another size than announced, and keeps them", async () => {
        const bytes = randomBytes(100);
        const digest = await stored(bytes);
        expect(await verifyBlob(store, digest, 99)).toEqual({
          ok: false,
          problem: "size",
          size: 100,
        });
        expect(await store.has(digest)).toBe(true);
      });
    });

    it("getBytes refuses a blob over maxBytes, which stays stored", async () => {
      const digest = await stored(randomBytes(1001));
      await expect(store.getBytes(digest, 1000)).rejects.toThrow(BlobStoreError);
      await expect(store.getBytes(digest, 1000)).rejects.toThrow(/1001 bytes, over the 1000/);
      expect(await store.has(digest)).toBe(true);
      expect((await store.getBytes(digest, 1001)).length).toBe(1001);
    });

    it("lists what was stored, with sizes and times, and nothing when empty", async () => {
      expect(await listAll(store)).toEqual([]);
      const blobs = [Buffer.from(""), Buffer.from("x"), randomBytes(3000)];
      for (const b of blobs) await store.putBytes(b);
      const all = await listAll(store);
      expect(all.map((i) => ({ digest: i.digest, size: i.size })).sort(byDigest)).toEqual(
        blobs.map((b) => ({ digest: sha256(b), size: b.length })).sort(byDigest),
      );
      for (const i of all) expect(i.modified).toBeInstanceOf(Date);
      await store.delete(sha256(Buffer.from("x")));
      expect(await listAll(store)).toHaveLength(2);
    });

    describe("directories through storeArtifact and materialise", () => {
      async function tree(root: string): Promise<void> {
        await mkdir(join(root, "sub", "deeper"), { recursive: true });
        await mkdir(join(root, "bin"));
        await mkdir(join(root, "empty"));
        await writeFile(join(root, "a.txt"), "alpha\n");
        await writeFile(join(root, "sub", "b.bin"), randomBytes(MiB + 5));
        await writeFile(join(root, "sub", "deeper", "c"), "");
        await writeFile(join(root, "bin", "run.sh"), "#!/bin/sh\necho run\n", { mode: 0o755 });
        await chmod(join(root, "bin", "run.sh"), 0o755);
        await symlink("sub/b.bin", join(root, "link"));
        await symlink("../a.txt", join(root, "sub", "up"));
        await symlink("deeper", join(root, "sub", "dirlink"));
      }

      /** Every entry under `root`: path, kind, and bytes, executable bit or target. */
      async function snapshot(root: string, rel = ""): Promise<Record<string, string>> {
        const out: Record<string, string> = {};
        for (const name of (await readdir(join(root, rel))).sort()) {
          const path = rel ? `${rel}/${name}` : name;
          const s = await lstat(join(root, path));
          if (s.isSymbolicLink()) out[path] = `link -> ${await readlink(join(root, path))}`;
          else if (s.isDirectory()) Object.assign(out, await snapshot(root, path));
          else
            out[path] =
              `${s.mode & 0o111 ? "executable" : "file"} ${sha256(await readFile(join(root, path)))}`;
        }
        return out;
      }

      it("round-trips a tree to an identical one, with the same digest", async () => {
        const src = join(work, "src");
        await mkdir(src);
        await tree(src);
        const ref = await storeArtifact(store, src, "directory", "outputs.model");
        expect(ref).toMatchObject({ type: "directory", files: 4, size: 6 + MiB + 5 + 0 + 19 });

        const dest = join(work, "dest");
        await materialise(store, ref, dest);
        expect(await snapshot(dest)).toEqual(await snapshot(src));
        // Directories are not entries (as in git): an empty one is not kept.
        await expect(lstat(join(dest, "empty"))).rejects.toThrow(/ENOENT/);
        expect((await stat(join(dest, "bin", "run.sh"))).mode & 0o777).toBe(0o555);
        expect((await stat(join(dest, "a.txt"))).mode & 0o777).toBe(0o444);
        const linked = await readFile(join(dest, "link"));
        expect(linked.equals(await readFile(join(src, "sub", "b.bin")))).toBe(true);

        // Timestamps are not content.
        const past = new Date("2001-02-03T04:05:06Z");
        for (const p of ["a.txt", "sub/b.bin", "bin/run.sh"])
          await utimes(join(dest, p), past, past);
        const again = await storeArtifact(store, dest, "directory", "outputs.model");
        expect(again).toEqual(ref);
        const inferred = await storeArtifact(store, dest, null, "outputs.model");
        expect(inferred).toEqual(ref);
      }, 60_000);

      it("round-trips a file artifact, read-only", async () => {
        const bytes = randomBytes(10_000);
        const path = await file("model.pt", bytes, 0o755);
        const ref = await storeArtifact(store, path, "file", "outputs.model");
        expect(ref).toEqual({ artifact: sha256(bytes), type: "file", size: 10_000 });
        const dest = join(work, "got.pt");
        await materialise(store, ref, dest);
        expect((await readFile(dest)).equals(bytes)).toBe(true);
        expect((await stat(dest)).mode & 0o777).toBe(0o444);
      });

      it("says a directory is missing when one of its files is", async () => {
        const src = join(work, "src");
        await mkdir(src);
        await writeFile(join(src, "only"), "bytes");
        const ref = await storeArtifact(store, src, "directory", "out");
        await t.remove(sha256(Buffer.from("bytes")));
        await expect(materialise(store, ref, join(work, "dest"))).rejects.toThrow(BlobMissingError);
      });

      it.each([
        ["a parent-relative target", { esc: "../x" }],
        ["an absolute target", { abs: "/etc/passwd" }],
        ["a chain through a link to itself", { a: ".", b: "a/.." }],
      ])("refuses a link that escapes through %s", async (_what, links: Record<string, string>) => {
        const src = join(work, "src");
        await mkdir(src);
        await writeFile(join(src, "f"), "x");
        for (const [name, target] of Object.entries(links)) await symlink(target, join(src, name));
        const put = storeArtifact(store, src, "directory", "outputs.out");
        await expect(put).rejects.toThrow(ArtifactShapeError);
        await expect(put).rejects.toThrow(
          /^outputs\.out: link .*(leaves the directory|absolute path)/,
        );
      });

      it("refuses a FIFO inside, without opening it", async () => {
        const src = join(work, "src");
        await mkdir(join(src, "d"), { recursive: true });
        await writeFile(join(src, "f"), "x");
        execFileSync("mkfifo", [join(src, "d", "pipe")]);
        const put = storeArtifact(store, src, "directory", "outputs.out");
        await expect(put).rejects.toThrow(ArtifactShapeError);
        await expect(put).rejects.toThrow('"d/pipe" is a FIFO');
      });

      it("refuses what was not declared, naming both", async () => {
        const dir = join(work, "dir");
        await mkdir(dir);
        await writeFile(join(dir, "f"), "x");
        const asFile = storeArtifact(store, dir, "file", "outputs.model");
        await expect(asFile).rejects.toThrow(ArtifactShapeError);
        await expect(asFile).rejects.toThrow(
          `outputs.model: declared a file, found a directory at ${dir}`,
        );

        const path = await file("plain", Buffer.from("x"));
        await expect(storeArtifact(store, path, "directory", "outputs.data")).rejects.toThrow(
          `outputs.data: declared a directory, found a file at ${path}`,
        );
        await symlink(path, join(work, "alias"));
        await expect(
          storeArtifact(store, join(work, "alias"), "file", "outputs.x"),
        ).rejects.toThrow("declared a file, found a symlink");
        await expect(
          storeArtifact(store, join(work, "nothing"), "file", "outputs.y"),
        ).rejects.toThrow(ArtifactShapeError);
        expect(await listAll(store)).toEqual([]);
      });
    });
  });
}

function byDigest(a: { digest: string }, b: { digest: string }): number {
  return a.digest < b.digest ? -1 : a.digest > b.digest ? 1 : 0;
}
