/** `git ls-tree -r -z` and `git ls-files -s -z` output as tree entries (docs/design.md section 4). */
import type { TreeEntry } from "./sources.js";

/** Records are NUL-terminated; ls-tree: "<mode> <type> <sha>\t<path>", ls-files -s: "<mode> <sha> <stage>\t<path>". */
export function parseTreeListing(text: string, format: "ls-tree" | "ls-files"): TreeEntry[] {
  const entries: TreeEntry[] = [];
  for (const record of text.split("\0")) {
    if (record === "") continue;
    const tab = record.indexOf("\t");
    const [mode, second, third] = record.slice(0, tab).split(" ");
    const path = record.slice(tab + 1);
    const sha = format === "ls-tree" ? third : second;
    if (!mode || !sha || tab < 0)
      throw new Error(`unexpected git listing record: ${JSON.stringify(record)}`);
    entries.push({ path, mode, sha });
  }
  return entries;
}
