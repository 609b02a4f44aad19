/**
 * Task, workflow and spec digests (docs/design.md section 4). What goes in is what changes the
 * computation; what stays out (name, retries, timeout, resources, cache settings, secrets,
 * triggers) can change without invalidating a single cache entry. The definitions are what the
 * store keeps, content-addressed: digest(definition) is the digest.
 */
import type { Binding, InputDecl, OutputDecl, TaskSpec, WorkflowSpec } from "../spec/types.js";
import { type Digest, digest } from "./digest.js";

export interface TaskDefinition {
  image: string;
  command: string[];
  env: Record<string, string>;
  workdir: string;
  inputs: Record<string, InputDecl>;
  outputs: Record<string, OutputDecl>;
  /** The sources digest: the git objects the task's `sources` globs matched. */
  sources: Digest;
}

export interface WorkflowDefinition {
  inputs: Record<string, InputDecl>;
  nodes: Record<string, { task: Digest; inputs: Record<string, Binding>; after: string[] }>;
  outputs: Record<string, Binding>;
}

export function taskDefinition(task: TaskSpec, sources: Digest): TaskDefinition {
  const { image, command, env, workdir, inputs, outputs } = task;
  return { image, command, env, workdir, inputs, outputs, sources };
}

export function taskDigest(task: TaskSpec, sources: Digest): Digest {
  return digest(taskDefinition(task, sources));
}

export function workflowDefinition(
  wf: WorkflowSpec,
  taskDigests: Readonly<Record<string, Digest>>,
): WorkflowDefinition {
  const nodes: WorkflowDefinition["nodes"] = {};
  for (const [id, node] of Object.entries(wf.nodes)) {
    const task = taskDigests[node.task];
    if (task === undefined)
      throw new Error(`workflow ${wf.name}: node ${id} uses unknown task ${node.task}`);
    nodes[id] = { task, inputs: node.inputs, after: node.after };
  }
  return { inputs: wf.inputs, nodes, outputs: wf.outputs };
}

export function workflowDigest(
  wf: WorkflowSpec,
  taskDigests: Readonly<Record<string, Digest>>,
): Digest {
  return digest(workflowDefinition(wf, taskDigests));
}

export function specDigest(
  tasks: Readonly<Record<string, Digest>>,
  workflows: Readonly<Record<string, Digest>>,
): Digest {
  return digest({ tasks, workflows });
}
