/**
 * The repository reader: what the App reads of a commit at a SHA through its installation. For
 * registration, the recursive tree listing and the reprise.yaml blob, two read calls whatever
 * the number of tasks: git already hashed every file, so no other content is read. A tree GitHub
 * truncates (over 100,000 entries or 7 MB) falls back to walking only the directories the tasks'
 * `sources` globs start from. For a checkout (tarball-source.ts), the whole tree with each file's
 * size, to check GitHub's tarball against.
 */
import type { RestEndpointMethodTypes } from "@octokit/rest";
import picomatch from "picomatch";
import type { TreeEntry } from "../core/hash/sources.js";
import { SPEC_FILE } from "../core/spec/diagnostics.js";
import type { BuildResult } from "../core/version/build-version.js";
import type { TreeFile } from "../runner/sources/tarball.js";
import { specWorkers } from "../runner/spec-worker.js";
import type { Octokit, RepoName } from "./github-client.js";

/** An entry of GitHub's tree listing, as @octokit/rest types it. */
type GitTreeItem = RestEndpointMethodTypes["git"]["getTree"]["response"]["data"]["tree"][number];

/** The version content of a commit, or null when it has no reprise.yaml at its root. */
export async function readCommit(
  octokit: Octokit,
  name: RepoName,
  sha: string,
): Promise<BuildResult | null> {
  const { data: tree } = await octokit.rest.git.getTree({ ...name, tree_sha: sha, recursive: "1" });
  if (tree.truncated) {
    const { data: rootTree } = await octokit.rest.git.getTree({ ...name, tree_sha: sha });
    const root = rootTree.tree;
    const spec = root.find((e) => e.path === SPEC_FILE && e.type === "blob");
    if (!spec?.sha) return null;
    const text = await blob(octokit, name, spec.sha);
    // Parsed on a spec worker, as every build is (runner/spec-worker.ts). An invalid spec is
    // reported from its own text; the tree only matters for a valid one.
    const globs = await specWorkers().sourceGlobs(text);
    if (globs === null) return specWorkers().build(text, []);
    return specWorkers().build(text, await walk(octokit, name, root, globBases(globs)));
  }
  const entries = toEntries(tree.tree, "");
  const specEntry = entries.find((e) => e.path === SPEC_FILE && e.mode !== "160000");
  if (!specEntry) return null;
  return specWorkers().build(await blob(octokit, name, specEntry.sha), entries);
}

async function blob(octokit: Octokit, name: RepoName, sha: string): Promise<Uint8Array> {
  const { data } = await octokit.rest.git.getBlob({ ...name, file_sha: sha });
  return new Uint8Array(Buffer.from(data.content, (data.encoding as BufferEncoding) || "base64"));
}

/** Files and submodules (what `git ls-tree -r` lists), paths prefixed with `dir`. */
function toEntries(items: GitTreeItem[], dir: string): TreeEntry[] {
  const out: TreeEntry[] = [];
  for (const i of items) {
    if (i.type === "tree" || !i.path || !i.mode || !i.sha) continue;
    out.push({ path: dir + i.path, mode: i.mode, sha: i.sha });
  }
  return out;
}

/** The directories the globs start from ("" for the whole tree), without nested duplicates. */
export function globBases(globs: readonly string[]): string[] {
  const bases = new Set<string>();
  for (const g of globs) {
    if (g.startsWith("!")) continue;
    const scan = picomatch.scan(g);
    // A plain path may name a file or a directory; its parent directory holds either.
    const base = scan.isGlob ? scan.base : g.includes("/") ? g.slice(0, g.lastIndexOf("/")) : "";
    bases.add(base);
  }
  const sorted = [...bases].sort();
  return sorted.filter((b) => !sorted.some((o) => o !== b && (o === "" || b.startsWith(`${o}/`))));
}

/** Every entry under each base directory, reading only the trees on the way there. */
async function walk(
  octokit: Octokit,
  name: RepoName,
  root: GitTreeItem[],
  bases: string[],
): Promise<TreeEntry[]> {
  const out: TreeEntry[] = toEntries(root, "").filter((e) => !e.path.includes("/"));
  const seen = new Set(out.map((e) => e.path));
  const listing = new Map<string, GitTreeItem[]>([["", root]]);
  const dirSha = async (dir: string): Promise<string | null> => {
    const parent = dir.includes("/") ? dir.slice(0, dir.lastIndexOf("/")) : "";
    const leaf = dir.slice(parent === "" ? 0 : parent.length + 1);
    let items = listing.get(parent);
    if (!items) {
      const sha = await dirSha(parent);
      if (!sha) return null;
      items = (await octokit.rest.git.getTree({ ...name, tree_sha: sha })).data.tree;
      listing.set(parent, items);
    }
    return items.find((i) => i.path === leaf && i.type === "tree")?.sha ?? null;
  };
  const collect = async (treeSha: string, prefix: string): Promise<void> => {
    const { data } = await octokit.rest.git.getTree({ ...name, tree_sha: treeSha, recursive: "1" });
    if (!data.truncated) {
      for (const e of toEntries(data.tree, prefix))
        if (!seen.has(e.path)) {
          seen.add(e.path);
          out.push(e);
        }
      return;
    }
    // Still too big: one level at a time.
    const { data: level } = await octokit.rest.git.getTree({ ...name, tree_sha: treeSha });
    for (const i of level.tree) {
      if (i.type === "tree" && i.sha && i.path) await collect(i.sha, `${prefix}${i.path}/`);
      else
        for (const e of toEntries([i], prefix))
          if (!seen.has(e.path)) {
            seen.add(e.path);
            out.push(e);
          }
    }
  };
  for (const base of bases) {
    if (base === "") {
      for (const i of root)
        if (i.type === "tree" && i.sha && i.path) await collect(i.sha, `${i.path}/`);
      continue;
    }
    const sha = await dirSha(base);
    if (sha) await collect(sha, `${base}/`);
  }
  return out;
}

/**
 * Every entry of a commit's tree but directories, with mode, blob id and size (what a checkout
 * checks the tarball against): one recursive read, or, over GitHub's limits for one read, one
 * directory at a time, stopping once past `maxEntries` (the checkout refuses that many).
 */
export async function readTree(
  octokit: Octokit,
  name: RepoName,
  sha: string,
  maxEntries: number,
): Promise<TreeFile[]> {
  const out: TreeFile[] = [];
  const add = (items: GitTreeItem[], prefix: string): GitTreeItem[] => {
    const dirs: GitTreeItem[] = [];
    for (const i of items) {
      if (!i.path || !i.mode || !i.sha) continue;
      if (i.type === "tree") dirs.push({ ...i, path: prefix + i.path });
      else
        out.push({
          path: prefix + i.path,
          mode: i.mode,
          sha: i.sha,
          ...(typeof i.size === "number" ? { size: i.size } : {}),
        });
    }
    return dirs;
  };
  const { data } = await octokit.rest.git.getTree({ ...name, tree_sha: sha, recursive: "1" });
  if (!data.truncated) {
    add(data.tree, "");
    return out;
  }
  const todo: Array<{ sha: string; prefix: string }> = [{ sha, prefix: "" }];
  while (todo.length > 0) {
    const next = todo.pop() as { sha: string; prefix: string };
    const level = await octokit.rest.git.getTree({ ...name, tree_sha: next.sha });
    for (const d of add(level.data.tree, next.prefix))
      todo.push({ sha: d.sha as string, prefix: `${d.path}/` });
    if (out.length > maxEntries) break;
  }
  return out;
}
