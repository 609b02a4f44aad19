/**
 * The sandbox every local attempt runs in (README.md, "Sandbox"): Debian's bubblewrap
 * (`/usr/bin/bwrap`), started by the wrapper in front of the task's command. What the task sees:
 *
 *   - its own pid namespace with a fresh /proc: no other process of the machine, so no
 *     `/proc/<runner>/environ`; when the namespace's init (bwrap) ends, the kernel kills every
 *     process left in it, `setsid` or not, whether the task ended, timed out or was aborted;
 *   - the machine's filesystem read-only (/tmp too: $TMPDIR is the attempt's own), a fresh /dev;
 *   - the runner's data directory (and the executor's root) hidden under an empty tmpfs, with
 *     only this attempt's checkout bound back read-only, its `inputs.json` and `io/in` read-only,
 *     and its `task/` (outputs, HOME, TMPDIR) and `io/out` writable;
 *   - the GitHub App's key file (PRIVATE_KEY_PATH) replaced by /dev/null;
 *   - the machine's network, as it is (tasks download data), and the runner's uid.
 *
 * Whether bwrap works is found once per process by running it (detectSandbox).
 */
import { spawnSync } from "node:child_process";
import { existsSync, realpathSync } from "node:fs";
import { isAbsolute, join, resolve } from "node:path";
import { isInside } from "./paths.js";

export const BWRAP = "/usr/bin/bwrap";

/** REPRISE_SANDBOX: `auto` (bwrap when it works), `bwrap` (or refuse to start), `none`. */
export type SandboxMode = "auto" | "bwrap" | "none";

export const SANDBOX_MODES: readonly SandboxMode[] = ["auto", "bwrap", "none"];

/** The sandbox an executor uses: bwrap, or none (and why, for the start's warning). */
export type Sandbox = { kind: "bwrap"; path: string } | { kind: "none"; why: string };

/** The same argument list as a launch, minus the binds: namespaces, /proc, /dev, read-only root. */
const BASE_ARGS = [
  "--die-with-parent",
  "--new-session",
  "--unshare-pid",
  "--unshare-ipc",
  "--unshare-uts",
  "--unshare-cgroup-try",
  "--ro-bind",
  "/",
  "/",
  "--dev",
  "/dev",
  "--proc",
  "/proc",
];

const probed = new Map<string, Sandbox>();

/**
 * The sandbox for `mode`: `none` is none; `bwrap` and `auto` run bwrap once (a probe of the
 * same namespaces and mounts a launch uses), remembered for the process. `bwrap` throws when the
 * probe fails; `auto` then returns none, with the reason.
 */
export function detectSandbox(mode: SandboxMode, bwrap = BWRAP): Sandbox {
  if (mode === "none") return { kind: "none", why: "REPRISE_SANDBOX=none" };
  let found = probed.get(bwrap);
  if (!found) {
    found = probe(bwrap);
    probed.set(bwrap, found);
  }
  if (found.kind === "none" && mode === "bwrap") {
    throw new Error(
      `REPRISE_SANDBOX=bwrap: ${found.why}; install bubblewrap (apt-get install bubblewrap), or set REPRISE_SANDBOX=auto to run tasks unsandboxed`,
    );
  }
  return found;
}

function probe(bwrap: string): Sandbox {
  if (!existsSync(bwrap)) return { kind: "none", why: `${bwrap} is not installed` };
  const run = spawnSync(bwrap, [...BASE_ARGS, "--", "/bin/sh", "-c", "exit 0"], {
    stdio: ["ignore", "ignore", "pipe"],
    timeout: 10_000,
    encoding: "utf8",
  });
  if (run.status === 0) return { kind: "bwrap", path: bwrap };
  const said = (run.stderr ?? "").trim() || run.error?.message || `exit status ${run.status}`;
  return { kind: "none", why: `${bwrap} does not work here (${said})` };
}

export interface SandboxView {
  /** Directories hidden under an empty tmpfs: the data directory, the executor's root. */
  hide: readonly string[];
  /** Files replaced by /dev/null (the App's key). */
  blank: readonly string[];
  /** Bound back read-only, in this order after the hiding: the checkout, inputs, io/in. */
  readOnly: readonly string[];
  /** Bound back writable: the attempt's task directory, io/out. */
  writable: readonly string[];
  /** Directories every task may write (REPRISE_SANDBOX_WRITABLE): caches, shared mounts. */
  shared?: readonly string[];
  /** Where the command starts. */
  chdir: string;
}

/** bwrap's arguments for one attempt, up to and including `--`; the command follows. */
export function sandboxArgs(sandbox: Extract<Sandbox, { kind: "bwrap" }>, view: SandboxView) {
  const args = [sandbox.path, ...BASE_ARGS];
  // Shared directories the operator opened to every task (REPRISE_SANDBOX_WRITABLE), first: what
  // is hidden below stays hidden even inside one of them.
  for (const path of (view.shared ?? []).map(real))
    if (existsSync(path)) args.push("--bind", path, path);
  // Deepest last would be wrong: a hidden directory inside another is already hidden.
  const hidden = [...new Set(view.hide.map(real))].filter(
    (dir, _, all) => !all.some((other) => other !== dir && isInside(other, dir)),
  );
  for (const dir of hidden) if (existsSync(dir)) args.push("--tmpfs", dir);
  const covered = (path: string) => hidden.some((dir) => isInside(dir, path));
  for (const file of view.blank.map(real)) {
    // Inside a hidden directory it is gone already, and there is nothing to bind over.
    if (existsSync(file) && !covered(file)) args.push("--ro-bind", "/dev/null", file);
  }
  for (const path of view.readOnly.map(real)) args.push("--ro-bind", path, path);
  for (const path of view.writable.map(real)) args.push("--bind", path, path);
  args.push("--chdir", real(view.chdir), "--");
  return args;
}

/** REPRISE_SANDBOX_WRITABLE: directories every sandboxed task may also write, `:`-separated. */
export const SANDBOX_WRITABLE_VAR = "REPRISE_SANDBOX_WRITABLE";

/**
 * The directories of REPRISE_SANDBOX_WRITABLE (absolute paths separated by `:`, empty entries
 * ignored), or the problems that make it unusable: a relative path, `/` itself.
 */
export function parseSandboxWritable(value: string | undefined): {
  dirs: string[];
  problems: string[];
} {
  const dirs: string[] = [];
  const problems: string[] = [];
  for (const entry of (value ?? "").split(":")) {
    if (entry === "") continue;
    if (!isAbsolute(entry)) problems.push(`"${entry}" is not an absolute path`);
    else if (resolve(entry) === "/") problems.push(`"/" would give every task the whole machine`);
    else dirs.push(resolve(entry));
  }
  return { dirs, problems };
}

/** The path with its symlinks resolved when it exists (bwrap mounts the real one). */
function real(path: string): string {
  const absolute = isAbsolute(path) ? path : resolve(path);
  try {
    return realpathSync(absolute);
  } catch {
    return absolute;
  }
}

/** The scratch a sandboxed (or not) task gets: HOME and TMPDIR inside its task directory. */
export function scratchDirs(taskDir: string): { home: string; tmp: string } {
  return { home: join(taskDir, "home"), tmp: join(taskDir, "tmp") };
}
