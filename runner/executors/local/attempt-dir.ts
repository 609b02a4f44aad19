/**
 * The files of one attempt, `<root>/attempts/<handle>/`. They are the attempt's whole state: a
 * runner that restarts reads them to tell running from finished from lost, so every file that
 * says "this happened" appears atomically (written aside, then renamed into place).
 *
 *   inputs.json   the node's inputs ($REPRISE_INPUTS)
 *   outputs.json  what the task wrote ($REPRISE_OUTPUTS), absent until it does
 *   log           stdout and stderr, interleaved as written, plus the runner's "[reprise]" lines
 *   started       start time, ms since the epoch: the timeout counts from here
 *   pid           the wrapper's pid, which is also its process group id
 *   exit          the command's exit status, written by the wrapper when the command ends
 *   aborted, timeout   markers: the runner decided to stop the attempt, and why
 */
import { randomBytes } from "node:crypto";
import {
  appendFile,
  mkdir,
  mkdtemp,
  open,
  readFile,
  rename,
  rm,
  stat,
  writeFile,
} from "node:fs/promises";
import { join } from "node:path";
import { errno } from "./errno.js";

/** Handles are DNS-1123 labels (core/engine/attempt-name.ts); anything else could escape the root. */
const HANDLE = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

export type StopReason = "aborted" | "timeout";

/** Far above the 4,096-byte limit, so any plausible mistake gets checkOutputs' exact message. */
const READ_OUTPUTS_UP_TO = 1024 * 1024;

/** `bytes` is absent when the file is too large to be worth reading. */
export interface OutputsFile {
  size: number;
  bytes?: Uint8Array;
}

export interface AttemptSeed {
  inputs: unknown;
  firstLogLine: string;
  started: number;
}

export class AttemptDir {
  readonly path: string;
  readonly inputs: string;
  readonly outputs: string;
  readonly log: string;

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
    this.outputs = join(this.path, "outputs.json");
    this.log = join(this.path, "log");
  }

  exists(): Promise<boolean> {
    return isPresent(this.path);
  }

  /**
   * Creates the directory with its first files in one rename, so no reader ever sees a
   * half-made attempt, and so exactly one of several racing launchers (in this process or
   * another) wins. Returns false when the attempt already existed.
   */
  async claim(seed: AttemptSeed | { aborted: string } | { lost: string }): Promise<boolean> {
    await mkdir(this.attemptsRoot, { recursive: true });
    const staging = await mkdtemp(join(this.attemptsRoot, `.staging-${this.handle}-`));
    try {
      if ("aborted" in seed) {
        await writeFile(join(staging, "aborted"), seed.aborted);
      } else if ("lost" in seed) {
        await writeFile(join(staging, "lost"), seed.lost);
      } else {
        await writeFile(join(staging, "inputs.json"), JSON.stringify(seed.inputs));
        await writeFile(join(staging, "log"), seed.firstLogLine);
        await writeFile(join(staging, "started"), String(seed.started));
      }
      await rename(staging, this.path);
      return true;
    } catch (e) {
      if (errno(e) === "ENOTEMPTY" || errno(e) === "EEXIST") return false;
      throw e;
    } finally {
      await rm(staging, { recursive: true, force: true });
    }
  }

  writePid(pid: number): Promise<void> {
    return writeAtomic(join(this.path, "pid"), String(pid));
  }

  writeStop(reason: StopReason, why: string): Promise<void> {
    return writeAtomic(join(this.path, reason), why);
  }

  appendLog(line: string): Promise<void> {
    return appendFile(this.log, `${line}\n`);
  }

  readPid(): Promise<number | null> {
    return readInteger(join(this.path, "pid"));
  }

  readStarted(): Promise<number | null> {
    return readInteger(join(this.path, "started"));
  }

  readExit(): Promise<number | null> {
    return readInteger(join(this.path, "exit"));
  }

  /** Abort wins over timeout: the engine asked for it, whatever the clock said. */
  async readStop(): Promise<StopReason | null> {
    if (await isPresent(join(this.path, "aborted"))) return "aborted";
    if (await isPresent(join(this.path, "timeout"))) return "timeout";
    return null;
  }

  /**
   * The outputs file, or null when the task wrote none. A huge file is not read whole: its
   * size is all that is needed to refuse it.
   */
  async readOutputs(): Promise<OutputsFile | null> {
    try {
      const size = (await stat(this.outputs)).size;
      return size > READ_OUTPUTS_UP_TO ? { size } : { size, bytes: await readFile(this.outputs) };
    } catch (e) {
      if (errno(e) === "ENOENT") return null;
      throw e;
    }
  }

  async hasLog(): Promise<boolean> {
    return isPresent(this.log);
  }
}

/** Reads the last `maxBytes` of a file without reading the rest; null when it does not exist. */
export async function readTail(path: string, maxBytes: number): Promise<string | null> {
  let file: Awaited<ReturnType<typeof open>>;
  try {
    file = await open(path, "r");
  } catch (e) {
    if (errno(e) === "ENOENT") return null;
    throw e;
  }
  try {
    const { size } = await file.stat();
    const length = Math.max(0, Math.min(size, Math.floor(maxBytes)));
    const buffer = Buffer.alloc(length);
    const { bytesRead } = await file.read(buffer, 0, length, size - length);
    let start = 0;
    // Do not begin in the middle of a UTF-8 character: skip its continuation bytes.
    while (start < bytesRead && start < 3 && ((buffer[start] ?? 0) & 0xc0) === 0x80) start++;
    return buffer.subarray(start, bytesRead).toString("utf8");
  } finally {
    await file.close();
  }
}

async function writeAtomic(path: string, content: string): Promise<void> {
  const aside = `${path}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
  await writeFile(aside, content);
  await rename(aside, path);
}

async function readInteger(path: string): Promise<number | null> {
  try {
    const text = (await readFile(path, "utf8")).trim();
    return /^\d+$/.test(text) ? Number(text) : null;
  } catch (e) {
    if (errno(e) === "ENOENT") return null;
    throw e;
  }
}

async function isPresent(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (e) {
    if (errno(e) === "ENOENT") return false;
    throw e;
  }
}
