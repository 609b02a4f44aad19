/**
 * Hostile tarballs (issue 9): archives built here (ustar headers by hand, GNU longnames, pax
 * headers, gzip) mixing absolute paths, `..`, symlinks and hardlinks pointing out, chains of
 * symlinks that each look inside, a file written through a symlink, FIFOs and devices, huge
 * declared sizes, truncation, duplicates and long names. Extraction either succeeds with every
 * entry inside the checkout (symlinks resolved as the kernel resolves them), or fails with an
 * Error, within a timeout; and nothing is ever written outside the checkout's cache directory.
 */

import { createHash } from "node:crypto";
import {
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { realpath } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, sep } from "node:path";
import { gzipSync } from "node:zlib";
import fc from "fast-check";
import { afterAll, describe, expect, it } from "vitest";
import { type TreeFile, tarballCheckout } from "../../runner/sources/tarball.js";

const base = mkdtempSync(join(tmpdir(), "reprise-tarball-fuzz-"));
afterAll(() => rmSync(base, { recursive: true, force: true }));
const SHA = "a".repeat(40);
const TIMEOUT_MS = 20_000;

type Member =
  | { kind: "file"; name: string; body: string; declared?: number }
  | { kind: "dir"; name: string }
  | { kind: "symlink" | "hardlink"; name: string; target: string }
  | { kind: "fifo" | "chardev"; name: string };

const TYPE = { file: "0", hardlink: "1", symlink: "2", chardev: "3", dir: "5", fifo: "6" };

function header(name: string, type: string, size: number, link = ""): Buffer {
  const h = Buffer.alloc(512);
  h.write(name, 0, 100, "utf8");
  h.write("0000755\0", 100);
  h.write("0000000\0", 108);
  h.write("0000000\0", 116);
  if (size < 8 ** 11) h.write(`${size.toString(8).padStart(11, "0")}\0`, 124);
  else {
    // GNU base-256 for sizes that do not fit 11 octal digits.
    h[124] = 0x80;
    h.writeBigUInt64BE(BigInt(size), 128);
  }
  h.write("00000000000\0", 136);
  h.write("        ", 148);
  h.write(type, 156);
  h.write(link, 157, 100, "utf8");
  h.write("ustar\0", 257);
  h.write("00", 263);
  if (type === TYPE.chardev) {
    h.write("0000001\0", 329); // major 1, minor 3: /dev/null
    h.write("0000003\0", 337);
  }
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148);
  return h;
}

const pad = (b: Buffer) => Buffer.concat([b, Buffer.alloc((512 - (b.length % 512)) % 512)]);

/** One member, with a GNU longname or a pax header first when its names need (or ask for) it. */
function member(m: Member, style: "plain" | "gnu" | "pax"): Buffer {
  const link = m.kind === "symlink" || m.kind === "hardlink" ? m.target : "";
  const body = m.kind === "file" ? Buffer.from(m.body) : Buffer.alloc(0);
  const out: Buffer[] = [];
  const long = Buffer.byteLength(m.name) > 99 || Buffer.byteLength(link) > 99;
  if (style === "pax" || (long && style === "plain")) {
    const records = [`path=${m.name}\n`, ...(link ? [`linkpath=${link}\n`] : [])].map((r) => {
      let n = Buffer.byteLength(r) + 2;
      while (Buffer.byteLength(`${n} ${r}`) !== n) n = Buffer.byteLength(`${n} ${r}`);
      return `${n} ${r}`;
    });
    const pax = Buffer.from(records.join(""));
    out.push(header("PaxHeaders/x", "x", pax.length), pad(pax));
  } else if (style === "gnu" && long) {
    const n = Buffer.from(`${m.name}\0`);
    out.push(header("././@LongLink", "L", n.length), pad(n));
    if (link) {
      const l = Buffer.from(`${link}\0`);
      out.push(header("././@LongLink", "K", l.length), pad(l));
    }
  }
  const declared = m.kind === "file" ? (m.declared ?? body.length) : 0;
  out.push(header(m.name, TYPE[m.kind], declared, link));
  if (body.length > 0) out.push(pad(body));
  return Buffer.concat(out);
}

/** Everything under `dir` (not following symlinks). */
function walk(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    out.push(p);
    if (e.isDirectory()) out.push(...walk(p));
  }
  return out;
}

/**
 * Where a symlink leads, by the kernel's own resolution (realpath): of its target when it
 * exists, else of the longest part of the target path that does.
 */
async function leadsTo(link: string): Promise<string> {
  const parent = await realpath(join(link, ".."));
  const to = readlinkSync(link);
  const parts = (to.startsWith("/") ? to : `${parent}/${to}`).split("/");
  for (let k = parts.length; k > 0; k--) {
    try {
      return await realpath(parts.slice(0, k).join("/") || "/");
    } catch {}
  }
  return "/";
}

