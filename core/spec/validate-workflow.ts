/** Reads one workflow: its nodes, their bindings, the graph, outputs and triggers. */

import { isArtifactType } from "../artifacts/ref.js";
import { findCycles } from "../dag/graph.js";
import { parseBinding } from "./expressions.js";
import { NAME, NAME_RULE, PARAM_NAME, PARAM_RULE } from "./names.js";
import {
  asJson,
  type Collector,
  describe,
  readMapping,
  readNamedMapping,
  readString,
  readStringList,
  typeMismatch,
} from "./reader.js";
import { suggest } from "./suggest.js";
import type {
  Binding,
  EventTrigger,
  InputDecl,
  JsonValue,
  NodeSpec,
  ScheduleTrigger,
  Triggers,
  ValueType,
  WorkflowSpec,
} from "./types.js";
import { cronProblem } from "./units.js";
import { type ReadTask, readParams } from "./validate-task.js";
import type { PathSegment } from "./yaml-source.js";

/** docs/design.md section 2. */
export const MAX_NODES = 10_000;

const WORKFLOW_KEYS = ["inputs", "nodes", "outputs", "on"] as const;
const NODE_KEYS = ["task", "inputs", "after"] as const;

export function readWorkflow(
  c: Collector,
  name: string,
  raw: unknown,
  tasks: ReadonlyMap<string, ReadTask>,
): WorkflowSpec {
  const path: PathSegment[] = ["workflows", name];
  const what = `workflow "${name}"`;
  const wf: WorkflowSpec = {
    name,
    inputs: {},
    nodes: {},
    outputs: {},
    on: { push: null, pullRequest: null, schedule: [] },
  };
  const m = readMapping(c, raw, path, what, WORKFLOW_KEYS);
  if (!m) return wf;

  let inputsOk = true;
  if (m.inputs !== undefined) {
    const inputs = readParams(c, m.inputs, [...path, "inputs"], `${what}: inputs`, true);
    if (inputs) wf.inputs = inputs;
    else inputsOk = false;
  }

  if (m.nodes === undefined) {
    c.error("E_REQUIRED", path, `${what} has no nodes: add nodes: { ID: { task: NAME } }`, "key");
    return wf;
  }
  const rawNodes = readNamedMapping(c, m.nodes, [...path, "nodes"], `${what}: nodes`);
  if (!rawNodes) return wf;
  const ids = Object.keys(rawNodes);
  if (ids.length === 0) {
    c.error("E_VALUE", [...path, "nodes"], `${what} must have at least one node`);
    return wf;
  }
  if (ids.length > MAX_NODES) {
    c.error(
      "E_LIMIT",
      [...path, "nodes"],
      `${what} has ${ids.length} nodes; the limit is ${MAX_NODES}`,
      "key",
    );
    return wf;
  }

  // First pass: shapes, so that references between nodes can be checked in any order.
  const shaped = new Map<
    string,
    { task: string | null; inputs: Record<string, unknown>; after: string[] }
  >();
  for (const id of ids) {
    const at = [...path, "nodes", id];
    if (!NAME.test(id)) {
      c.error("E_NAME", at, `${what}: node id "${id}" is not valid (${NAME_RULE})`, "key");
      continue;
    }
    const nm = readMapping(c, rawNodes[id], at, `${what}: node "${id}"`, NODE_KEYS);
    if (!nm) continue;
    let task: string | null = null;
    if (nm.task === undefined)
      c.error("E_REQUIRED", at, `${what}: node "${id}" has no task`, "key");
    else task = readString(c, nm.task, [...at, "task"], `${what}: node "${id}": task`);
    const inputs =
      nm.inputs === undefined
        ? {}
        : readNamedMapping(c, nm.inputs, [...at, "inputs"], `${what}: node "${id}": inputs`);
    const after =
      nm.after === undefined
        ? []
        : (readStringList(c, nm.after, [...at, "after"], `${what}: node "${id}": after`) ?? []);
    shaped.set(id, { task, inputs: inputs ?? {}, after });
  }

  const env: BindingEnv = { what, path, inputs: wf.inputs, inputsOk, nodes: shaped, tasks };
  const deps = new Map<string, string[]>();
  for (const [id, node] of shaped) {
    const at = [...path, "nodes", id];
    const spec: NodeSpec = { id, task: node.task ?? "", inputs: {}, after: [] };
    const nodeDeps = new Set<string>();
    const task = node.task === null ? undefined : tasks.get(node.task);
    if (node.task !== null && task === undefined) {
      const hint = suggest(node.task, tasks.keys());
      c.error(
        "E_UNKNOWN_TASK",
        [...at, "task"],
        `${what}: node "${id}" uses task "${node.task}", which is not defined${hint ? `; did you mean "${hint}"?` : ""}`,
      );
    }
    for (const [input, raw] of Object.entries(node.inputs)) {
      const bindAt = [...at, "inputs", input];
      const decl = task?.task.inputs[input];
      if (task?.interfaceOk && decl === undefined) {
        const known = Object.keys(task.task.inputs);
        c.error(
          "E_UNKNOWN_INPUT",
          bindAt,
          `${what}: node "${id}" binds "${input}", which is not an input of task "${node.task}" (its inputs: ${known.length ? known.join(", ") : "none"})`,
          "key",
        );
      }
      const binding = checkBinding(
        c,
        env,
        raw,
        bindAt,
        `node "${id}" input "${input}"`,
        decl?.type ?? null,
      );
      if (binding) {
        spec.inputs[input] = binding;
        if (binding.kind === "output") nodeDeps.add(binding.node);
      }
    }
    if (task?.interfaceOk) {
      for (const [input, decl] of Object.entries(task.task.inputs)) {
        if (decl.default === undefined && !(input in node.inputs)) {
          c.error(
            "E_UNBOUND_INPUT",
            at,
            `${what}: node "${id}" does not bind required input "${input}" of task "${node.task}"`,
            "key",
          );
        }
      }
    }
    node.after.forEach((dep, i) => {
      if (!shaped.has(dep) && !ids.includes(dep)) {
        const hint = suggest(dep, ids);
        c.error(
          "E_UNKNOWN_NODE",
          [...at, "after", i],
          `${what}: node "${id}" runs after "${dep}", which is not a node of this workflow${hint ? `; did you mean "${hint}"?` : ""}`,
        );
      } else nodeDeps.add(dep);
    });
    // `after` keeps only the edges data references do not already imply, so that writing a
    // redundant `after` never makes a different workflow digest.
    const dataDeps = new Set(
      Object.values(spec.inputs).flatMap((b) => (b.kind === "output" ? [b.node] : [])),
    );
    spec.after = [...new Set(node.after.filter((d) => ids.includes(d) && !dataDeps.has(d)))].sort();
    wf.nodes[id] = spec;
    deps.set(id, [...nodeDeps].sort());
  }

  for (const cycle of findCycles(deps)) {
    // findCycles follows "depends on"; people read graphs in the direction data flows.
    const flow = [...cycle].reverse();
    c.error(
      "E_CYCLE",
      [...path, "nodes", flow[0] as string],
      `${what}: cycle ${flow.join(" -> ")}`,
      "key",
    );
  }

  if (m.outputs !== undefined) {
    const outs = readNamedMapping(c, m.outputs, [...path, "outputs"], `${what}: outputs`) ?? {};
    for (const [out, raw] of Object.entries(outs)) {
      const at = [...path, "outputs", out];
      if (!PARAM_NAME.test(out)) {
        c.error(
          "E_NAME",
          at,
          `${what}: output "${out}" is not a valid name (${PARAM_RULE})`,
          "key",
        );
        continue;
      }
      const binding = checkBinding(c, env, raw, at, `output "${out}"`, null);
      if (binding) wf.outputs[out] = binding;
    }
  }

  if (m.on !== undefined) wf.on = readTriggers(c, m.on, [...path, "on"], what, wf.inputs, inputsOk);
  return wf;
}

