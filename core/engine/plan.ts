/**
 * The engine's decision function (docs/design.md section 6): from the persisted state of one
 * execution to the next actions. Level-triggered: it looks only at the state, never at what
 * happened before, so running it again after a crash gives the same answer. The engine performs
 * the actions and persists every transition; this function does no I/O.
 */
import { dependencyMap } from "../dag/workflow-deps.js";
import type { JsonValue, TaskSpec, WorkflowSpec } from "../spec/types.js";
import { resolveBinding, resolveNodeInputs } from "./inputs.js";
import {
  type ExecutionError,
  type ExecutionState,
  isTerminalExecutionState,
  type NodeError,
  type NodeState,
  TERMINAL_NODE_STATES,
  type TerminalExecutionState,
} from "./vocabulary.js";

export interface NodeView {
  state: NodeState;
  outputs: Readonly<Record<string, JsonValue>> | null;
  error?: { message: string } | null;
}

export interface PlanInput {
  state: ExecutionState;
  workflow: WorkflowSpec;
  tasks: Readonly<Record<string, TaskSpec>>;
  inputs: Readonly<Record<string, JsonValue>>;
  nodes: Readonly<Record<string, NodeView>>;
}

export type Action =
  | { kind: "start" }
  /** Dependencies all succeeded: the node's inputs are known; the engine decides cache or run. */
  | { kind: "ready"; node: string; inputs: Record<string, JsonValue> }
  /** An upstream node failed for good (or was skipped): this one will never run. */
  | { kind: "skip"; node: string; upstream: string }
  /** Inputs could not be resolved (an upstream output is missing): a failure of this node. */
  | { kind: "fail"; node: string; reason: string }
  /** Queued nodes that may be launched, in a stable order; the engine applies capacity. */
  | { kind: "launch"; nodes: string[] }
  /** Abort requested: these nodes stop (running ones are killed, the others never start). */
  | { kind: "abort"; nodes: string[] }
  | {
      kind: "finish";
      state: TerminalExecutionState;
      outputs: Record<string, JsonValue> | null;
      error: ExecutionError | null;
    };

export function plan(input: PlanInput): Action[] {
  const { state, workflow, nodes } = input;
  if (isTerminalExecutionState(state)) return [];
  const ids = Object.keys(workflow.nodes).sort();

  if (state === "ABORTING") {
    const active = ids.filter((id) => !TERMINAL_NODE_STATES.includes(stateOf(nodes, id)));
    if (active.length > 0) return [{ kind: "abort", nodes: active }];
    return [{ kind: "finish", state: "ABORTED", outputs: null, error: { message: "aborted" } }];
  }

  const actions: Action[] = [];
  if (state === "QUEUED") actions.push({ kind: "start" });
  const deps = dependencyMap(workflow);
  const upstream = (node: string) => nodes[node]?.outputs ?? null;

  // Work in topological layers within one plan, so a whole chain of skips lands at once.
  const effective = new Map<string, NodeState>(ids.map((id) => [id, stateOf(nodes, id)]));
  let changed = true;
  while (changed) {
    changed = false;
    for (const id of ids) {
      if (effective.get(id) !== "PENDING") continue;
      const blocked = (deps.get(id) ?? []).find((d) =>
        ["FAILED", "SKIPPED", "ABORTED"].includes(effective.get(d) as NodeState),
      );
      if (blocked !== undefined) {
        actions.push({ kind: "skip", node: id, upstream: blocked });
        effective.set(id, "SKIPPED");
        changed = true;
      }
    }
  }

  for (const id of ids) {
    if (effective.get(id) !== "PENDING") continue;
    if (!(deps.get(id) ?? []).every((d) => effective.get(d) === "SUCCEEDED")) continue;
    const node = workflow.nodes[id];
    const task = node ? input.tasks[node.task] : undefined;
    if (!node || !task) {
      actions.push({
        kind: "fail",
        node: id,
        reason: `task "${node?.task}" is missing from the version`,
      });
      continue;
    }
    const resolved = resolveNodeInputs(task, node.inputs, input.inputs, upstream);
    if (resolved.ok) actions.push({ kind: "ready", node: id, inputs: resolved.inputs });
    else actions.push({ kind: "fail", node: id, reason: resolved.reason });
  }

  const queued = ids.filter((id) => effective.get(id) === "QUEUED");
  if (queued.length > 0) actions.push({ kind: "launch", nodes: queued });

  // Finished when no node can still change; the actions above change some, so wait for them.
  const settled =
    !actions.some((a) => a.kind !== "start") &&
    ids.every((id) => TERMINAL_NODE_STATES.includes(effective.get(id) as NodeState));
  if (settled) actions.push(finish(input, ids, effective));
  return actions;
}

function stateOf(nodes: Readonly<Record<string, NodeView>>, id: string): NodeState {
  return nodes[id]?.state ?? "PENDING";
}

function finish(input: PlanInput, ids: string[], states: Map<string, NodeState>): Action {
  const failed = ids.find((id) => states.get(id) === "FAILED");
  if (failed !== undefined || ids.some((id) => states.get(id) !== "SUCCEEDED")) {
    const node = failed ?? ids.find((id) => states.get(id) !== "SUCCEEDED");
    const why = node ? input.nodes[node]?.error?.message : undefined;
    return {
      kind: "finish",
      state: "FAILED",
      outputs: null,
      error: {
        message: `node "${node}" failed${why ? `: ${why}` : ""}`,
        ...(node ? { node } : {}),
      },
    };
  }
  const outputs: Record<string, JsonValue> = {};
  for (const [name, b] of Object.entries(input.workflow.outputs)) {
    const r = resolveBinding(b, input.inputs, (n) => input.nodes[n]?.outputs ?? null);
    if (!r.ok)
      return {
        kind: "finish",
        state: "FAILED",
        outputs: null,
        error: { message: `workflow output "${name}": ${r.reason}` },
      };
    outputs[name] = r.value;
  }
  return { kind: "finish", state: "SUCCEEDED", outputs, error: null };
}

/** docs/design.md section 3: system failures are retried up to 3 times, not counted against `retries`. */
export const MAX_SYSTEM_RETRIES = 3;

export interface FailureCounts {
  userFailures: number;
  systemFailures: number;
}

/** After a failed attempt: retry, or fail the node for good. */
/**
 * Failures a retry cannot change: an abort, and secrets the runner does not have (it reads them
 * once, when it starts), which fail every attempt the same way.
 */
const FINAL_REASONS = new Set(["aborted", "secrets"]);

export function afterFailure(
  task: Pick<TaskSpec, "retries">,
  counts: FailureCounts,
  error: Pick<NodeError, "kind" | "reason">,
): { retry: boolean } & FailureCounts {
  if (FINAL_REASONS.has(error.reason)) return { retry: false, ...counts };
  if (error.kind === "system") {
    const systemFailures = counts.systemFailures + 1;
    return {
      retry: systemFailures <= MAX_SYSTEM_RETRIES,
      userFailures: counts.userFailures,
      systemFailures,
    };
  }
  const userFailures = counts.userFailures + 1;
  return {
    retry: userFailures <= task.retries,
    userFailures,
    systemFailures: counts.systemFailures,
  };
}
