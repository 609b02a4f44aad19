/**
 * A container's filesystem, built with Debian's bubblewrap (`/usr/bin/bwrap`) as the container
 * runtime would build it from the image and the pod's volumes:
 *
 *   - its root is a tmpfs of its own (the writable layer), its /tmp and HOME (/root) directories
 *     of its own in the pod's directory, so nothing is shared with another container or with
 *     this machine (a tmpfs root mounts about 2.5x faster here than a directory on disk);
 *   - the machine's own top-level directories are bound read-only over it: they stand in for the
 *     image, which is not pulled (/tmp, /root, /proc and /dev are the container's own);
 *   - each volume is bound at its `mountPath` (read-only when the mount or the volume kind says
 *     so), the termination message file at `terminationMessagePath`, as the kubelet binds them;
 *   - its own pid namespace (unless the fake shares the machine's, like `hostPID: true`), IPC
 *     and UTS namespaces; the machine's network.
 *
 * `--new-session` puts everything inside in a process group of its own, apart from the outer
 * bwrap: a graceful stop signals that group only, since a SIGTERM to the outer bwrap would take
 * the container down at once instead of letting it handle the signal.
 */
import { accessSync, constants, lstatSync, readdirSync, readlinkSync } from "node:fs";
import { delimiter, isAbsolute, join, posix } from "node:path";

export const BWRAP = "/usr/bin/bwrap";

/** Top-level entries of / that are the container's own rather than the image's. */
const OWN = new Set(["proc", "dev", "tmp", "root"]);

export interface Bind {
  /** A path on this machine. */
  source: string;
  /** Where the container sees it. */
  target: string;
  readOnly: boolean;
}

export interface ContainerFs {
  /** The container's /tmp and HOME (/root) on this machine. */
  tmp: string;
  home: string;
  /** Volumes, the termination message file, the fake's own binds. */
  binds: Bind[];
  /** The container's working directory, created when missing (as runc does). */
  workingDir?: string;
  /** Share the machine's pid namespace (the fake's `hostPid`). */
  hostPid: boolean;
}

let imageArgs: string[] | undefined;

/** The read-only binds (and symlinks) of this machine's top-level entries: the "image". */
function image(): string[] {
  if (imageArgs) return imageArgs;
  const args: string[] = [];
  for (const name of readdirSync("/").sort()) {
    if (OWN.has(name)) continue;
    const path = `/${name}`;
    const stat = lstatSync(path, { throwIfNoEntry: false });
    if (!stat) continue;
    if (stat.isSymbolicLink()) args.push("--symlink", readlinkSync(path), path);
    else if (stat.isDirectory() || stat.isFile()) args.push("--ro-bind", path, path);
  }
  imageArgs = args;
  return args;
}

/** bwrap's arguments for one container, up to and including `--`; the command follows. */
export function containerArgs(fs: ContainerFs): string[] {
  const args = [
    "--die-with-parent",
    "--new-session",
    ...(fs.hostPid ? [] : ["--unshare-pid"]),
    "--unshare-ipc",
    "--unshare-uts",
    "--unshare-cgroup-try",
    "--info-fd",
    "3",
    "--tmpfs",
    "/",
    ...image(),
    "--dev",
    "/dev",
    "--proc",
    "/proc",
    "--bind",
    fs.tmp,
    "/tmp",
    "--bind",
    fs.home,
    "/root",
  ];
  // Parents before children: a volume mounted inside another one lands on top of it.
  const binds = [...fs.binds].sort((a, b) => depth(a.target) - depth(b.target));
  for (const b of binds) args.push(b.readOnly ? "--ro-bind" : "--bind", b.source, b.target);
  if (fs.workingDir) args.push("--dir", fs.workingDir, "--chdir", fs.workingDir);
  else args.push("--chdir", "/");
  args.push("--");
  return args;
}

function depth(path: string): number {
  return posix.normalize(path).split("/").length;
}

/**
 * Whether the container can execute `command`, looked up as the runtime does (PATH for a bare
 * name) in what the container sees when it starts: the machine's files, or a volume's for a
 * path inside one. A relative path is left for the exec to find.
 */
export function findExecutable(command: string, path: string, binds: Bind[]): boolean {
  // A relative path is the working directory's: left for the exec to find.
  if (command.includes("/") && !isAbsolute(command)) return true;
  const candidates = command.includes("/")
    ? [command]
    : path
        .split(delimiter)
        .filter((d) => isAbsolute(d))
        .map((d) => join(d, command));
  for (const candidate of candidates) {
    const top = candidate.split("/")[1] ?? "";
    const bind = [...binds]
      .sort((a, b) => depth(b.target) - depth(a.target))
      .find((b) => candidate === b.target || candidate.startsWith(`${b.target}/`));
    // The container's own /tmp and /root are empty when it starts.
    if (!bind && OWN.has(top)) continue;
    const onHost = bind ? bind.source + candidate.slice(bind.target.length) : candidate;
    try {
      accessSync(onHost, constants.X_OK);
      if (!lstatSync(onHost).isDirectory()) return true;
    } catch {
      // not there: the next candidate
    }
  }
  return false;
}