interface BindingEnv {
  what: string;
  path: PathSegment[];
  inputs: Record<string, InputDecl>;
  inputsOk: boolean;
  nodes: ReadonlyMap<string, { task: string | null }>;
  tasks: ReadonlyMap<string, ReadTask>;
}

/** `target` is the type the binding must fit, or null when anything goes (workflow outputs). */
function checkBinding(
  c: Collector,
  env: BindingEnv,
  raw: unknown,
  at: PathSegment[],
  label: string,
  target: ValueType | null,
): Binding | null {
  const where = `${env.what}: ${label}`;
  const parsed = parseBinding(raw as JsonValue);
  if (!parsed.ok) {
    c.error("E_EXPR", at, `${where}: ${parsed.reason}`);
    return null;
  }
  const b = parsed.binding;
  if (b.kind === "literal") {
    if (target && isArtifactType(target)) {
      c.error(
        "E_TYPE",
        at,
        `${where}: a ${target} input takes a workflow input or a node's output, not a literal`,
      );
      return null;
    }
    const problem = target ? typeMismatch(target, raw) : typeMismatch("json", raw);
    if (problem) {
      c.error("E_TYPE", at, `${where}: ${problem}${target ? ` (the input is ${target})` : ""}`);
      return null;
    }
    return b;
  }
  let source: ValueType | null = null;
  if (b.kind === "input") {
    const decl = env.inputs[b.input];
    if (!decl) {
      if (env.inputsOk) {
        const hint = suggest(b.input, Object.keys(env.inputs));
        c.error(
          "E_UNKNOWN_INPUT",
          at,
          `${where}: the workflow has no input "${b.input}"${hint ? `; did you mean "${hint}"?` : ""}`,
        );
      }
      return null;
    }
    source = decl.type;
  } else {
    const node = env.nodes.get(b.node);
    if (!node) {
      const hint = suggest(b.node, env.nodes.keys());
      c.error(
        "E_UNKNOWN_NODE",
        at,
        `${where}: refers to node "${b.node}", which is not a node of this workflow${hint ? `; did you mean "${hint}"?` : ""}`,
      );
      return null;
    }
    const task = node.task === null ? undefined : env.tasks.get(node.task);
    if (!task?.interfaceOk) return b;
    const decl = task.task.outputs[b.output];
    if (!decl) {
      const known = Object.keys(task.task.outputs);
      c.error(
        "E_UNKNOWN_OUTPUT",
        at,
        `${where}: task "${node.task}" of node "${b.node}" has no output "${b.output}" (its outputs: ${known.length ? known.join(", ") : "none"})`,
      );
      return null;
    }
    source = decl.type;
  }
  if (target && source && !fits(source, target)) {
    c.error("E_TYPE", at, `${where}: a ${source} cannot bind an input of type ${target}`);
    return null;
  }
  return b;
}