const seg = fc.constantFrom("a", "b", "c", "d", "sub", "..", ".", "", "x".repeat(120), "é\u0001");
const path = fc.array(seg, { minLength: 1, maxLength: 3 }).map((s) => s.join("/"));
/** Names: mostly under GitHub's top directory, some absolute, some without it. */
const name = fc.oneof(
  { weight: 6, arbitrary: path.map((p) => `top/${p}`) },
  { weight: 1, arbitrary: path.map((p) => `/top/${p}`) },
  { weight: 1, arbitrary: path },
  { weight: 1, arbitrary: fc.constantFrom("top/../../sentinel/evil", "../sentinel/evil") },
);

function members(sentinel: string): fc.Arbitrary<Member[]> {
  const linkTarget = fc.oneof(
    path,
    fc.constantFrom(
      ".",
      "..",
      "a/..",
      "b/..",
      "c/..",
      "a/../b",
      "b/../..",
      "c/sentinel",
      "d/sentinel",
      "../sentinel",
      "../../sentinel",
      "../../../sentinel",
      `${sentinel}`,
      `${sentinel}/evil`,
      `${sentinel}/../outside`,
      "../../outside",
      "top/a",
      "top/sub/a",
      "top/../../sentinel/evil",
    ),
  );
  const m: fc.Arbitrary<Member> = fc.oneof(
    {
      weight: 4,
      arbitrary: fc.record({
        kind: fc.constant("file" as const),
        name,
        body: fc.string({ maxLength: 20 }),
      }),
    },
    {
      weight: 1,
      arbitrary: fc.record({
        kind: fc.constant("file" as const),
        name,
        body: fc.string({ maxLength: 20 }),
        declared: fc.constantFrom(10_000, 8 ** 11 - 1, 2 ** 40),
      }),
    },
    { weight: 2, arbitrary: fc.record({ kind: fc.constant("dir" as const), name }) },
    {
      weight: 4,
      arbitrary: fc.record({ kind: fc.constant("symlink" as const), name, target: linkTarget }),
    },
    {
      weight: 2,
      arbitrary: fc.record({ kind: fc.constant("hardlink" as const), name, target: linkTarget }),
    },
    {
      weight: 1,
      arbitrary: fc.record({ kind: fc.constantFrom("fifo" as const, "chardev" as const), name }),
    },
  );
  return fc.array(m, { minLength: 1, maxLength: 12 });
}

/** A symlink out, then a file written through it; a chain of links each lexically inside. */
function classics(sentinel: string): Member[][] {
  return [
    [
      { kind: "symlink", name: "top/out", target: sentinel },
      { kind: "file", name: "top/out/evil", body: "boo" },
    ],
    [
      { kind: "symlink", name: "top/a", target: "." },
      { kind: "symlink", name: "top/b", target: "a/.." },
      { kind: "symlink", name: "top/c", target: "b/.." },
      { kind: "symlink", name: "top/d", target: "c/sentinel" },
      { kind: "file", name: "top/d/evil", body: "boo" },
    ],
    // Published, d would lead to the sentinel: a is the checkout, b its parent, c the case.
    [
      { kind: "symlink", name: "top/a", target: "." },
      { kind: "symlink", name: "top/b", target: "a/.." },
      { kind: "symlink", name: "top/c", target: "b/.." },
      { kind: "symlink", name: "top/d", target: "c/sentinel" },
    ],
    [
      { kind: "symlink", name: "top/a", target: "." },
      { kind: "symlink", name: "top/b", target: "a/../../sentinel" },
    ],
    [{ kind: "hardlink", name: "top/h", target: `${sentinel}/../outside` }],
    [{ kind: "hardlink", name: "top/h", target: "top/../../outside" }],
    [{ kind: "fifo", name: "top/pipe" }],
    [{ kind: "file", name: "top/huge", body: "x", declared: 2 ** 40 }],
    Array.from({ length: 2_000 }, (_, i) => ({
      kind: "file" as const,
      name: `top/many/${i % 500}/${"n".repeat(150)}`,
      body: `${i}`,
    })),
  ];
}

/**
 * The commit's tree the archive claims to be: its files and links with well-formed paths under
 * `top/` (the first of each path), as GitHub would list them. Everything else in the archive is
 * extra, and a file that lies about its size does not match.
 */
function treeOf(list: Member[]): TreeFile[] {
  const out = new Map<string, TreeFile>();
  for (const m of list) {
    if (m.kind !== "file" && m.kind !== "symlink") continue;
    if (!m.name.startsWith("top/")) continue;
    const path = m.name.slice(4);
    if (path.split("/").some((p) => p === "" || p === "." || p === "..")) continue;
    if (out.has(path)) continue;
    const bytes = Buffer.from(m.kind === "file" ? m.body : m.target);
    const sha = createHash("sha1").update(`blob ${bytes.length}\0`).update(bytes).digest("hex");
    out.set(path, { path, mode: m.kind === "file" ? "100644" : "120000", sha, size: bytes.length });
  }
  return [...out.values()];
}

