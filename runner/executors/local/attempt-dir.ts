/**
 * The files of one attempt, `<root>/attempts/<handle>/`. They are the attempt's whole state: a
 * runner that restarts reads them to tell running from finished from lost, so every file that
 * says "this happened" appears atomically (written aside, then renamed into place), or, for the
 * wrapper's `exit`, is only believed when complete.
 *
 * The calls are synchronous on purpose. Each touches a file of a few bytes on the local disk
 * the runner's own data lives on, and takes microseconds; the same call made through libuv's
 * thread pool costs 10 to 40 times that in CPU (a hand-off to a pool thread and back), which
 * on a small machine was as much as the task's own process start. See README.md, "Overhead".
 *
 *   inputs.json   the node's inputs ($REPRISE_INPUTS)
 *   task/         what the task may write (in the sandbox too): outputs.json ($REPRISE_OUTPUTS,
 *                 absent until the task writes it), home/ ($HOME), tmp/ ($TMPDIR)
 *   log           stdout and stderr, interleaved as written, plus the runner's "[reprise]" lines
 *   started       start time, ms since the epoch: the timeout counts from here
 *   pid           the wrapper's pid, which is also its process group id
 *   exit          the command's exit status and a newline, written by the wrapper when the
 *                 command ends; trusted only once the newline is there (see readExit)
 *   aborted, timeout   markers: the runner decided to stop the attempt, and why
 *   refused       the runner would not start the task (its secrets cannot be given), and why;
 *                 such an attempt has a log saying so and no process
 *   io/in, io/out the task's artifact inputs (materialised) and outputs (artifact-io.ts)
 *   checkout      the checkout directory the task runs in: in use while the attempt runs, for
 *                 eviction in any runner (eviction.ts)
 *   evicted       the attempt was evicted (eviction.ts): every other file is gone, and this one
 *                 says when and why; its log reads as that note
 */
import { randomBytes } from "node:crypto";
import {
  appendFileSync,
  chmodSync,
  closeSync,
  constants,
  createReadStream,
  createWriteStream,
  existsSync,
  fstatSync,
  ftruncateSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  renameSync,
  rmSync,
  type Stats,
  writeFileSync,
  writeSync,
} from "node:fs";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import { Masker } from "../mask.js";
import { errno } from "./errno.js";

/** Handles are DNS-1123 labels (core/engine/attempt-name.ts); anything else could escape the root. */
const HANDLE = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

export type StopReason = "aborted" | "timeout";

/** Far above the 4,096-byte limit, so any plausible mistake gets checkOutputs' exact message. */
const READ_OUTPUTS_UP_TO = 1024 * 1024;

/** `bytes` is absent when the file is too large to be worth reading, or is no regular file. */
export interface OutputsFile {
  size: number;
  bytes?: Uint8Array;
  /** What was there instead of a regular file: "a FIFO", "a symbolic link", "a device"... */
  problem?: string;
}

export interface AttemptSeed {
  inputs: unknown;
  firstLogLine: string;
  started: number;
  /** A prepared io directory (artifact inputs and outputs) to move in as `io`. */
  io?: string;
  /** The checkout directory the task runs in (eviction must not remove it meanwhile). */
  checkout?: string;
}

export class AttemptDir {
  readonly path: string;
  readonly inputs: string;
  readonly outputs: string;
  /** The task's writable directory: its outputs file, HOME and TMPDIR. */
  readonly task: string;
  readonly log: string;
  readonly io: string;

  constructor(
    readonly attemptsRoot: string,
    readonly handle: string,
  ) {
    if (!HANDLE.test(handle)) {
      throw new Error(
        `attempt handle ${JSON.stringify(handle)} is not a DNS-1123 label; build it with attemptName()`,
      );
    }
    this.path = join(attemptsRoot, handle);
    this.inputs = join(this.path, "inputs.json");
    this.task = join(this.path, "task");
    this.outputs = join(this.task, "outputs.json");
    this.log = join(this.path, "log");
    this.io = join(this.path, "io");
  }

  /** A fresh directory beside the attempts to prepare an io directory in (see AttemptSeed.io). */
  ioStaging(): string {
    return this.#staging(".io-");
  }

  exists(): boolean {
    return existsSync(this.path);
  }

