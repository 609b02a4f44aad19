/**
 * The executor interface (docs/design.md section 7): one contract, two implementations (local
 * processes, Kubernetes Jobs), one contract test suite. The engine persists an attempt under its
 * deterministic handle *before* launching it, so launch must be idempotent by handle and a
 * restarted runner re-attaches to whatever the handle names.
 */

import type { NodeError } from "../../core/engine/vocabulary.js";
import type {
  JsonValue,
  OutputDecl,
  Resources,
  SecretRef,
  ValueType,
} from "../../core/spec/types.js";

export interface LaunchSpec {
  /** Deterministic, DNS-1123, at most 63 characters (core/engine/attempt-name.ts). */
  handle: string;
  repo: string;
  sha: string;
  executionId: string;
  nodeId: string;
  attempt: number;
  taskName: string;
  taskDigest: string;
  image: string;
  command: string[];
  env: Record<string, string>;
  /** Repository-relative working directory. */
  workdir: string;
  inputs: Record<string, JsonValue>;
  /**
   * The declared type of each input: `file` and `directory` inputs hold artifact values, which
   * the executor materialises and hands to the task as paths (DESIGN: task I/O). Absent: none.
   */
  inputTypes?: Record<string, ValueType>;
  /** `file` and `directory` outputs are written at REPRISE_OUTPUT_<NAME> and stored as artifacts. */
  outputs: Record<string, OutputDecl>;
  timeoutSeconds: number;
  /**
   * Secret values already resolved for this attempt, env name -> value (never stored, never in a
   * digest); the engine passes none: each executor resolves `secretRefs` itself.
   */
  secrets: Record<string, string>;
  /**
   * The task's `secrets` as references (env name -> Secret name and key). Kubernetes resolves
   * them in the pod (secretKeyRef), so their values never pass through Reprise; the local
   * executor reads them from the runner's environment variables that REPRISE_LOCAL_SECRETS
   * allows (local/README.md). Empty when the execution's code comes from a fork.
   */
  secretRefs?: SecretRef[];
  /**
   * Env names of the task's secrets that were withheld because the execution's code comes from
   * a fork's pull request (docs/design.md section 2): the task runs without them, and the executor
   * says so in the attempt's log.
   */
  withheldSecrets?: string[];
  /**
   * The code comes from a fork's pull request: it runs only where it cannot reach the runner
   * (the local executor's sandbox, a pod); without one, the attempt is refused (reason `sandbox`).
   */
  untrusted?: boolean;
  /** The task's `resources` (requests; memory is also the limit). */
  resources?: Resources;
  /** The node's cache key, when the task is cached (labels, for finding a key's attempts). */
  cacheKey?: string | null;
}

/**
 * A launch that could not start the task for a reason the node's error should carry as it is
 * (an input artifact the store lost, say), instead of a generic executor failure.
 */
export class AttemptError extends Error {
  override readonly name = "AttemptError";
  constructor(readonly error: NodeError) {
    super(error.message);
  }
}

export type AttemptOutcome =
  | { ok: true; outputs: Record<string, JsonValue>; logRef: string }
  | { ok: false; error: NodeError; logRef: string | null };

export interface Executor {
  readonly name: string;
  /** Starts the attempt, or does nothing when an attempt with this handle already exists. */
  launch(spec: LaunchSpec): Promise<void>;
  /**
   * Resolves when the attempt has finished, however long that takes, including for an attempt
   * launched by a runner that has since died. An attempt that vanished resolves as a system
   * failure ("lost").
   */
  wait(spec: LaunchSpec): Promise<AttemptOutcome>;
  /** Stops the attempt (process group / Job) if it runs; its outcome then reports ABORTED. */
  abort(handle: string): Promise<void>;
  /** The last `maxBytes` of the attempt's log, or null when there is none. */
  logTail(logRef: string, maxBytes: number): Promise<string | null>;
  close(): Promise<void>;
}
