/**
 * Sources digests from a commit's git tree listing. Git already hashed every file, so the
 * digest covers (path, mode, object SHA) of the matching entries and never reads a file.
 *
 * Matching, for a repository-relative glob (picomatch, dotfiles included):
 * - a plain path names that file, or every file under it when it is a directory;
 * - a glob is tested only against the entries under its static base directory, found by binary
 *   search in the sorted listing, so 1,000 tasks over 10,000 files stay cheap;
 * - a leading "!" excludes what it matches from what the other globs matched.
 */
import picomatch from "picomatch";
import { type Digest, digest } from "./digest.js";

export interface TreeEntry {
  path: string;
  /** Git file mode: "100644", "100755", "120000" (symlink), "160000" (submodule). */
  mode: string;
  /** Git object id (40 hex for SHA-1 repositories, 64 for SHA-256). */
  sha: string;
}

export class TreeIndex {
  readonly entries: readonly TreeEntry[];
  private readonly paths: string[];
  private readonly byPath = new Map<string, number>();
  private readonly cache = new Map<string, readonly number[]>();

  constructor(entries: readonly TreeEntry[]) {
    const sorted = [...entries].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
    this.entries = sorted;
    this.paths = sorted.map((e) => e.path);
    for (const [i, e] of sorted.entries()) this.byPath.set(e.path, i);
  }

  /** Indices (ascending) of the entries one positive glob matches. */
  matchGlob(glob: string): readonly number[] {
    const cached = this.cache.get(glob);
    if (cached) return cached;
    const scan = picomatch.scan(glob);
    let result: number[];
    if (glob === "**") {
      result = this.paths.map((_, i) => i);
    } else if (!scan.isGlob) {
      const exact = this.byPath.get(glob);
      result = exact !== undefined ? [exact] : this.range(`${glob}/`);
    } else {
      const isMatch = picomatch(glob, { dot: true });
      // The base itself is a candidate too: picomatch lets "lib/**" match a file named "lib".
      const base = this.byPath.get(scan.base);
      const candidates =
        scan.base === ""
          ? this.paths.map((_, i) => i)
          : [...(base === undefined ? [] : [base]), ...this.range(`${scan.base}/`)];
      result = candidates.filter((i) => isMatch(this.paths[i] as string));
    }
    this.cache.set(glob, result);
    return result;
  }

  /** Entries matched by a list of globs (positive ones add, "!" ones remove), sorted by path. */
  match(globs: readonly string[]): TreeEntry[] {
    const included = new Set<number>();
    for (const g of globs)
      if (!g.startsWith("!")) for (const i of this.matchGlob(g)) included.add(i);
    for (const g of globs)
      if (g.startsWith("!")) for (const i of this.matchGlob(g.slice(1))) included.delete(i);
    return [...included].sort((a, b) => a - b).map((i) => this.entries[i] as TreeEntry);
  }

  /** Indices of every path starting with `prefix`, by binary search on the sorted paths. */
  private range(prefix: string): number[] {
    let lo = 0;
    let hi = this.paths.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((this.paths[mid] as string) < prefix) lo = mid + 1;
      else hi = mid;
    }
    const out: number[] = [];
    for (let i = lo; i < this.paths.length && (this.paths[i] as string).startsWith(prefix); i++)
      out.push(i);
    return out;
  }
}

export function sourcesDigest(entries: readonly TreeEntry[]): Digest {
  return digest(entries.map((e) => [e.path, e.mode, e.sha]));
}