  /**
   * Creates the directory with its first files in one rename, so no reader ever sees a
   * half-made attempt, and so exactly one of several racing launchers (in this process or
   * another) wins. Returns false when the attempt already existed.
   */
  claim(
    seed:
      | AttemptSeed
      | { aborted: string }
      | { lost: string }
      | { refused: string; firstLogLine: string; reason?: string },
  ): boolean {
    const staging = this.#staging();
    let claimed = false;
    try {
      if ("aborted" in seed) {
        writeFileSync(join(staging, "aborted"), seed.aborted);
      } else if ("lost" in seed) {
        writeFileSync(join(staging, "lost"), seed.lost);
      } else if ("refused" in seed) {
        writeFileSync(join(staging, "log"), `${seed.firstLogLine}[reprise] ${seed.refused}\n`);
        writeFileSync(join(staging, "refused"), seed.refused);
        if (seed.reason) writeFileSync(join(staging, "refused-reason"), seed.reason);
      } else {
        writeFileSync(join(staging, "inputs.json"), JSON.stringify(seed.inputs));
        writeFileSync(join(staging, "log"), seed.firstLogLine);
        writeFileSync(join(staging, "started"), String(seed.started));
        mkdirSync(join(staging, "task", "home"), { recursive: true });
        mkdirSync(join(staging, "task", "tmp"));
        if (seed.io) renameSync(seed.io, join(staging, "io"));
        if (seed.checkout) writeFileSync(join(staging, "checkout"), seed.checkout);
      }
      renameSync(staging, this.path);
      claimed = true;
      return true;
    } catch (e) {
      if (errno(e) === "ENOTEMPTY" || errno(e) === "EEXIST") return false;
      throw e;
    } finally {
      if (!claimed) rmSync(staging, { recursive: true, force: true });
    }
  }

  /** A fresh staging directory; the attempts root is made on first use (and again if removed). */
  #staging(kind = ".staging-"): string {
    const prefix = join(this.attemptsRoot, `${kind}${this.handle}-`);
    try {
      return mkdtempSync(prefix);
    } catch (e) {
      if (errno(e) !== "ENOENT") throw e;
      mkdirSync(this.attemptsRoot, { recursive: true });
      return mkdtempSync(prefix);
    }
  }

  writePid(pid: number): void {
    writeAtomic(join(this.path, "pid"), String(pid));
  }

  writeStop(reason: StopReason, why: string): void {
    writeAtomic(join(this.path, reason), why);
  }

  appendLog(line: string): void {
    appendFileSync(this.log, `${line}\n`);
  }

  readPid(): number | null {
    return readInteger(join(this.path, "pid"));
  }

  readStarted(): number | null {
    return readInteger(join(this.path, "started"));
  }

  /**
   * The wrapper writes `exit` in place (wrapper.ts: one short write, no `mv`), so a reader may
   * catch it empty or, in principle, part-written: only a status followed by its newline
   * counts, anything else is "not yet".
   */
  readExit(): number | null {
    const text = readText(join(this.path, "exit"));
    return text !== null && /^\d+\n$/.test(text) ? Number(text.slice(0, -1)) : null;
  }

  /** Why the runner would not start the task, or null when it did (or may yet). */
  readRefused(): string | null {
    return readText(join(this.path, "refused"));
  }

  /**
   * Replaces the given secret values by `***` in the log (mask.ts), once the task has ended:
   * the masked copy is written aside and renamed over the log, and only when something was
   * masked. Streamed and asynchronous, unlike the other files here: a log can be large.
   * Masking again is harmless, so a runner that re-attaches after a crash simply does it again.
   */
  async maskLog(values: Iterable<string>): Promise<void> {
    const masker = new Masker(values);
    if (!masker.active || !this.hasLog()) return;
    const aside = `${this.log}.${process.pid}.${randomBytes(4).toString("hex")}.masking`;
    try {
      await pipeline(
        createReadStream(this.log),
        async function* (source: AsyncIterable<Buffer>) {
          for await (const chunk of source) {
            const out = masker.push(chunk);
            if (out.length > 0) yield out;
          }
          const last = masker.end();
          if (last.length > 0) yield last;
        },
        createWriteStream(aside),
      );
      if (masker.masked > 0) renameSync(aside, this.log);
    } finally {
      rmSync(aside, { force: true });
    }
  }

  /** The node error's reason for a refused attempt: `secrets` unless the refusal said another. */
  readRefusedReason(): string {
    return readText(join(this.path, "refused-reason")) ?? "secrets";
  }

  /** Abort wins over timeout: the engine asked for it, whatever the clock said. */
  readStop(): StopReason | null {
    if (existsSync(join(this.path, "aborted"))) return "aborted";
    if (existsSync(join(this.path, "timeout"))) return "timeout";
    return null;
  }

  /**
   * The outputs file, or null when the task wrote none. The task made it, so it is opened
   * without following a symlink and without blocking (a FIFO would hold the runner forever),
   * and only a regular file is read, at most READ_OUTPUTS_UP_TO + 1 bytes (a device never ends):
   * a huge file's size is all that is needed to refuse it.
   */
  readOutputs(): OutputsFile | null {
    let fd: number;
    try {
      fd = openSync(this.outputs, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    } catch (e) {
      if (errno(e) === "ENOENT") return null;
      if (errno(e) === "ELOOP") return { size: 0, problem: "a symbolic link" };
      throw e;
    }
    try {
      const stat = fstatSync(fd);
      if (!stat.isFile()) return { size: 0, problem: fileKind(stat) };
      const buffer = Buffer.alloc(Math.min(stat.size, READ_OUTPUTS_UP_TO) + 1);
      let length = 0;
      while (length < buffer.length) {
        const n = readSync(fd, buffer, length, buffer.length - length, length);
        if (n === 0) break;
        length += n;
      }
      if (length > READ_OUTPUTS_UP_TO) return { size: Math.max(stat.size, length) };
      return { size: length, bytes: buffer.subarray(0, length) };
    } finally {
      closeSync(fd);
    }
  }

  /**
   * Keeps the log within `maxBytes` while the task writes it: over the cap, the first quarter
   * and the last half are kept and a note in between says how many bytes were dropped. The
   * wrapper appends (O_APPEND), so after the truncation its writes land after the kept tail;
   * what the task writes during the few system calls of a cut is dropped too, and counted.
   */
  capLog(maxBytes: number): void {
    let fd: number;
    try {
      fd = openSync(this.log, "r+");
    } catch (e) {
      if (errno(e) === "ENOENT") return;
      throw e;
    }
    try {
      const size = fstatSync(fd).size;
      if (size <= maxBytes) return;
      const head = Math.floor(maxBytes / 4);
      const tail = Buffer.alloc(Math.floor(maxBytes / 2));
      const read = readSync(fd, tail, 0, tail.length, size - tail.length);
      const now = fstatSync(fd).size;
      ftruncateSync(fd, head);
      const dropped = now - head - read;
      const note = Buffer.from(
        `\n[reprise] log over ${maxBytes} bytes (REPRISE_LOG_MAX_BYTES): ${dropped} bytes dropped here\n`,
      );
      const out = openSync(this.log, "a");
      try {
        writeSync(out, note);
        writeSync(out, tail, 0, read);
      } finally {
        closeSync(out);
      }
    } finally {
      closeSync(fd);
    }
  }

  hasLog(): boolean {
    return existsSync(this.log);
  }

  /** The checkout directory the task runs in, when the launch recorded one. */
  readCheckout(): string | null {
    return readText(join(this.path, "checkout"));
  }

  /** Whether the attempt will change no more: its process ended, or it never had one. */
  ended(): boolean {
    if (this.readExit() !== null || existsSync(join(this.path, "lost"))) return true;
    if (this.readRefused() !== null || this.readEvicted() !== null) return true;
    // Aborted before its launch: the abort's claim made a directory that never gets a process.
    return this.readStop() === "aborted" && this.readStarted() === null;
  }

  /** The note that replaced the log of an evicted attempt, or null. */
  readEvicted(): string | null {
    return readText(join(this.path, "evicted"));
  }

  /**
   * Frees the attempt's disk (eviction.ts): `evicted` is written first (atomically), then every
   * other file goes, so a reader sees the log or the note, and the directory itself stays (a
   * few bytes) so the handle still counts as launched: a late launch does nothing.
   */
  async evict(note: string): Promise<void> {
    writeAtomic(join(this.path, "evicted"), note);
    for (const name of readdirSync(this.path)) {
      if (name !== "evicted") await removeTree(join(this.path, name));
    }
  }
}

