/** Keeping paths inside a directory: a task's workdir, a checkout's symlinks, a log reference. */
import { realpath } from "node:fs/promises";
import { resolve, sep } from "node:path";
import { errno } from "./errno.js";

/** Lexical: both paths must already be absolute and resolved. */
export function isInside(root: string, path: string): boolean {
  return path === root || path.startsWith(root.endsWith(sep) ? root : `${root}${sep}`);
}

/**
 * The absolute working directory for `workdir` in `checkout`. The spec already refuses `..` and
 * absolute paths (core/spec/paths.ts); a symlink in the repository could still lead out, so the
 * real path is checked too. A workdir that does not exist is returned as is: `cd` fails in the
 * wrapper and the task fails with that in its log, like any other mistake in the task.
 */
export async function workdirIn(checkout: string, workdir: string): Promise<string> {
  const root = await realpath(checkout);
  const path = resolve(root, workdir);
  if (!isInside(root, path)) {
    throw new Error(`workdir "${workdir}" is outside the repository: make it a path inside it`);
  }
  let real: string;
  try {
    real = await realpath(path);
  } catch (e) {
    if (errno(e) === "ENOENT" || errno(e) === "ENOTDIR") return path;
    throw e;
  }
  if (!isInside(root, real)) {
    throw new Error(
      `workdir "${workdir}" leads outside the repository through a symlink, to ${real}`,
    );
  }
  return real;
}
