/** Repository-relative paths and globs: POSIX, never absolute, never climbing out with "..". */

export type PathCheck = { ok: true; path: string } | { ok: false; reason: string };

export function normalizeRepoPath(raw: string): PathCheck {
  if (raw.includes("\0")) return { ok: false, reason: "contains a NUL byte" };
  if (raw.includes("\\")) return { ok: false, reason: "uses backslashes; write paths with '/'" };
  if (raw.startsWith("/") || /^[A-Za-z]:/.test(raw)) {
    return { ok: false, reason: "is absolute; write it relative to the repository root" };
  }
  const parts: string[] = [];
  for (const seg of raw.split("/")) {
    if (seg === "" || seg === ".") continue;
    if (seg === "..")
      return { ok: false, reason: "contains '..'; it must stay inside the repository" };
    parts.push(seg);
  }
  return { ok: true, path: parts.length === 0 ? "." : parts.join("/") };
}

/** A sources glob: a repository path pattern, optionally negated with a leading "!". */
export function normalizeGlob(raw: string): PathCheck {
  const negated = raw.startsWith("!");
  const body = negated ? raw.slice(1) : raw;
  if (body.trim() === "") return { ok: false, reason: "is empty" };
  const checked = normalizeRepoPath(body);
  if (!checked.ok) return checked;
  if (checked.path === ".")
    return { ok: false, reason: "names the repository root; use '**' for the whole tree" };
  return { ok: true, path: negated ? `!${checked.path}` : checked.path };
}
