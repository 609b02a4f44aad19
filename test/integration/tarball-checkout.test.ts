/**
 * What only the GitHub tarball checkout meets, on hand-made archives (what every checkout meets,
 * the GitHub one included, is checkout-contract.ts's): members that climb out with `..`, members
 * that are no file, directory or link (a FIFO, a device, a hard link), content that does not hash
 * to the tree, extra and missing members, a gzip bomb; nothing published when extraction fails.
 */

import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { pino } from "pino";
import { afterAll, describe, expect, it } from "vitest";
import { GitHubClient } from "../../app/github-client.js";
import { appTarballCheckout } from "../../app/tarball-source.js";
import { CheckoutRefused } from "../../runner/sources/materialise.js";
import {
  type TarballSource,
  type TreeFile,
  tarballCheckout,
} from "../../runner/sources/tarball.js";
import { tempRepo } from "../fakes/git-repo.js";
import { appPrivateKey, FakeGitHub } from "../fakes/github/index.js";

const root = mkdtempSync(join(tmpdir(), "reprise-tarball-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** Tar members: file content or link target, and the type flag ("0" file, "2" symlink, ...). */
type Members = Array<{ name: string; body?: string; link?: string; type?: string }>;

/** A ustar archive of the given members (file content or symlink target). */
function tar(members: Members): Uint8Array {
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
    h.write(m.type ?? (m.link ? "2" : "0"), 156);
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

const blob = (bytes: string) => {
  const b = Buffer.from(bytes);
  return createHash("sha1").update(`blob ${b.length}\0`).update(b).digest("hex");
};

/** The commit's tree as GitHub would list it for these members (below the top directory). */
function treeOf(members: Members): TreeFile[] {
  return members
    .filter((m) => /^[^/]+\/(?!.*(?:^|\/)\.\.?(?:\/|$)).+/.test(m.name))
    .map((m) => ({
      path: m.name.slice(m.name.indexOf("/") + 1),
      mode: m.link ? "120000" : "100644",
      sha: blob(m.link ?? m.body ?? ""),
      size: Buffer.byteLength(m.link ?? m.body ?? ""),
    }));
}

/** Serves `members` as the tarball, and `tree` (by default theirs) as the commit's tree. */
function source(members: Members, tree = treeOf(members), count?: { n: number }): TarballSource {
  return {
    tree: async () => tree,
    tarball: async () => {
      if (count) count.n++;
      return [tar(members)];
    },
  };
}

describe("the GitHub tarball checkout", () => {
  it("refuses members that climb out, publishing nothing", async () => {
    const climbing = tarballCheckout(
      join(root, "dots"),
      source([{ name: "x-y-1/../../evil.txt", body: "boo" }]),
    );
    await expect(climbing("github.com/acme/repo", SHA("d"))).rejects.toThrow(/cannot extract/);
    expect(existsSync(join(root, "evil.txt"))).toBe(false);
    expect(existsSync(join(root, "..", "evil.txt"))).toBe(false);
    expect(readdirSync(join(root, "dots"))).toEqual([]);
  });

  it("refuses a FIFO, a device or a hard link member, though the tree names the path", async () => {
    for (const [type, kind] of [
      ["6", "FIFO"],
      ["3", "CharacterDevice"],
      ["1", "Link"],
    ] as const) {
      const members = [
        { name: "x-y-1/reprise.yaml", body: "version: 1\n" },
        { name: "x-y-1/odd", body: "" },
      ];
      const checkout = tarballCheckout(
        join(root, `odd-${type}`),
        source(
          members.map((m) =>
            m.name.endsWith("odd") ? { ...m, type, ...(type === "1" ? { link: m.name } : {}) } : m,
          ),
          treeOf(members),
        ),
      );
      await expect(checkout("github.com/acme/repo", SHA("9"))).rejects.toThrow(
        new RegExp(`"odd" \\(a ${kind}\\), which is not a file, directory or symlink`),
      );
      expect(readdirSync(join(root, `odd-${type}`))).toEqual([]);
    }
  });

  it("refuses content that does not hash to the tree's blob, and an extra or a missing file", async () => {
    const members = [
      { name: "x-y-1/reprise.yaml", body: "version: 1\n" },
      { name: "x-y-1/run.sh", body: "echo good\n" },
    ];
    const tree = treeOf(members);
    const tampered = members.map((m) =>
      m.name.endsWith("run.sh") ? { ...m, body: "echo evil\n" } : m,
    );
    const corrupted = tarballCheckout(join(root, "mismatch"), source(tampered, tree));
    const failing = corrupted("github.com/acme/repo", SHA("f"));
    await expect(failing).rejects.toThrow(
      /the content of "run.sh" hashes to [0-9a-f]{40}, not its blob/,
    );
    // A corrupted download is a system failure (retried), not a refusal of the commit.
    await expect(failing).rejects.not.toBeInstanceOf(CheckoutRefused);
    expect(readdirSync(join(root, "mismatch"))).toEqual([]);

    const extra = tarballCheckout(
      join(root, "extra"),
      source([...members, { name: "x-y-1/planted.sh", body: "boo" }], tree),
    );
    await expect(extra("github.com/acme/repo", SHA("f"))).rejects.toThrow(
      /"planted.sh", which the commit's tree does not/,
    );
    const missing = tarballCheckout(join(root, "missing"), source(members.slice(0, 1), tree));
    await expect(missing("github.com/acme/repo", SHA("f"))).rejects.toThrow(
      /lacks 1 of the commit's files \("run.sh"\)/,
    );
    expect(readdirSync(join(root, "extra"))).toEqual([]);
    expect(readdirSync(join(root, "missing"))).toEqual([]);
  });

  it("refuses a SHA that is not one", async () => {
    const checkout = tarballCheckout(join(root, "bad"), source([]));
    await expect(checkout("github.com/acme/repo", "main")).rejects.toThrow(
      /not a full lowercase commit SHA/,
    );
  });
});

describe("the App's tarball checkout against the fake GitHub", () => {
  it("checks out a real commit, refuses a gzip bomb after reading a bounded prefix, and a tree over the cap before downloading", async () => {
    const fake = await FakeGitHub.start();
    const repo = tempRepo("reprise-bomb-");
    try {
      repo.write({
        "reprise.yaml": "version: 1\n",
        "src/a.txt": "a\n",
        "big.bin": "x".repeat(3 << 20),
      });
      const sha = repo.commit("one");
      fake.addRepo({ fullName: "acme/bomb", dir: repo.dir, installationId: 7 });
      const client = new GitHubClient(
        { appId: 1, privateKey: appPrivateKey(), webhookSecret: "s", baseUrl: fake.baseUrl },
        fake.host,
        pino({ level: "silent" }),
      );
      const key = `${fake.host}/acme/bomb`;
      const good = appTarballCheckout(client, join(root, "app"), { maxBytes: 8 << 20 });
      const dir = await good(key, sha);
      expect(readFileSync(join(dir, "src/a.txt"), "utf8")).toBe("a\n");

      // The bomb: the commit's real tarball, then zeros (8 MiB gzip members, repeated): 64 GiB.
      const archive = execFileSync("git", [
        "-C",
        repo.dir,
        "archive",
        "--format=tar.gz",
        "--prefix=acme-bomb-x/",
        sha,
      ]);
      const zeros = gzipSync(Buffer.alloc(8 << 20));
      const members = 8192;
      fake.tarballs.set(sha, async function* () {
        yield archive;
        for (let i = 0; i < members; i++) yield zeros;
      });
      const bombed = appTarballCheckout(client, join(root, "bomb"), { maxBytes: 8 << 20 });
      const refused = bombed(key, sha);
      await expect(refused).rejects.toBeInstanceOf(CheckoutRefused);
      await expect(refused).rejects.toThrow(
        /unpacks to more than \d+ bytes, more than its tree accounts for/,
      );
      // Streamed and cut off: far less than the bomb was sent, nothing kept.
      const total = archive.length + members * zeros.length;
      expect(fake.tarballBytesSent).toBeLessThan(total / 4);
      expect(readdirSync(join(root, "bomb"))).toEqual([]);

      // Over REPRISE_CHECKOUT_MAX_BYTES by the tree's own sizes: refused before any download.
      fake.resetCalls();
      const small = appTarballCheckout(client, join(root, "small"), { maxBytes: 1 << 20 });
      await expect(small(key, sha)).rejects.toThrow(/over REPRISE_CHECKOUT_MAX_BYTES \(1048576\)/);
      expect(fake.count("GET", /\/tarball\//)).toBe(0);
    } finally {
      await fake.close();
      repo.remove();
    }
  }, 60_000);
});
