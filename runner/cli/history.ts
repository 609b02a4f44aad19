/** `reprise history TASK`: the versions in which a task's digest changed, and what ran each. */
import { localRepoKey } from "../../core/version/repo-key.js";
import type { Config } from "../config.js";
import { openConfiguredStore } from "../open-store.js";
import { repoRoot } from "../sources/local-git.js";
import { type TaskChange, taskHistory } from "../task-history.js";
import { EXIT, type Io } from "./io.js";

const short = (s: string | null | undefined) => (s ? s.slice(0, 12) : "-");
/** Runs listed per change in the human output; --json has them all. */
const RUNS_SHOWN = 5;

export async function historyCommand(
  config: Config,
  opts: { repo: string; task: string; json: boolean },
  io: Io,
): Promise<number> {
  const root = await repoRoot(opts.repo);
  const open = await openConfiguredStore(config);
  try {
    const repo = localRepoKey(root);
    const history = await taskHistory(open.store, repo, opts.task);
    if (opts.json) io.out(JSON.stringify(history, null, 2));
    if (history.changes.length === 0) {
      io.err(
        `no registered version of ${repo} has a task "${opts.task}" (\`reprise versions\` lists what is registered)`,
      );
      return EXIT.invalid;
    }
    if (opts.json) return EXIT.ok;
    io.out(`task ${opts.task} of ${repo}: ${history.changes.length} change(s), newest first`);
    for (const c of history.changes) for (const line of changeLines(c)) io.out(line);
    return EXIT.ok;
  } finally {
    await open.close();
  }
}

function changeLines(c: TaskChange): string[] {
  const what =
    c.change === "restored"
      ? `restored (as in ${short(c.sameAs)})`
      : c.change === "removed"
        ? "removed"
        : c.change;
  const lines = [
    `${short(c.sha)}  ${c.registeredAt.slice(0, 16).replace("T", " ")}  ${(c.ref ?? "-").padEnd(10)}  ${what.padEnd(9)}  ${c.digest ? short(c.digest.slice(7)) : "-".padEnd(12)}  ${c.message?.split("\n")[0] ?? ""}`,
  ];
  for (const r of c.runs.slice(0, RUNS_SHOWN))
    lines.push(
      `    ${r.execution}  ${r.workflow}/${r.node}  ${r.how.padEnd(9)}  ${r.nodeStatus.padEnd(9)}  at ${short(r.sha)}`,
    );
  if (c.runs.length > RUNS_SHOWN) lines.push(`    ... and ${c.runs.length - RUNS_SHOWN} more`);
  if (c.runs.length === 0 && c.digest) lines.push("    (not run at this digest)");
  return lines;
}