let cases = 0;
const seen = { succeeded: 0, refused: 0 };
async function check(
  build: (sentinel: string) => Member[],
  style: "plain" | "gnu" | "pax",
  damage: { truncateAt: number | null; noEnd: boolean },
): Promise<void> {
  const dir = join(base, `case-${cases++}`);
  const cache = join(dir, "cache");
  const sentinel = join(dir, "sentinel");
  mkdirSync(cache, { recursive: true });
  mkdirSync(sentinel);
  const outside = join(dir, "outside");
  writeFileSync(outside, "untouched");
  const list = build(sentinel);
  let tar = Buffer.concat([
    ...list.map((m) => member(m, style)),
    Buffer.alloc(damage.noEnd ? 0 : 1024),
  ]);
  if (damage.truncateAt !== null) tar = tar.subarray(0, Math.floor(tar.length * damage.truncateAt));
  const checkout = tarballCheckout(cache, {
    tree: async () => treeOf(list),
    tarball: async () => [gzipSync(tar)],
  });
  let timer: NodeJS.Timeout | undefined;
  const result = await Promise.race([
    checkout("github.com/acme/fuzz", SHA).then(
      (d) => ({ ok: true as const, dir: d }),
      (e: unknown) => ({ ok: false as const, error: e }),
    ),
    new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`extraction hung: ${JSON.stringify(list)}`)),
        TIMEOUT_MS,
      );
    }),
  ]).finally(() => clearTimeout(timer));

  // Nothing outside the cache: the sentinel is empty, the case directory holds what it held,
  // and the fuzz root only its cases.
  expect(readdirSync(sentinel)).toEqual([]);
  expect(readdirSync(dir).sort()).toEqual(["cache", "outside", "sentinel"]);
  // Not linked to, not written through.
  expect(lstatSync(outside).nlink).toBe(1);
  expect(readFileSync(outside, "utf8")).toBe("untouched");
  expect(readdirSync(base).every((e) => e.startsWith("case-"))).toBe(true);
  seen[result.ok ? "succeeded" : "refused"]++;
  if (!result.ok) {
    expect(result.error).toBeInstanceOf(Error);
    expect((result.error as Error).message).toMatch(
      /cannot extract|cannot check out|outside the repository|not a file, directory or symlink/,
    );
    expect(readdirSync(cache)).toEqual([]);
    return;
  }
  const root = await realpath(result.dir);
  expect(root).toBe(await realpath(join(cache, SHA)));
  expect(readdirSync(cache).sort()).toEqual([`.size-${SHA}`, SHA]);
  for (const p of walk(root)) {
    const st = lstatSync(p);
    expect(st.isFile() || st.isDirectory() || st.isSymbolicLink(), p).toBe(true);
    if (st.isSymbolicLink()) {
      const to = await leadsTo(p);
      expect(
        to === root || to.startsWith(root + sep),
        `${p} -> ${readlinkSync(p)} leads to ${to}`,
      ).toBe(true);
    }
    expect((st.mode & 0o6000) === 0, `${p} is setuid/setgid`).toBe(true);
  }
}

const damage = fc.record({
  truncateAt: fc.option(fc.double({ min: 0, max: 1, noNaN: true }), { freq: 4 }),
  noEnd: fc.boolean(),
});

describe("hostile tarballs", () => {
  it("the classic attacks: refused or kept inside, nothing written outside", async () => {
    for (let i = 0; i < classics("").length; i++)
      for (const style of ["plain", "gnu", "pax"] as const)
        await check((s) => classics(s)[i] as Member[], style, { truncateAt: null, noEnd: false });
  }, 60_000);

  it("random archives: extraction succeeds inside the checkout or fails with an Error", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 0, max: 1_000_000 }),
        fc.constantFrom("plain" as const, "gnu" as const, "pax" as const),
        damage,
        async (seed, style, d) => {
          // The members depend on the case's sentinel path: drawn from a seeded generator.
          await check(
            (sentinel) => fc.sample(members(sentinel), { seed, numRuns: 1 })[0] as Member[],
            style,
            d,
          );
        },
      ),
      // Seeded: against a strict tree most random archives are refused; this seed also has successes.
      { numRuns: 150, seed: 20261202 },
    );
    // Both ends were exercised.
    expect(seen.succeeded).toBeGreaterThan(0);
    expect(seen.refused).toBeGreaterThan(10);
  }, 90_000);
});