/** An integer may bind a number; anything may bind json; otherwise types must match. */
export function fits(source: ValueType, target: ValueType): boolean {
  return source === target || target === "json" || (source === "integer" && target === "number");
}

function readTriggers(
  c: Collector,
  raw: unknown,
  path: PathSegment[],
  what: string,
  inputs: Record<string, InputDecl>,
  inputsOk: boolean,
): Triggers {
  const out: Triggers = { push: null, pullRequest: null, schedule: [] };
  const m = readMapping(c, raw, path, `${what}: on`, ["push", "pull_request", "schedule"]);
  if (!m) return out;
  const iface = { inputs, inputsOk };
  if ("push" in m)
    out.push = readEventTrigger(c, m.push, [...path, "push"], `${what}: on.push`, iface);
  if ("pull_request" in m) {
    out.pullRequest = readEventTrigger(
      c,
      m.pull_request,
      [...path, "pull_request"],
      `${what}: on.pull_request`,
      iface,
    );
  }
  if (m.schedule !== undefined) {
    if (!Array.isArray(m.schedule)) {
      c.error(
        "E_TYPE",
        [...path, "schedule"],
        `${what}: on.schedule must be a list of { cron, inputs }, got ${describe(m.schedule)}`,
      );
    } else {
      m.schedule.forEach((item, i) => {
        const s = readSchedule(
          c,
          item,
          [...path, "schedule", i],
          `${what}: on.schedule[${i}]`,
          iface,
        );
        if (s) out.schedule.push(s);
      });
    }
  }
  return out;
}

