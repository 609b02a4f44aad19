/**
 * Telling whether an attempt's wrapper still runs, and signalling its process group.
 *
 * A pid read back from a file after a restart may have been reused by an unrelated process
 * (pid_max is 32,768 on many machines), and a dead child that nobody reaped yet still answers
 * `kill(pid, 0)`. On Linux, /proc/<pid>/cmdline rules out both: it must be the wrapper's
 * (wrapper.ts: `/bin/sh -c SCRIPT reprise-task <attempt dir> ...`) for this attempt's directory,
 * and it is empty for a zombie. Elsewhere, or if /proc will not say, `kill(pid, 0)` is the best
 * there is.
 */
import { readFileSync, statSync } from "node:fs";
import { errno } from "./errno.js";
import { WRAPPER_NAME } from "./wrapper.js";

export async function wrapperAlive(pid: number, attemptDir: string): Promise<boolean> {
  return wrapperAliveNow(pid, attemptDir);
}

/** wrapperAlive, synchronously: a read of /proc is a few microseconds (see attempt-dir.ts). */
export function wrapperAliveNow(pid: number, attemptDir: string): boolean {
  if (process.platform === "linux") {
    try {
      const argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
      return argv[3] === WRAPPER_NAME && sameDirectory(argv[4], attemptDir);
    } catch (e) {
      if (errno(e) === "ENOENT" || errno(e) === "ESRCH") return false;
      // EACCES and the like (a hardened /proc): fall back to asking the kernel below.
    }
  }
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    // ESRCH: gone. EPERM: alive but another user's, so not the wrapper this runner started.
    return false;
  }
}

/**
 * Signals every process in the group (the wrapper, the task, whatever the task started). Never
 * throws for a group that is gone (ESRCH) or, after a pid was reused, is someone else's (EPERM):
 * either way there is nothing of ours left to stop.
 */
export function signalGroup(pgid: number, signal: NodeJS.Signals): void {
  // kill(0) and kill(-1) would signal the runner's own group, or every process it may signal.
  if (!Number.isSafeInteger(pgid) || pgid <= 1) {
    throw new Error(`refusing to signal process group ${pgid}`);
  }
  try {
    process.kill(-pgid, signal);
  } catch (e) {
    if (errno(e) !== "ESRCH" && errno(e) !== "EPERM") throw e;
  }
}

/** The same path, or the same directory spelled another way (a runner root reached through a symlink). */
function sameDirectory(a: string | undefined, b: string): boolean {
  if (a === undefined) return false;
  if (a === b) return true;
  try {
    const [x, y] = [statSync(a), statSync(b)];
    return x.dev === y.dev && x.ino === y.ino;
  } catch (e) {
    if (errno(e) === "ENOENT") return false;
    throw e;
  }
}