/** Removes a tree the task wrote, including directories it made unreadable (chmod 000). */
async function removeTree(path: string): Promise<void> {
  try {
    await rm(path, { recursive: true, force: true });
  } catch (e) {
    if (errno(e) !== "EACCES" && errno(e) !== "EPERM") throw e;
    makeWritable(path);
    await rm(path, { recursive: true, force: true });
  }
}

function makeWritable(path: string): void {
  try {
    if (!lstatSync(path).isDirectory()) return;
    chmodSync(path, 0o700);
    for (const name of readdirSync(path)) makeWritable(join(path, name));
  } catch {
    // What cannot be made writable makes the retried rm fail, which says what it was.
  }
}

/** Reads the last `maxBytes` of a file without reading the rest; null when it does not exist. */
export function readTail(path: string, maxBytes: number): string | null {
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch (e) {
    if (errno(e) === "ENOENT") return null;
    throw e;
  }
  try {
    const { size } = fstatSync(fd);
    const length = Math.max(0, Math.min(size, Math.floor(maxBytes)));
    const buffer = Buffer.alloc(length);
    const bytesRead = length === 0 ? 0 : readSync(fd, buffer, 0, length, size - length);
    let start = 0;
    // Do not begin in the middle of a UTF-8 character: skip its continuation bytes.
    while (start < bytesRead && start < 3 && ((buffer[start] ?? 0) & 0xc0) === 0x80) start++;
    return buffer.subarray(start, bytesRead).toString("utf8");
  } finally {
    closeSync(fd);
  }
}

function fileKind(stat: Stats): string {
  if (stat.isFIFO()) return "a FIFO";
  if (stat.isSymbolicLink()) return "a symbolic link";
  if (stat.isCharacterDevice() || stat.isBlockDevice()) return "a device";
  if (stat.isSocket()) return "a socket";
  if (stat.isDirectory()) return "a directory";
  return "not a regular file";
}

function writeAtomic(path: string, content: string): void {
  const aside = `${path}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
  writeFileSync(aside, content);
  renameSync(aside, path);
}

function readText(path: string): string | null {
  try {
    return readFileSync(path, "utf8");
  } catch (e) {
    if (errno(e) === "ENOENT") return null;
    throw e;
  }
}

function readInteger(path: string): number | null {
  const text = readText(path)?.trim();
  return text !== undefined && /^\d+$/.test(text) ? Number(text) : null;
}
