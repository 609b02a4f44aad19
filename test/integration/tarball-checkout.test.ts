/**
 * The GitHub tarball checkout extracts safely: GitHub's top-level directory stripped, members
 * that climb out with `..` refused by tar, symlinks that point outside the checkout refused,
 * and nothing published when extraction fails. One fetch per SHA.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { afterAll, describe, expect, it } from "vitest";
import { tarballCheckout } from "../../runner/github/tarball-checkout.js";

const root = mkdtempSync(join(tmpdir(), "reprise-tarball-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** A ustar archive of the given members (file content or symlink target). */
function tar(members: Array<{ name: string; body?: string; link?: string }>): Uint8Array {
  const blocks: Buffer[] = [];
  for (const m of members) {
    const body = Buffer.from(m.body ?? "");
    const h = Buffer.alloc(512);
    h.write(m.name, 0, 100);
    h.write("0000644\0", 100);
    h.write("0000000\0", 108);
    h.write("0000000\0", 116);
    h.write(`${(m.link ? 0 : body.length).toString(8).padStart(11, "0")}\0`, 124);
    h.write("00000000000\0", 136);
    h.write("        ", 148);
    h.write(m.link ? "2" : "0", 156);
    if (m.link) h.write(m.link, 157, 100);
    h.write("ustar\0", 257);
    h.write("00", 263);
    let sum = 0;
    for (const b of h) sum += b;
    h.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148);
    blocks.push(h);
    if (!m.link && body.length > 0)
      blocks.push(Buffer.concat([body, Buffer.alloc((512 - (body.length % 512)) % 512)]));
  }
  blocks.push(Buffer.alloc(1024));
  return gzipSync(Buffer.concat(blocks));
}

const SHA = (c: string) => c.repeat(40);

describe("the GitHub tarball checkout", () => {
  it("extracts the tree under GitHub's wrapping directory, once per SHA", async () => {
    let fetched = 0;
    const checkout = tarballCheckout(join(root, "ok"), async () => {
      fetched++;
      return tar([
        { name: "acme-repo-abc1234/reprise.yaml", body: "version: 1\n" },
        { name: "acme-repo-abc1234/src/a.txt", body: "a\n" },
        { name: "acme-repo-abc1234/src/link", link: "a.txt" },
      ]);
    });
    const [dir, same] = await Promise.all([
      checkout("github.com/acme/repo", SHA("a")),
      checkout("github.com/acme/repo", SHA("a")),
    ]);
    expect(same).toBe(dir);
    expect(readFileSync(join(dir, "src/a.txt"), "utf8")).toBe("a\n");
    expect(readFileSync(join(dir, "src/link"), "utf8")).toBe("a\n");
    expect(await checkout("github.com/acme/repo", SHA("a"))).toBe(dir);
    expect(fetched).toBe(1);
  });

  it("refuses symlinks out of the repository and members that climb out, publishing nothing", async () => {
    const escaping = tarballCheckout(join(root, "link"), async () =>
      tar([{ name: "x-y-1/etc", link: "../../../../etc" }]),
    );
    await expect(escaping("github.com/acme/repo", SHA("b"))).rejects.toThrow(
      /symlink etc -> ..\/..\/..\/..\/etc that points outside the repository/,
    );
    const absolute = tarballCheckout(join(root, "abs"), async () =>
      tar([{ name: "x-y-1/passwd", link: "/etc/passwd" }]),
    );
    await expect(absolute("github.com/acme/repo", SHA("c"))).rejects.toThrow(/points outside/);
    const climbing = tarballCheckout(join(root, "dots"), async () =>
      tar([{ name: "x-y-1/../../evil.txt", body: "boo" }]),
    );
    await expect(climbing("github.com/acme/repo", SHA("d"))).rejects.toThrow(/cannot extract/);
    expect(existsSync(join(root, "evil.txt"))).toBe(false);
    expect(existsSync(join(root, "..", "evil.txt"))).toBe(false);
    expect(readdirSync(join(root, "dots"))).toEqual([]);
    expect(readdirSync(join(root, "link"))).toEqual([]);
    expect(readdirSync(join(root, "abs"))).toEqual([]);
  });

  it("refuses a SHA that is not one", async () => {
    const checkout = tarballCheckout(join(root, "bad"), async () => tar([]));
    await expect(checkout("github.com/acme/repo", "main")).rejects.toThrow(
      /not a full lowercase commit SHA/,
    );
  });
});
