/**
 * Resolving a node's inputs from its bindings (docs/design.md section 2-3): literals, workflow
 * inputs, upstream outputs, then the task's defaults for anything left unbound.
 */
import { typeMismatch } from "../spec/reader.js";
import type { Binding, InputDecl, JsonValue, TaskSpec } from "../spec/types.js";
import { inputsEnvProblem } from "./input-env.js";
import { UNSTORABLE_HINT, unstorable } from "./storable.js";

export type Resolved =
  | { ok: true; inputs: Record<string, JsonValue> }
  | { ok: false; reason: string };

export function resolveBinding(
  b: Binding,
  workflowInputs: Readonly<Record<string, JsonValue>>,
  upstream: (node: string) => Readonly<Record<string, JsonValue>> | null,
): { ok: true; value: JsonValue } | { ok: false; reason: string } {
  switch (b.kind) {
    case "literal":
      return { ok: true, value: b.value };
    case "input":
      return b.input in workflowInputs
        ? { ok: true, value: workflowInputs[b.input] as JsonValue }
        : { ok: false, reason: `workflow input "${b.input}" has no value` };
    case "output": {
      const outs = upstream(b.node);
      if (!outs || !(b.output in outs))
        return { ok: false, reason: `node "${b.node}" has no output "${b.output}" yet` };
      return { ok: true, value: outs[b.output] as JsonValue };
    }
  }
}

export function resolveNodeInputs(
  task: TaskSpec,
  bindings: Readonly<Record<string, Binding>>,
  workflowInputs: Readonly<Record<string, JsonValue>>,
  upstream: (node: string) => Readonly<Record<string, JsonValue>> | null,
): Resolved {
  const out: Record<string, JsonValue> = {};
  for (const [name, decl] of Object.entries(task.inputs)) {
    const b = bindings[name];
    if (b) {
      const r = resolveBinding(b, workflowInputs, upstream);
      if (!r.ok) return r;
      out[name] = r.value;
    } else if (decl.default !== undefined) {
      out[name] = decl.default;
    } else {
      return { ok: false, reason: `input "${name}" is not bound and has no default` };
    }
  }
  // Upstream outputs are at most 4,096 bytes each, but a task may join many of them.
  const types = Object.fromEntries(Object.entries(task.inputs).map(([n, d]) => [n, d.type]));
  const tooBig = inputsEnvProblem(types, out);
  if (tooBig) return { ok: false, reason: tooBig };
  return { ok: true, inputs: out };
}

/** Workflow inputs given by a person, checked and completed with defaults. */
export function resolveWorkflowInputs(
  declared: Readonly<Record<string, InputDecl>>,
  given: Readonly<Record<string, JsonValue>>,
): Resolved {
  const out: Record<string, JsonValue> = {};
  for (const name of Object.keys(given)) {
    if (!(name in declared)) {
      const known = Object.keys(declared);
      return {
        ok: false,
        reason: `the workflow has no input "${name}" (its inputs: ${known.length ? known.join(", ") : "none"})`,
      };
    }
  }
  for (const [name, decl] of Object.entries(declared)) {
    if (name in given) {
      const mismatch = typeMismatch(decl.type, given[name]);
      if (mismatch) return { ok: false, reason: `input "${name}": ${mismatch}` };
      const bad = unstorable(given[name] as JsonValue, name);
      if (bad) return { ok: false, reason: `input "${name}": ${bad}, ${UNSTORABLE_HINT}` };
      out[name] = given[name] as JsonValue;
    } else if (decl.default !== undefined) out[name] = decl.default;
    else
      return {
        ok: false,
        reason: `input "${name}" (${decl.type}) is required: pass -i ${name}=VALUE`,
      };
  }
  const types = Object.fromEntries(Object.entries(declared).map(([n, d]) => [n, d.type]));
  const tooBig = inputsEnvProblem(types, out);
  if (tooBig) return { ok: false, reason: tooBig };
  return { ok: true, inputs: out };
}
