/**
 * The words an execution is told in, declared once (docs/design.md section 6): the states of an
 * execution, of a node and of an attempt, a node's cache status, a node's error and what started
 * an execution. The store's columns and records (db/), the engine, the executors, the API's
 * schemas, the Action, the client and the CLI all take them from here;
 * test/unit/engine/vocabulary.test.ts fails when a second list appears. Renaming or removing a
 * word changes the store's column values and the API: add, never rename.
 */

export const EXECUTION_STATES = [
  "QUEUED",
  "RUNNING",
  "SUCCEEDED",
  "FAILED",
  "ABORTING",
  "ABORTED",
] as const;
export type ExecutionState = (typeof EXECUTION_STATES)[number];

const terminalExecution = [
  "SUCCEEDED",
  "FAILED",
  "ABORTED",
] as const satisfies readonly ExecutionState[];
export type TerminalExecutionState = (typeof terminalExecution)[number];
/** An execution in one of these never changes again. Typed wide, so `.includes(any state)` checks. */
export const TERMINAL_EXECUTION_STATES: readonly ExecutionState[] = terminalExecution;

/** An execution some engine still drives (the store's `executions_active` index covers these). */
export const ACTIVE_EXECUTION_STATES: readonly ExecutionState[] = EXECUTION_STATES.filter(
  (s) => !TERMINAL_EXECUTION_STATES.includes(s),
);

/** Whether an execution in `state` has ended; a string, since the API's documents are read as such. */
export function isTerminalExecutionState(state: string): state is TerminalExecutionState {
  return (TERMINAL_EXECUTION_STATES as readonly string[]).includes(state);
}

export const NODE_STATES = [
  "PENDING",
  "QUEUED",
  "RUNNING",
  "SUCCEEDED",
  "FAILED",
  "SKIPPED",
  "ABORTED",
] as const;
export type NodeState = (typeof NODE_STATES)[number];

const terminalNode = [
  "SUCCEEDED",
  "FAILED",
  "SKIPPED",
  "ABORTED",
] as const satisfies readonly NodeState[];
export type TerminalNodeState = (typeof terminalNode)[number];
/** A node in one of these never runs again in its execution. */
export const TERMINAL_NODE_STATES: readonly NodeState[] = terminalNode;

export function isTerminalNodeState(state: string): state is TerminalNodeState {
  return (TERMINAL_NODE_STATES as readonly string[]).includes(state);
}

/** One run of a node's task: running, or how it ended. */
export const ATTEMPT_STATES = ["RUNNING", "SUCCEEDED", "FAILED", "ABORTED"] as const;
export type AttemptState = (typeof ATTEMPT_STATES)[number];

/**
 * How a node met the cache (docs/design.md section 5): DISABLED (not cacheable), HIT (outputs reused),
 * MISS, POPULATED (a miss that wrote its result), SKIPPED (the lookup skipped: an overwrite),
 * RECOVERED (reused from the parent of a recover relaunch).
 */
export const CACHE_STATUSES = [
  "DISABLED",
  "HIT",
  "MISS",
  "POPULATED",
  "SKIPPED",
  "RECOVERED",
] as const;
export type CacheStatus = (typeof CACHE_STATUSES)[number];

/** How an execution reuses its parent's work: `recover` takes its succeeded nodes as they are. */
export const EXECUTION_MODES = ["normal", "recover"] as const;
export type ExecutionMode = (typeof EXECUTION_MODES)[number];

/** Whose fault a failure is: the task's (`user`) or the platform's (`system`). */
export const ERROR_KINDS = ["user", "system"] as const;
export type ErrorKind = (typeof ERROR_KINDS)[number];

/** Why a node failed, as the engine, the executors, the store and the API carry it. */
export interface NodeError {
  kind: ErrorKind;
  /** A short stable word (`exit`, `timeout`, `oom`, `engine`, ...). */
  reason: string;
  message: string;
  exitCode?: number | null;
}

/** Why an execution ended other than SUCCEEDED, and the node it points at. */
export interface ExecutionError {
  message: string;
  node?: string;
}

/** What started an execution. */
export const TRIGGER_KINDS = [
  "cli",
  "api",
  "action",
  "push",
  "pull_request",
  "comment",
  "check_run",
  "schedule",
] as const;
export type TriggerKind = (typeof TRIGGER_KINDS)[number];

export interface Trigger {
  kind: TriggerKind;
  actor: string;
  pr?: number;
  /**
   * The code comes from a fork's pull request (its head repository is not this one): the
   * execution's tasks get no secrets (docs/design.md section 2). Set by comment commands on such a
   * pull request, and carried by a relaunch at the same commit.
   */
  fork?: boolean;
}
