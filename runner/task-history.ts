/**
 * How a task evolved (issue 7): the versions in which its digest changed, each with its commit,
 * branch and message, and the executions that ran it at that digest. `reprise history` prints it,
 * the web UI shows it.
 *
 * A version changes a task when the task's digest differs from the one in its first parent. When
 * that parent is not registered here (the first registered commit, a history rewritten), the
 * version before it in registration order stands in. A digest seen before (a revert) is marked
 * `restored`, with the commit that first had it.
 */
import type { Store } from "../db/store.js";
import type { NodeRecord } from "../db/types.js";
import { iso } from "./documents.js";

export type How = "ran" | "cached" | "recovered" | "not run";

/** What happened to a node: computed here, reused from the cache or a recovered parent, or neither. */
export function nodeHow(n: Pick<NodeRecord, "cacheStatus" | "attempts" | "source">): How {
  if (n.cacheStatus === "HIT") return "cached";
  if (n.cacheStatus === "RECOVERED") return "recovered";
  return n.attempts > 0 ? "ran" : "not run";
}

export interface TaskRun {
  execution: string;
  workflow: string;
  sha: string;
  status: string;
  createdAt: string;
  node: string;
  nodeStatus: NodeRecord["state"];
  how: How;
}

export interface TaskChange {
  sha: string;
  ref: string | null;
  message: string | null;
  registeredAt: string;
  change: "added" | "changed" | "removed" | "restored";
  /** null: the task is gone from this version. */
  digest: string | null;
  previousDigest: string | null;
  /** For `restored`: the earliest commit that had this digest. */
  sameAs: string | null;
  /** Executions that ran the task at this digest while it was the latest change to it, newest first. */
  runs: TaskRun[];
}

export interface TaskHistory {
  repo: string;
  task: string;
  /** Newest first. */
  changes: TaskChange[];
}

/** Executions looked at per history: the newest ones, enough for a page. */
const MAX_RUNS = 500;

export async function taskHistory(store: Store, repo: string, task: string): Promise<TaskHistory> {
  const timeline = (await store.versions.taskTimeline(repo, task)).filter(
    (v) => v.status === "registered",
  );
  const digestAt = new Map(timeline.map((v) => [v.sha, v.digest]));
  const firstWith = new Map<string, string>();
  const changes: TaskChange[] = [];
  let previous: (typeof timeline)[number] | null = null;
  for (const v of timeline) {
    const parent = v.parents[0];
    const before =
      parent !== undefined && digestAt.has(parent)
        ? (digestAt.get(parent) ?? null)
        : (previous?.digest ?? null);
    previous = v;
    if (v.digest === before) continue;
    const seen = v.digest === null ? undefined : firstWith.get(v.digest);
    if (v.digest !== null && seen === undefined) firstWith.set(v.digest, v.sha);
    changes.push({
      sha: v.sha,
      ref: v.ref,
      message: v.message,
      registeredAt: v.registeredAt.toISOString(),
      change:
        v.digest === null
          ? "removed"
          : seen !== undefined
            ? "restored"
            : before === null
              ? "added"
              : "changed",
      digest: v.digest,
      previousDigest: before,
      sameAs: seen ?? null,
      runs: [],
    });
  }

  const digests = [...firstWith.keys()];
  const found = await store.executions.nodesByTaskDigest(repo, digests, MAX_RUNS);
  for (const { execution: e, node: n } of found) {
    // The latest change to this digest registered before the execution was created.
    const candidates = changes.filter((c) => c.digest === n.taskDigest);
    const owner =
      candidates.filter((c) => Date.parse(c.registeredAt) <= e.createdAt.getTime()).at(-1) ??
      candidates[0];
    owner?.runs.push({
      execution: e.id,
      workflow: e.workflow,
      sha: e.sha,
      status: e.state,
      createdAt: iso(e.createdAt) as string,
      node: n.nodeId,
      nodeStatus: n.state,
      how: nodeHow(n),
    });
  }
  return { repo, task, changes: changes.reverse() };
}
