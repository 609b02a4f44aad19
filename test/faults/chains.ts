/**
 * The workload of the fault tests: a three-node chain (a -> b -> c, each reading the one before)
 * of one task, registered from a task project, and `count` executions of it queued with distinct
 * inputs, so nothing is shared through the cache between them.
 */
import type { Store } from "../../db/store.js";
import { registerLocalCommit } from "../../runner/registry.js";
import type { TaskOptions, TaskProject } from "../fakes/task-project.js";

export async function queueChains(
  store: Store,
  project: TaskProject,
  task: TaskOptions,
  count: number,
): Promise<string[]> {
  project.commit({
    tasks: { slow: project.task({ ...task, inputs: { v: "string" } }) },
    workflows: {
      chain: {
        inputs: { v: "string" },
        nodes: {
          a: { task: "slow", inputs: { v: "${{ inputs.v }}" } },
          b: { task: "slow", inputs: { v: "${{ nodes.a.outputs.value }}" } },
          c: { task: "slow", inputs: { v: "${{ nodes.b.outputs.value }}" } },
        },
      },
    },
  });
  const { version } = await registerLocalCommit(store, project.dir, "HEAD");
  const ids: string[] = [];
  for (let i = 0; i < count; i++) {
    const e = await store.executions.create({
      repo: version.repo,
      sha: version.sha,
      workflow: "chain",
      inputs: { v: `run-${i}` },
      trigger: { kind: "cli", actor: "test" },
    });
    ids.push(e.id);
  }
  return ids;
}
