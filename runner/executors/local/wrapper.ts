/**
 * The wrapper: a tiny /bin/sh script that runs the task's command and records its exit status.
 * It is what lets a runner die while tasks run. The runner starts it in its own session (so a
 * Ctrl-C or the runner's death does not reach it), detaches from it, and a later runner learns
 * the outcome from the `exit` file instead of from a child-process handle it no longer has.
 *
 * Its arguments: $0 is "reprise-task" (what `ps` shows), $1 the attempt directory (also how
 * wrapperAlive recognises it), $2 the working directory, then the command. `cd` happens inside
 * the script, so a missing workdir is the task's failure, in its log, like any other failing
 * command.
 *
 * Only builtins run besides the command: the wrapper costs one `/bin/sh` and the fork for the
 * command, no more. `exit` is written in place, in one short write; the status is believed only
 * with its newline (AttemptDir.readExit), which makes it as good as atomic without an `mv`
 * process (an earlier wrapper wrote `exit.tmp` and renamed it, which cost a fork and an exec of
 * `mv` per attempt: a third of the wrapper's time for a short task).
 */
import { type ChildProcess, spawn } from "node:child_process";

export const WRAPPER_NAME = "reprise-task";

const SCRIPT = `dir=$1 workdir=$2 grace=$3
shift 3
{ cd -- "$workdir" && "$@"; } >>"$dir/log" 2>&1 </dev/null
status=$?
printf '%s\\n' "$status" >"$dir/exit"
# Like a pod that ends, take down what the task left running in the background. In a sandbox,
# its pid namespace ended with the command; unsandboxed, what ignores TERM gets KILL.
trap '' TERM
kill -s TERM 0 2>/dev/null
[ "$grace" = 0 ] || { sleep "$grace"; kill -s KILL 0; }
exit 0
`;

export interface WrapperArgs {
  attemptDir: string;
  workdir: string;
  command: readonly string[];
  env: Record<string, string>;
  /**
   * Seconds between the TERM and the KILL of what the task left in the wrapper's process group
   * after it exits; 0: TERM only (a sandboxed task's namespace is gone already).
   */
  killGraceSeconds: number;
}

/**
 * Starts the wrapper as the leader of a new process group (`detached`), with no pipes to the
 * runner (`stdio: "ignore"`: the log is a file the wrapper writes), and lets the runner exit
 * without waiting for it (`unref`). May throw synchronously, or emit "error" (no /bin/sh).
 */
export function spawnWrapper(args: WrapperArgs): ChildProcess {
  const child = spawn(
    "/bin/sh",
    [
      "-c",
      SCRIPT,
      WRAPPER_NAME,
      args.attemptDir,
      args.workdir,
      String(args.killGraceSeconds),
      ...args.command,
    ],
    { cwd: args.attemptDir, env: args.env, detached: true, stdio: "ignore" },
  );
  child.unref();
  return child;
}
