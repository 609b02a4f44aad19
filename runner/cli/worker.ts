/** `reprise worker`: claims and drives executions until SIGINT or SIGTERM. */
import { ACTIVE_EXECUTION_STATES } from "../../core/engine/vocabulary.js";
import type { Config } from "../config.js";
import { type GitHubCode, openRuntime } from "../runtime.js";
import { EXIT, type Io } from "./io.js";

export async function workerCommand(
  config: Config,
  opts: { once: boolean; github?: GitHubCode },
  io: Io,
  signal: AbortSignal,
): Promise<number> {
  const rt = await openRuntime(config, opts.github ? { github: opts.github } : {});
  try {
    io.err(
      `reprise worker ${rt.engine.owner}: driving executions (up to ${config.maxParallel} attempts at once)`,
    );
    if (opts.once) {
      // Finish what is queued or orphaned now, then exit: for scripts and tests.
      const ids = (await rt.open.store.executions.list({ limit: 1_000 }))
        .filter((e) => ACTIVE_EXECUTION_STATES.includes(e.state))
        .map((e) => e.id);
      for (const e of await Promise.all(ids.map((id) => rt.engine.drive(id, signal))))
        io.out(`${e.id} ${e.state}`);
      return EXIT.ok;
    }
    rt.scheduler.start();
    await rt.engine.work(signal);
    return EXIT.ok;
  } finally {
    await rt.close();
  }
}
