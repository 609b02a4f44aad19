/**
 * Task, workflow and spec digests (DESIGN.md section 4). What goes in is what changes the
 * computation; what stays out (name, retries, timeout, resources, cache settings, secrets,
 * triggers) can change without invalidating a single cache entry.
 */
import type { TaskSpec, WorkflowSpec } from "../spec/types.js";
import { type Digest, digest } from "./digest.js";

export function taskDigest(task: TaskSpec, sources: Digest): Digest {
  return digest({
    image: task.image,
    command: task.command,
    env: task.env,
    workdir: task.workdir,
    inputs: task.inputs,
    outputs: task.outputs,
    sources,
  });
}

export function workflowDigest(
  wf: WorkflowSpec,
  taskDigests: Readonly<Record<string, Digest>>,
): Digest {
  const nodes: Record<string, unknown> = {};
  for (const [id, node] of Object.entries(wf.nodes)) {
    const task = taskDigests[node.task];
    if (task === undefined)
      throw new Error(`workflow ${wf.name}: node ${id} uses unknown task ${node.task}`);
    nodes[id] = { task, inputs: node.inputs, after: node.after };
  }
  return digest({ inputs: wf.inputs, nodes, outputs: wf.outputs });
}

export function specDigest(
  tasks: Readonly<Record<string, Digest>>,
  workflows: Readonly<Record<string, Digest>>,
): Digest {
  return digest({ tasks, workflows });
}
