/**
 * Whether a symlink in a tree of files (a commit's checkout, a directory artifact) leads out of
 * it, resolved as the kernel would: component by component, links within links followed, so
 * `a -> .` plus `b -> a/..` is seen to escape although `a/..` looks harmless lexically. The one
 * implementation of this check: core/artifacts/manifest.ts and the local executor's checkouts
 * (runner/sources/tarball.ts, shared by the `git archive` and GitHub tarball checkouts) use it.
 */

/** What a path of the tree is: a link (with its target) or anything else (a file). */
export type LinkTreeEntry = { kind: "symlink"; target: string } | { kind: "file" };

/** Linux gives up after 40 links in one lookup (ELOOP). */
const MAX_LINK_HOPS = 40;

/**
 * Resolves the link at `path` through the links of `byPath` (paths relative to the tree's
 * root, `/`-separated; directories are the parents of entries and need no entry); says why when
 * any step leaves the tree, null when it stays inside. A target that names nothing (a dangling
 * link) stays inside.
 */
export function linkEscapes(
  path: string,
  byPath: ReadonlyMap<string, { kind: string; target?: string }>,
): string | null {
  const link = byPath.get(path);
  if (link?.kind !== "symlink" || typeof link.target !== "string") return null;
  if (link.target.startsWith("/"))
    return `link ${JSON.stringify(path)} points to the absolute path ${JSON.stringify(link.target)}`;
  // Components still to walk, and where we are (a stack of names below the root).
  const at: string[] = path.split("/").slice(0, -1);
  const todo: string[] = link.target.split("/").reverse();
  let hops = 0;
  while (todo.length > 0) {
    const part = todo.pop() as string;
    if (part === "" || part === ".") continue;
    if (part === "..") {
      if (at.length === 0)
        return `link ${JSON.stringify(path)} -> ${JSON.stringify(link.target)} leaves the directory`;
      at.pop();
      continue;
    }
    at.push(part);
    const entry = byPath.get(at.join("/"));
    if (entry?.kind === "symlink" && typeof entry.target === "string") {
      if (++hops > MAX_LINK_HOPS)
        return `link ${JSON.stringify(path)} goes through more than ${MAX_LINK_HOPS} links`;
      if (entry.target.startsWith("/"))
        return `link ${JSON.stringify(path)} leads to the absolute path ${JSON.stringify(entry.target)}`;
      at.pop();
      todo.push(...entry.target.split("/").reverse());
    } else if (entry) {
      // A file: anything after it cannot be looked up (ENOTDIR), so nothing escapes.
      if (todo.some((p) => p !== "" && p !== ".")) return null;
    }
  }
  return null;
}
