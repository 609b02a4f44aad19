/**
 * The local executor (docs/design.md section 7): each attempt is a child process on this machine,
 * started through a wrapper that outlives the runner (wrapper.ts) and whose state is files in
 * the attempt's directory (attempt-dir.ts). A wait therefore works the same for an attempt this
 * process started and for one a dead runner left behind: it watches those files and the
 * wrapper's pid. For a wrapper this process started, the child handle says whether it still
 * runs (no /proc read) and its exit event wakes that attempt's watch, and only that one.
 */
import type { ChildProcess } from "node:child_process";
import { existsSync, rmSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { formatBytes, isArtifactType, shortDigest } from "../../../core/artifacts/ref.js";
import type { BlobStore } from "../../artifacts/store.js";
import type { Checkout } from "../../sources/materialise.js";
import { evictCheckout, evicted, useCheckout } from "../../sources/materialise.js";
import {
  type AttemptIo,
  collectOutputs,
  inputError,
  prepareIo,
  usesArtifacts,
  valueOutputs,
} from "../artifact-io.js";
import { Masker, mask } from "../mask.js";
import { lastBytes } from "../tail.js";
import { AttemptError, type AttemptOutcome, type Executor, type LaunchSpec } from "../types.js";
import { AttemptDir, readTail, type StopReason } from "./attempt-dir.js";
import {
  type CacheLimits,
  cacheEntries,
  chooseVictims,
  DEFAULT_CACHE_LIMITS,
  type EvictionReport,
  evictionNote,
} from "./eviction.js";
import { type AttemptFacts, classify } from "./outcome.js";
import { isInside, workdirIn } from "./paths.js";
import { signalGroup, wrapperAliveNow } from "./process-group.js";
import { detectSandbox, type Sandbox, sandboxArgs, scratchDirs } from "./sandbox.js";
import { type LocalSecretSource, localSecretVariable, resolveLocalSecrets } from "./secrets.js";
import { envProblem, taskEnv } from "./task-env.js";
import { spawnWrapper } from "./wrapper.js";

export interface LocalExecutorOptions {
  /** A directory this executor owns, e.g. `<dataDir>/local`; attempts live in `<root>/attempts`. */
  root: string;
  checkout: Checkout;
  /** What tasks get from the machine (see baseEnvFrom); nothing else of the runner's env leaks. */
  baseEnv: Record<string, string>;
  /**
   * The runner variables tasks may receive as secrets and their values (secrets.ts); none when
   * absent. Their values are masked in every log this executor serves.
   */
  secrets?: LocalSecretSource;
  /** Where `file` and `directory` values live; tasks that use them fail without one. */
  artifacts?: BlobStore;
  /**
   * The sandbox tasks run in (sandbox.ts); by default bwrap when it works here. Without one,
   * untrusted code (a fork's pull request) is refused.
   */
  sandbox?: Sandbox;
  /** Hidden from tasks besides the root (the runner's data directory, README.md "Sandbox"). */
  hide?: readonly string[];
  /** Files tasks must not read (PRIVATE_KEY_PATH): /dev/null in their place. */
  blank?: readonly string[];
  /** Directories every task may write besides its own (REPRISE_SANDBOX_WRITABLE). */
  shared?: readonly string[];
  /** A log longer than this is cut in the middle (REPRISE_LOG_MAX_BYTES); default 64 MiB. */
  logMaxBytes?: number;
  /**
   * Eviction of checkouts and ended attempts (eviction.ts, README.md "Eviction"):
   * REPRISE_CACHE_MAX_BYTES and REPRISE_CACHE_MAX_AGE_DAYS; by default 20 GiB and 14 days.
   */
  cache?: Partial<CacheLimits>;
  /**
   * Where the checkout function puts checkouts, `<dir>/<sha>` or `<dir>/<name>/<sha>`, for
   * eviction; by default `<root>/checkouts` (create.ts and the GitHub App's checkout use it).
   */
  checkoutRoots?: readonly string[];
  /** Told when an eviction fails (the runner's log); by default console.warn. */
  warn?: (message: string) => void;
}

type Lease = { release(): void };

export const DEFAULT_LOG_MAX_BYTES = 64 * 1024 * 1024;
/** Unsandboxed, what a task leaves behind gets TERM, then KILL this many seconds later. */
const UNSANDBOXED_KILL_GRACE_SECONDS = 2;

const NO_SECRETS: LocalSecretSource = { allowed: new Map(), values: new Map() };

/** How often a wait looks at an attempt's files when no exit event will tell it. */
const POLL_MS = 100;
/** Between SIGTERM and SIGKILL of a process group being stopped. */
const KILL_GRACE_MS = 2_000;
/** How long an attempt may have no pid file before it counts as lost: a launch in progress. */
const LAUNCH_GRACE_MS = 10_000;
/** Evictions: after attempts end (at most one pending), and on a timer besides. */
const EVICT_AFTER_END_MS = 1_000;
const EVICT_EVERY_MS = 10 * 60_000;
/** How much of the log a failure message quotes. */
const MESSAGE_LOG_BYTES = 2_048;
const MESSAGE_LOG_LINES = 20;

export class LocalExecutor implements Executor {
  readonly name = "local";
  readonly #attempts: string;
  readonly #checkout: Checkout;
  readonly #baseEnv: Record<string, string>;
  readonly #secrets: LocalSecretSource;
  readonly #artifacts: BlobStore | null;
  /** Masks every allowed secret value in logs served while (or after) attempts run. */
  readonly #allSecretValues: string[];
  /** One watch per handle, however many callers wait for it. */
  readonly #waits = new Map<string, Promise<AttemptOutcome>>();
  /** Pending pauses of watches, by handle; the attempt's exit (or close()) ends them early. */
  readonly #wakers = new Map<string, Set<() => void>>();
  /** Wrappers this process started and has not seen exit yet, by handle. */
  readonly #running = new Map<string, { pid: number; started: number }>();
  /** Checkout directories by repository and SHA, as the checkout function returned them. */
  readonly #checkouts = new Map<string, string>();
  /** Working directories by checkout directory and workdir, resolved and checked (paths.ts). */
  readonly #workdirs = new Map<string, string>();
  /** The checkout directory of each resolved working directory (the sandbox binds it). */
  readonly #checkoutOfWorkdir = new Map<string, string>();
  /** SIGKILLs due after the grace period, by process group. */
  readonly #escalations = new Map<number, NodeJS.Timeout>();
  #closed = false;
  readonly sandbox: Sandbox;
  readonly #root: string;
  readonly #hide: readonly string[];
  readonly #blank: readonly string[];
  readonly #shared: readonly string[];
  readonly #logMaxBytes: number;
  readonly #cache: CacheLimits;
  readonly #checkoutRoots: readonly string[];
  readonly #warn: (message: string) => void;
  /** The checkout each attempt launched here uses, held until its wait ends (eviction skips it). */
  readonly #leases = new Map<string, Lease>();
  /** Attempts whose outcome a wait of this process returned: free to evict. */
  readonly #collected = new Set<string>();
  /** Sizes of entries that no longer change (checkouts, collected attempts), by path. */
  readonly #sizes = new Map<string, number>();
  #evictions: Promise<unknown> = Promise.resolve();
  #evictSoon: NodeJS.Timeout | null = null;
  readonly #evictTimer: NodeJS.Timeout;

  constructor(options: LocalExecutorOptions) {
    this.#attempts = join(resolve(options.root), "attempts");
    this.#checkout = options.checkout;
    this.#baseEnv = { ...options.baseEnv };
    this.#secrets = options.secrets ?? NO_SECRETS;
    this.#artifacts = options.artifacts ?? null;
    this.#allSecretValues = [...this.#secrets.values.values()];
    this.sandbox = options.sandbox ?? detectSandbox("auto");
    this.#root = resolve(options.root);
    this.#hide = options.hide ?? [];
    this.#blank = options.blank ?? [];
    this.#shared = options.shared ?? [];
    this.#logMaxBytes = options.logMaxBytes ?? DEFAULT_LOG_MAX_BYTES;
    this.#cache = { ...DEFAULT_CACHE_LIMITS, ...options.cache };
    this.#checkoutRoots = (options.checkoutRoots ?? [join(this.#root, "checkouts")]).map((d) =>
      resolve(d),
    );
    this.#warn = options.warn ?? ((m) => console.warn(m));
    // At start (what a previous runner left), after attempts end, and every 10 minutes.
    this.#scheduleEviction(0);
    this.#evictTimer = setInterval(() => this.#scheduleEviction(0), EVICT_EVERY_MS);
    this.#evictTimer.unref();
  }

  async launch(spec: LaunchSpec): Promise<void> {
    this.#assertOpen();
    const attempt = new AttemptDir(this.#attempts, spec.handle);
    if (attempt.exists()) return;
    if (spec.command.length === 0) {
      throw new Error(`task "${spec.taskName}" has an empty command; give it a command to run`);
    }
    let firstLogLine = `[reprise] local executor: image "${spec.image}" is ignored; running ${displayCommand(spec.command)} in ${spec.workdir} at ${spec.sha}\n`;
    if (spec.untrusted && this.sandbox.kind === "none") {
      attempt.claim({
        refused: `task "${spec.taskName}" runs code from a fork's pull request, which the local executor runs only in a sandbox, and there is none (${this.sandbox.why}): install bubblewrap (apt-get install bubblewrap) and restart the runner, or use the kubernetes executor`,
        reason: "sandbox",
        firstLogLine,
      });
      this.#wake(spec.handle);
      return;
    }
    const refs = spec.secretRefs ?? [];
    const secrets = resolveLocalSecrets(spec, refs, this.#secrets);
    if (!secrets.ok) {
      // A user failure with the reason in the log and the node's error; nothing runs.
      attempt.claim({ refused: secrets.problem, firstLogLine });
      this.#wake(spec.handle);
      return;
    }
    if (refs.length > 0)
      firstLogLine += `[reprise] secrets: ${refs.map((r) => `${r.env} from ${localSecretVariable(r)}`).join(", ")} (their values are masked in this log)\n`;
    if (spec.withheldSecrets?.length)
      firstLogLine += `[reprise] secrets withheld: the code comes from a fork's pull request, so ${spec.withheldSecrets.join(", ")} ${spec.withheldSecrets.length === 1 ? "is" : "are"} not set\n`;
    const place = await this.#workdir(spec);
    try {
      await this.#start(spec, attempt, firstLogLine, secrets.env, place);
    } catch (e) {
      place.lease.release();
      if (this.#leases.get(spec.handle) === place.lease) this.#leases.delete(spec.handle);
      throw e;
    }
  }

  /**
   * Launches in the leased checkout. The lease is kept (in #leases) once the attempt is claimed,
   * until its wait ends; the caller releases it if this throws.
   */
  async #start(
    spec: LaunchSpec,
    attempt: AttemptDir,
    firstLogLine: string,
    secretEnv: Record<string, string>,
    { workdir, checkout, lease }: { workdir: string; checkout: string; lease: Lease },
  ): Promise<void> {
    const io = usesArtifacts(spec) ? await this.#prepareIo(spec, attempt) : null;
    const env = taskEnv(
      this.#baseEnv,
      { ...spec, inputs: io?.inputs ?? spec.inputs, secrets: { ...spec.secrets, ...secretEnv } },
      { inputs: attempt.inputs, outputs: attempt.outputs },
      io?.env,
    );
    // The task's scratch, in its own directory: a later task never sees what this one left.
    const scratch = scratchDirs(attempt.task);
    env.HOME = scratch.home;
    env.TMPDIR = scratch.tmp;
    const problem = envProblem(env);
    if (problem) {
      if (io) rmSync(io.staging, { recursive: true, force: true });
      throw new Error(`cannot launch task "${spec.taskName}": ${problem}`);
    }

    const startedAt = Date.now();
    const seed = {
      inputs: io?.inputs ?? spec.inputs,
      firstLogLine: firstLogLine + (io?.logLines ?? ""),
      started: startedAt,
      checkout,
      ...(io ? { io: io.staging } : {}),
    };
    if (!attempt.claim(seed)) {
      if (io) rmSync(io.staging, { recursive: true, force: true });
      lease.release();
      return;
    }
    this.#leases.set(spec.handle, lease);

    let pid: number;
    try {
      pid = await started(
        spawnWrapper({
          attemptDir: attempt.path,
          workdir,
          command: this.#sandboxed(attempt, workdir, io !== null, spec.command),
          env,
          killGraceSeconds: this.sandbox.kind === "bwrap" ? 0 : UNSANDBOXED_KILL_GRACE_SECONDS,
        }),
        () => {
          this.#running.delete(spec.handle);
          this.#wake(spec.handle);
        },
      );
    } catch (e) {
      attempt.appendLog(`[reprise] could not start the task: ${(e as Error).message}`);
      throw new Error(`could not start task "${spec.taskName}": ${(e as Error).message}`, {
        cause: e,
      });
    }
    this.#running.set(spec.handle, { pid, started: startedAt });
    attempt.writePid(pid);
    // An abort that arrived while the pid was unknown could not signal anything; do it now.
    if (attempt.readStop() !== null) this.#stopGroup(pid);
  }

  wait(spec: LaunchSpec): Promise<AttemptOutcome> {
    if (this.#closed) return Promise.reject(closedError());
    const existing = this.#waits.get(spec.handle);
    if (existing) return existing;
    const watch = this.#watch(spec)
      .then((outcome) => {
        this.#collected.add(spec.handle);
        return outcome;
      })
      .finally(() => {
        this.#waits.delete(spec.handle);
        this.#release(spec.handle);
        this.#scheduleEviction(EVICT_AFTER_END_MS);
      });
    this.#waits.set(spec.handle, watch);
    return watch;
  }

  async abort(handle: string): Promise<void> {
    this.#assertOpen();
    const attempt = new AttemptDir(this.#attempts, handle);
    // Not launched yet: leave an aborted attempt in its place, so a late launch does nothing.
    if (!attempt.exists() && attempt.claim({ aborted: "aborted before launch" })) return;
    if (attempt.readExit() !== null) return;
    this.#markStopped(attempt, "aborted", "aborted");
    const pid = attempt.readPid();
    if (pid !== null && this.#alive(attempt, pid)) this.#stopGroup(pid);
    this.#wake(handle);
  }

  async logTail(logRef: string, maxBytes: number): Promise<string | null> {
    const path = resolve(logRef);
    // Only logs of this executor's attempts: a logRef is data, not a licence to read any file.
    if (basename(path) !== "log" || !isInside(this.#attempts, path)) return null;
    // The note is written before the log is removed: once it is there, the attempt is evicted,
    // whatever of its files the eviction has not removed yet.
    const evicted = this.#evictedNote(path, maxBytes);
    if (evicted !== null) return evicted;
    const masker = new Masker(this.#allSecretValues);
    if (!masker.active) return readTail(path, maxBytes) ?? this.#evictedNote(path, maxBytes);
    // A running attempt's log is not masked on disk yet (an ended one is: #watch), so mask what
    // is served with every value tasks may receive. Read a value's length more, so a value cut
    // at the start of the tail is masked whole, then keep the last maxBytes.
    const text = readTail(path, maxBytes + masker.longest);
    if (text === null) return this.#evictedNote(path, maxBytes);
    const masked = Buffer.concat([masker.push(Buffer.from(text, "utf8")), masker.end()]);
    return lastBytes(masked, maxBytes);
  }

  /** Stops watching; tasks keep running (a later runner re-attaches), but stops in progress finish now. */
  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#evictTimer);
    if (this.#evictSoon) clearTimeout(this.#evictSoon);
    this.#evictSoon = null;
    // Its attempts may run on; their `checkout` files keep their checkouts from eviction.
    for (const handle of [...this.#leases.keys()]) this.#release(handle);
    for (const handle of [...this.#wakers.keys()]) this.#wake(handle);
    for (const [pgid, timer] of this.#escalations) {
      clearTimeout(timer);
      signalGroup(pgid, "SIGKILL");
    }
    this.#escalations.clear();
  }

  /**
   * The command behind bwrap (sandbox.ts): the machine read-only, the data directory and the
   * executor's root hidden, then this attempt's checkout and inputs bound back read-only, and
   * what it writes (task/, io/out) writable.
   */
  #sandboxed(
    attempt: AttemptDir,
    workdir: string,
    hasIo: boolean,
    command: readonly string[],
  ): readonly string[] {
    if (this.sandbox.kind !== "bwrap") return command;
    const checkout = this.#checkoutOfWorkdir.get(workdir) ?? workdir;
    const readOnly = [checkout, attempt.inputs];
    const writable = [attempt.task];
    if (hasIo) {
      readOnly.push(join(attempt.io, "in"));
      writable.push(join(attempt.io, "out"));
    }
    const view = {
      hide: [this.#root, ...this.#hide],
      blank: this.#blank,
      shared: this.#shared,
      readOnly,
      writable,
      chdir: existsSync(workdir) ? workdir : checkout,
    };
    return [...sandboxArgs(this.sandbox, view), ...command];
  }

  /**
   * The attempt's artifact inputs, materialised (and checked against their digests) in a staging
   * directory that the claim moves into the attempt, and the paths of its artifact outputs.
   */
  async #prepareIo(
    spec: LaunchSpec,
    attempt: AttemptDir,
  ): Promise<AttemptIo & { staging: string; logLines: string }> {
    const staging = attempt.ioStaging();
    try {
      const io = await prepareIo(this.#artifacts, spec, staging, attempt.io);
      let logLines = "";
      for (const [name, type] of Object.entries(spec.inputTypes ?? {})) {
        const ref = spec.inputs[name] as { artifact?: string; size?: number } | undefined;
        if (isArtifactType(type) && ref?.artifact)
          logLines += `[reprise] input ${name}: ${type} ${shortDigest(ref.artifact)} (${formatBytes(ref.size ?? 0)}) at ${io.inputs[name]}\n`;
      }
      return { ...io, staging, logLines };
    } catch (e) {
      rmSync(staging, { recursive: true, force: true });
      throw new AttemptError(inputError(e));
    }
  }

  /**
   * The directory to run in: the checkout of the SHA, looked up once per repository and SHA
   * (again only if it has been removed since), leased so eviction leaves it alone, and the
   * workdir in it, resolved once. Both are immutable: a SHA names its content, and nothing
   * writes to a checkout but the tasks.
   */
  async #workdir(spec: LaunchSpec): Promise<{ workdir: string; checkout: string; lease: Lease }> {
    const key = `${spec.repo}\0${spec.sha}`;
    let checkout = this.#checkouts.get(key);
    let lease: Lease | null = null;
    for (;;) {
      if (checkout === undefined || !existsSync(checkout)) {
        checkout = await this.#checkout(spec.repo, spec.sha);
        this.#checkouts.set(key, checkout);
      }
      // Leased and seen there in one synchronous step: an eviction either saw the lease and
      // skipped it, or had begun (then wait for it and check out again), or is done (it is gone).
      lease = useCheckout(checkout);
      if (lease && existsSync(checkout)) break;
      lease?.release();
      await evicted(checkout);
      checkout = undefined;
    }
    try {
      const where = `${checkout}\0${spec.workdir}`;
      let workdir = this.#workdirs.get(where);
      if (workdir === undefined) {
        workdir = await workdirIn(checkout, spec.workdir);
        this.#workdirs.set(where, workdir);
        this.#checkoutOfWorkdir.set(workdir, checkout);
      }
      return { workdir, checkout, lease };
    } catch (e) {
      lease.release();
      throw e;
    }
  }

  /**
   * Level-triggered, like the engine: each round reads what the files say now. The wrapper
   * writing `exit`, or the wrapper being gone, ends the watch; a passed deadline or an abort
   * marker (from any process) gets the group stopped, and the wrapper's death then ends it.
   */
  async #watch(spec: LaunchSpec): Promise<AttemptOutcome> {
    const attempt = new AttemptDir(this.#attempts, spec.handle);
    const own = this.#running.get(spec.handle);
    // Never launched (its runner died between recording and launching it), or a stalled runner
    // is launching it right now. Claiming the directory as lost settles which: a late launch
    // then finds it taken and does nothing, so one attempt never becomes two processes.
    if (!own && !attempt.exists() && attempt.claim({ lost: "never launched" })) {
      const message = `no attempt "${spec.handle}" was launched (${attempt.path} did not exist)`;
      return { ok: false, error: { kind: "system", reason: "lost", message }, logRef: null };
    }
    const started = own ? own.started : attempt.readStarted();
    const deadline =
      started === null ? Number.POSITIVE_INFINITY : started + spec.timeoutSeconds * 1000;
    let signalled = false;
    let exitCode: number | null = null;
    for (;;) {
      attempt.capLog(this.#logMaxBytes);
      exitCode = attempt.readExit();
      if (exitCode !== null) break;
      const pid = this.#running.get(spec.handle)?.pid ?? attempt.readPid();
      if (pid === null) {
        if (started === null || Date.now() - started > LAUNCH_GRACE_MS) break;
      } else {
        if (!this.#alive(attempt, pid)) break;
        let stop = attempt.readStop();
        if (stop === null && Date.now() >= deadline) {
          this.#markStopped(attempt, "timeout", `timed out after ${spec.timeoutSeconds}s`);
          stop = "timeout";
        }
        if (stop !== null && !signalled) {
          this.#stopGroup(pid);
          signalled = true;
        }
      }
      const untilDeadline = deadline - Date.now();
      await this.#pause(
        spec.handle,
        untilDeadline > 0 ? Math.min(POLL_MS, untilDeadline) : POLL_MS,
      );
      if (this.#closed) {
        throw new Error(`the local executor was closed while waiting for attempt "${spec.handle}"`);
      }
    }
    return this.#outcome(spec, attempt, exitCode);
  }

  /**
   * The ended attempt's outcome, its secrets masked first: in the stored log (rewritten once the
   * task is done) and in the error message, which quotes the log or the outputs.
   */
  async #outcome(
    spec: LaunchSpec,
    attempt: AttemptDir,
    exitCode: number | null,
  ): Promise<AttemptOutcome> {
    attempt.capLog(this.#logMaxBytes);
    const values = this.#attemptSecretValues(spec);
    if (values.length > 0) await attempt.maskLog(values);
    const facts = this.#facts(attempt, exitCode);
    const outcome = classify(facts, valueOutputs(spec.outputs), spec.timeoutSeconds);
    if (outcome.ok)
      return usesArtifacts(spec) ? this.#storeOutputs(spec, attempt, outcome) : outcome;
    if (values.length === 0) return outcome;
    let message = outcome.error.message;
    const bytes = facts.outputs?.bytes;
    if (outcome.error.reason === "outputs" && bytes) {
      // The reason may quote the outputs cut short (a JSON parse error's snippet, a long string):
      // a value cut in two would escape masking, so say it of the outputs with the values masked.
      const masker = new Masker(values);
      const masked = Buffer.concat([masker.push(bytes), masker.end()]);
      const again =
        masker.masked > 0
          ? classify(
              { ...facts, outputs: { size: masked.length, bytes: masked } },
              spec.outputs,
              spec.timeoutSeconds,
            )
          : null;
      if (again && !again.ok) message = again.error.message;
    }
    return { ...outcome, error: { ...outcome.error, message: mask(message, values) } };
  }

  /**
   * Stores the artifact outputs of an attempt that succeeded, before its success is reported:
   * the engine records it only with every artifact in the store. Stored again after a restart,
   * which costs a hash and finds the blobs there.
   */
  async #storeOutputs(
    spec: LaunchSpec,
    attempt: AttemptDir,
    outcome: Extract<AttemptOutcome, { ok: true }>,
  ): Promise<AttemptOutcome> {
    const collected = await collectOutputs(this.#artifacts, spec, attempt.io, outcome.outputs);
    if (!collected.ok) {
      attempt.appendLog(`[reprise] ${collected.error.message}`);
      return { ok: false, error: collected.error, logRef: outcome.logRef };
    }
    for (const [name, decl] of Object.entries(spec.outputs)) {
      const ref = collected.outputs[name] as { artifact: string; size: number; files?: number };
      if (isArtifactType(decl.type))
        attempt.appendLog(
          `[reprise] output ${name}: ${decl.type} ${shortDigest(ref.artifact)} (${formatBytes(ref.size)}${ref.files !== undefined ? `, ${ref.files} files` : ""}) stored in ${this.#artifacts?.location}`,
        );
    }
    return { ...outcome, outputs: collected.outputs };
  }

  /** The values this attempt's task received (as this runner resolves them: the same variables). */
  #attemptSecretValues(spec: LaunchSpec): string[] {
    const values = Object.values(spec.secrets);
    for (const ref of spec.secretRefs ?? []) {
      const value = this.#secrets.values.get(localSecretVariable(ref));
      if (value !== undefined) values.push(value);
    }
    return values;
  }

  /**
   * Whether the wrapper still runs. One this process started and has not seen exit cannot be
   * gone (nor its pid reused: it is not reaped before its exit event); any other is asked of
   * the system.
   */
  #alive(attempt: AttemptDir, pid: number): boolean {
    if (this.#running.get(attempt.handle)?.pid === pid) return true;
    return wrapperAliveNow(pid, attempt.path);
  }

  /**
   * What classify needs, and no more: the log's tail only for a failure that quotes it. An exit
   * status already read is final (the wrapper writes it once, as it ends).
   */
  #facts(attempt: AttemptDir, exitSeen: number | null): AttemptFacts {
    const stop = attempt.readStop();
    const exitCode = exitSeen ?? attempt.readExit();
    // Only an attempt with no process has no exit status: a refused one is among them.
    const refused = exitCode === null && stop === null ? attempt.readRefused() : null;
    const pid = exitCode === null ? attempt.readPid() : null;
    const hasLog = attempt.hasLog();
    const outputs = stop === null && exitCode === 0 ? attempt.readOutputs() : null;
    const quoted = stop === null && exitCode !== 0 && hasLog;
    const tail = quoted ? readTail(attempt.log, MESSAGE_LOG_BYTES) : null;
    const logTail =
      tail === null ? null : tail.trimEnd().split("\n").slice(-MESSAGE_LOG_LINES).join("\n");
    const refusedReason = refused === null ? undefined : attempt.readRefusedReason();
    return {
      stop,
      refused,
      ...(refusedReason ? { refusedReason } : {}),
      exitCode,
      pid,
      outputs,
      logTail,
      log: attempt.log,
      hasLog,
    };
  }

  /**
   * Evicts now what is over the limits (eviction.ts), after any eviction under way; runs at
   * start, after attempts end and every 10 minutes by itself.
   */
  evict(): Promise<EvictionReport> {
    const run = this.#evictions.then(() => this.#evictOnce());
    this.#evictions = run.catch(() => undefined);
    return run;
  }

  #scheduleEviction(ms: number): void {
    if (this.#closed || this.#evictSoon) return;
    this.#evictSoon = setTimeout(() => {
      this.#evictSoon = null;
      if (this.#closed) return;
      this.evict().catch((e) =>
        this.#warn(`local executor: eviction failed: ${(e as Error).message}`),
      );
    }, ms);
    this.#evictSoon.unref();
  }

  async #evictOnce(): Promise<EvictionReport> {
    const entries = await cacheEntries({
      attemptsRoot: this.#attempts,
      checkoutRoots: this.#checkoutRoots,
      mine: (h) => this.#leases.has(h) || this.#waits.has(h) || this.#running.has(h),
      alive: (attempt, pid) => this.#alive(attempt, pid),
      collected: (h) => this.#collected.has(h),
      sizes: this.#sizes,
      closed: () => this.#closed,
    });
    const at = new Date();
    const report: EvictionReport = { evicted: [], bytes: 0 };
    let total = entries.reduce((sum, e) => sum + e.bytes, 0);
    for (const { entry, why } of chooseVictims(entries, this.#cache, at.getTime())) {
      if (this.#closed) break;
      try {
        if (entry.kind === "checkout") {
          if (!(await evictCheckout(entry.path))) continue;
        } else {
          const handle = basename(entry.path);
          // Launched or waited for since the scan: in use after all.
          if (this.#leases.has(handle) || this.#waits.has(handle)) continue;
          await new AttemptDir(this.#attempts, handle).evict(evictionNote(why, this.#cache, at));
        }
      } catch (e) {
        this.#warn(`local executor: could not evict ${entry.path}: ${(e as Error).message}`);
        continue;
      }
      this.#sizes.delete(entry.path);
      if (entry.kind === "attempt") this.#collected.delete(basename(entry.path));
      total -= entry.bytes;
      report.evicted.push({ kind: entry.kind, path: entry.path, bytes: entry.bytes, why });
    }
    report.bytes = total;
    return report;
  }

  #release(handle: string): void {
    this.#leases.get(handle)?.release();
    this.#leases.delete(handle);
  }

  /** What an evicted attempt's log reads as (its note), or null when there is no log. */
  #evictedNote(log: string, maxBytes: number): string | null {
    try {
      const note = new AttemptDir(this.#attempts, basename(dirname(log))).readEvicted();
      return note === null ? null : lastBytes(note, maxBytes);
    } catch {
      return null;
    }
  }

  #markStopped(attempt: AttemptDir, reason: StopReason, why: string): void {
    attempt.writeStop(reason, why);
    attempt.appendLog(`[reprise] ${why}: stopping the task's process group`);
  }

  /** SIGTERM now, SIGKILL after the grace period for whatever ignored it. */
  #stopGroup(pgid: number): void {
    signalGroup(pgid, "SIGTERM");
    if (this.#escalations.has(pgid)) return;
    const timer = setTimeout(() => {
      this.#escalations.delete(pgid);
      signalGroup(pgid, "SIGKILL");
    }, KILL_GRACE_MS);
    // A runner that is otherwise done need not stay up for this (close() sends it at once).
    timer.unref();
    this.#escalations.set(pgid, timer);
  }

  #pause(handle: string, ms: number): Promise<void> {
    return new Promise((resolve) => {
      let wakers = this.#wakers.get(handle);
      if (!wakers) {
        wakers = new Set();
        this.#wakers.set(handle, wakers);
      }
      const own = wakers;
      const wake = () => {
        clearTimeout(timer);
        own.delete(wake);
        if (own.size === 0 && this.#wakers.get(handle) === own) this.#wakers.delete(handle);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      own.add(wake);
    });
  }

  #wake(handle: string): void {
    const wakers = this.#wakers.get(handle);
    if (wakers) for (const wake of [...wakers]) wake();
  }

  #assertOpen(): void {
    if (this.#closed) throw closedError();
  }
}

function closedError(): Error {
  return new Error("the local executor is closed; create a new one");
}

/** The wrapper's pid once it runs, or the reason it could not start (no /bin/sh, bad cwd). */
function started(child: ChildProcess, onExit: () => void): Promise<number> {
  return new Promise((resolve, reject) => {
    child.once("error", reject);
    child.once("exit", onExit);
    if (child.pid !== undefined) resolve(child.pid);
  });
}

/** The command as a user would type it; arguments with spaces or quotes shown as JSON strings. */
function displayCommand(command: readonly string[]): string {
  return command.map((arg) => (/^[\w@%+=:,./-]+$/.test(arg) ? arg : JSON.stringify(arg))).join(" ");
}