interface Interface {
  inputs: Record<string, InputDecl>;
  inputsOk: boolean;
}

/**
 * `push` / `pull_request`. A required workflow input the trigger leaves unset is a warning, not
 * an error: the workflow can still be run by hand, only the automatic start would be refused.
 */
function readEventTrigger(
  c: Collector,
  raw: unknown,
  path: PathSegment[],
  what: string,
  iface: Interface,
): EventTrigger {
  const out: EventTrigger = { branches: null, inputs: {} };
  if (raw === null || raw === undefined) {
    warnUnsetInputs(c, path, what, iface, {});
    return out;
  }
  const m = readMapping(c, raw, path, what, ["branches", "inputs"]);
  if (!m) return out;
  if (m.branches !== undefined) {
    const branches = readStringList(c, m.branches, [...path, "branches"], `${what}.branches`);
    out.branches = branches ? [...new Set(branches)].sort() : null;
  }
  const given =
    m.inputs === undefined
      ? {}
      : (readNamedMapping(c, m.inputs, [...path, "inputs"], `${what}.inputs`) ?? {});
  out.inputs = readTriggerInputs(c, given, path, what, iface);
  warnUnsetInputs(c, path, what, iface, given);
  return out;
}

function warnUnsetInputs(
  c: Collector,
  path: PathSegment[],
  what: string,
  iface: Interface,
  given: Record<string, unknown>,
): void {
  if (!iface.inputsOk) return;
  const unset = Object.entries(iface.inputs)
    .filter(([name, d]) => d.default === undefined && !(name in given))
    .map(([name]) => name);
  if (unset.length > 0) {
    c.warn(
      "W_TRIGGER_INPUTS",
      path,
      `${what} leaves required input(s) ${unset.join(", ")} unset, so automatic runs will be refused; give them defaults or set ${what}.inputs`,
      "key",
    );
  }
}

function readTriggerInputs(
  c: Collector,
  given: Record<string, unknown>,
  path: PathSegment[],
  what: string,
  iface: Interface,
): Record<string, JsonValue> {
  const values: Record<string, JsonValue> = {};
  if (!iface.inputsOk) return values;
  for (const [name, v] of Object.entries(given)) {
    const decl = iface.inputs[name];
    if (!decl) {
      const hint = suggest(name, Object.keys(iface.inputs));
      c.error(
        "E_UNKNOWN_INPUT",
        [...path, "inputs", name],
        `${what}: the workflow has no input "${name}"${hint ? `; did you mean "${hint}"?` : ""}`,
        "key",
      );
      continue;
    }
    const mismatch = typeMismatch(decl.type, v);
    if (mismatch)
      c.error("E_TYPE", [...path, "inputs", name], `${what}.inputs.${name}: ${mismatch}`);
    else values[name] = asJson(v);
  }
  return values;
}

function readSchedule(
  c: Collector,
  raw: unknown,
  path: PathSegment[],
  what: string,
  iface: Interface,
): ScheduleTrigger | null {
  const m = readMapping(c, raw, path, what, ["cron", "inputs"]);
  if (!m) return null;
  if (m.cron === undefined) {
    c.error("E_REQUIRED", path, `${what} has no cron expression`);
    return null;
  }
  const cron = readString(c, m.cron, [...path, "cron"], `${what}.cron`);
  if (cron === null) return null;
  const problem = cronProblem(cron);
  if (problem)
    c.error("E_CRON", [...path, "cron"], `${what}: "${cron}" is not a cron expression: ${problem}`);
  const given =
    m.inputs === undefined
      ? {}
      : (readNamedMapping(c, m.inputs, [...path, "inputs"], `${what}.inputs`) ?? {});
  const values = readTriggerInputs(c, given, path, what, iface);
  // A schedule has no person behind it to supply what is missing: an unset input is an error.
  if (iface.inputsOk) {
    for (const [name, decl] of Object.entries(iface.inputs)) {
      if (decl.default === undefined && !(name in given)) {
        c.error("E_UNBOUND_INPUT", path, `${what} does not set required input "${name}"`, "key");
      }
    }
  }
  return problem ? null : { cron, inputs: values };
}
