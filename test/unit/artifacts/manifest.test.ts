/**
 * Directory manifests (core/artifacts/manifest.ts): equal content gives an equal digest whatever
 * the order entries are found in, and entries that would escape the directory are refused,
 * links within links resolved as the kernel resolves them.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  buildManifest,
  type ManifestEntry,
  manifestBytes,
  manifestDigest,
  manifestTotals,
  parseManifest,
} from "../../../core/artifacts/manifest.js";

const D1 = `sha256:${"1".repeat(64)}`;
const D2 = `sha256:${"2".repeat(64)}`;
const file = (path: string, digest = D1, size = 3): ManifestEntry => ({
  path,
  kind: "file",
  digest,
  size,
});
const link = (path: string, target: string): ManifestEntry => ({ path, kind: "symlink", target });

function ok(entries: ManifestEntry[]) {
  const r = buildManifest(entries);
  if (!r.ok) throw new Error(r.reason);
  return r.manifest;
}

function refused(entries: ManifestEntry[]): string {
  const r = buildManifest(entries);
  if (r.ok) throw new Error(`accepted ${JSON.stringify(entries)}`);
  return r.reason;
}

describe("directory manifests", () => {
  it("give the same digest for the same entries in any order", () => {
    const entries = [file("b.csv"), file("a/x.bin", D2, 10), link("latest", "b.csv")];
    fc.assert(
      fc.property(fc.shuffledSubarray(entries, { minLength: 3, maxLength: 3 }), (shuffled) => {
        expect(manifestDigest(ok(shuffled))).toBe(manifestDigest(ok(entries)));
      }),
    );
  });

  it("change digest when a path, a kind, a file's bytes or a link's target changes", () => {
    const base = manifestDigest(ok([file("a"), link("l", "a")]));
    expect(manifestDigest(ok([file("b"), link("l", "b")]))).not.toBe(base);
    const executable: ManifestEntry = { path: "a", kind: "executable", digest: D1, size: 3 };
    expect(manifestDigest(ok([executable, link("l", "a")]))).not.toBe(base);
    expect(manifestDigest(ok([file("a", D2), link("l", "a")]))).not.toBe(base);
    expect(manifestDigest(ok([file("a"), link("l", "./a")]))).not.toBe(base);
  });

  it("sort paths by their UTF-8 bytes, the same in every locale", () => {
    const m = ok([file("é"), file("z"), file("Z"), file("a/b")]);
    expect(m.entries.map((e) => e.path)).toEqual(["Z", "a/b", "z", "é"]);
  });

  it("count files and bytes, not links", () => {
    expect(manifestTotals(ok([file("a", D1, 3), file("b", D2, 4), link("c", "a")]))).toEqual({
      size: 7,
      files: 2,
    });
  });

  it("read back from their bytes to the same manifest", () => {
    const m = ok([file("x/y"), link("z", "x/y")]);
    const back = parseManifest(manifestBytes(m));
    expect(back.ok && manifestDigest(back.manifest)).toBe(manifestDigest(m));
  });

  it.each([
    ["..", [file("../x")]],
    ["absolute paths", [file("/etc/passwd")]],
    ["empty segments", [file("a//b")]],
    ["dot segments", [file("a/./b")]],
    ["NUL bytes", [file("a\0b")]],
    ["a lone surrogate in a path", [file("a\ud800")]],
    ["a lone surrogate in a link's target", [link("l", "\udc00x")]],
    ["duplicates", [file("a"), file("a", D2)]],
    ["entries under a file", [file("a"), file("a/b")]],
    ["entries under a link", [link("a", "."), file("a/b")]],
    ["a malformed digest", [{ path: "a", kind: "file", digest: "sha256:xyz", size: 1 }]],
  ] as Array<[string, ManifestEntry[]]>)("refuse %s", (_what, entries) => {
    expect(refused(entries)).toMatch(/\S/);
  });

  it("keep links that stay inside, dangling ones included", () => {
    expect(() =>
      ok([file("data/a.csv"), link("latest", "data/a.csv"), link("data/up", "../data/a.csv")]),
    ).not.toThrow();
    expect(() => ok([link("nowhere", "missing/file")])).not.toThrow();
  });

  it("refuse links that leave the directory, resolving links within links", () => {
    expect(refused([link("x", "../outside")])).toMatch(/leaves the directory/);
    expect(refused([link("x", "/etc/passwd")])).toMatch(/absolute/);
    expect(refused([link("x", "a/../../y")])).toMatch(/leaves the directory/);
    // `a/..` looks like `.`, but `a` is itself a link to `.`: the kernel goes one level up.
    expect(refused([link("a", "."), link("b", "a/..")])).toMatch(/leaves the directory/);
    expect(refused([link("d/a", ".."), link("b", "d/a/..")])).toMatch(/leaves the directory/);
    expect(refused([link("a", "b"), link("b", "a")])).toMatch(/more than 40 links/);
  });

  it("never throw on arbitrary entries: accept or refuse with a reason", () => {
    const entry = fc.oneof(
      fc.record({
        path: fc.string({ maxLength: 12 }),
        kind: fc.constantFrom("file" as const, "executable" as const),
        digest: fc.constantFrom(D1, D2, "x"),
        size: fc.integer({ min: -1, max: 10 }),
      }),
      fc.record({
        path: fc.string({ maxLength: 12 }),
        kind: fc.constant("symlink" as const),
        target: fc.stringMatching(/^[a-z./]{0,10}$/),
      }),
    );
    fc.assert(
      fc.property(fc.array(entry, { maxLength: 12 }), (entries) => {
        const r = buildManifest(entries as ManifestEntry[]);
        expect(r.ok || typeof r.reason === "string").toBe(true);
      }),
    );
  });
});
