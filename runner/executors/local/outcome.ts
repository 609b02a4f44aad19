/**
 * How a finished attempt ended, from what its files say (docs/design.md section 3): pure, so every
 * path to an outcome (the child's exit event, polling after a restart) classifies alike.
 */
import { constants } from "node:os";
import { checkOutputs, outputsTooLarge } from "../../../core/engine/outputs.js";
import type { NodeError } from "../../../core/engine/vocabulary.js";
import type { OutputDecl } from "../../../core/spec/types.js";
import type { AttemptOutcome } from "../types.js";
import type { OutputsFile, StopReason } from "./attempt-dir.js";

export interface AttemptFacts {
  /** The runner decided to stop the attempt. */
  stop: StopReason | null;
  /** The runner would not start the task, and why (its secrets cannot be given). */
  refused: string | null;
  /** The error's reason for a refusal: `secrets` (its secrets cannot be given) or `sandbox`. */
  refusedReason?: string;
  /** The command's exit status; null when the wrapper never wrote one. */
  exitCode: number | null;
  outputs: OutputsFile | null;
  /** The wrapper's pid; null when the runner died before recording it. */
  pid: number | null;
  /** The end of the log, to put the reason for a failure where it is read. */
  logTail: string | null;
  /** The log file's path, and whether it exists (an attempt aborted before launch has none). */
  log: string;
  hasLog: boolean;
}

export function classify(
  facts: AttemptFacts,
  declared: Readonly<Record<string, OutputDecl>>,
  timeoutSeconds: number,
): AttemptOutcome {
  const logRef = facts.hasLog ? facts.log : null;
  const fail = (error: NodeError): AttemptOutcome => ({ ok: false, error, logRef });
  if (facts.stop === "aborted") {
    return fail({ kind: "user", reason: "aborted", message: "aborted" });
  }
  if (facts.refused !== null) {
    // Nothing ran: retrying cannot help until the runner's configuration changes.
    return fail({ kind: "user", reason: facts.refusedReason ?? "secrets", message: facts.refused });
  }
  if (facts.stop === "timeout") {
    return fail({ kind: "user", reason: "timeout", message: `timed out after ${timeoutSeconds}s` });
  }
  if (facts.exitCode === null) {
    const what =
      facts.pid === null
        ? "the runner stopped while starting the task, before recording its pid"
        : `the task's wrapper (pid ${facts.pid}) is gone and left no exit status: it was killed with its process group, or the machine restarted`;
    return fail({ kind: "system", reason: "lost", message: withLog(what, facts.logTail) });
  }
  if (facts.exitCode !== 0) {
    const message = withLog(
      `exited with code ${facts.exitCode}${signalNote(facts.exitCode)}`,
      facts.logTail,
    );
    return fail({ kind: "user", reason: "exit", message, exitCode: facts.exitCode });
  }
  if (facts.outputs?.problem !== undefined) {
    const message = `$REPRISE_OUTPUTS must be a regular file the task writes its outputs to as JSON, but the task left ${facts.outputs.problem} there`;
    return fail({ kind: "user", reason: "outputs", message });
  }
  if (facts.outputs !== null && facts.outputs.bytes === undefined) {
    // Too large to have been read (attempt-dir.ts); checkOutputs would say the same, smaller.
    const message = outputsTooLarge(facts.outputs.size);
    return fail({ kind: "user", reason: "outputs", message });
  }
  const checked = checkOutputs(facts.outputs?.bytes ?? null, declared);
  if (!checked.ok) return fail({ kind: "user", reason: "outputs", message: checked.reason });
  // Exit 0 means the wrapper ran, and the wrapper only runs in an attempt with a log.
  return { ok: true, outputs: checked.outputs, logRef: facts.log };
}

/** The shell reports death by signal N as 128 + N. 137 is SIGKILL: locally, often the OOM killer. */
function signalNote(code: number): string {
  if (code <= 128 || code > 128 + 64) return "";
  const signal = code - 128;
  const name = Object.entries(constants.signals).find(([, n]) => n === signal)?.[0];
  const label = name ? `signal ${signal}, ${name}` : `signal ${signal}`;
  return signal === 9
    ? ` (killed by ${label}: out of memory (the OOM killer) or killed from outside)`
    : ` (killed by ${label})`;
}

function withLog(message: string, tail: string | null): string {
  const lines = tail?.trimEnd();
  return lines ? `${message}; last lines of the log:\n${lines}` : message;
}
