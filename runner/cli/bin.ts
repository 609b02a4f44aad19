/** Process entry point: wires the real stdout/stderr and exit code to `main`. */
import { main } from "./main.js";

// SIGINT/SIGTERM stop a worker gracefully: leases are released, running tasks keep running
// (they outlive the runner) and the next runner re-attaches to them.
const stop = new AbortController();
for (const sig of ["SIGINT", "SIGTERM"] as const) process.once(sig, () => stop.abort());

const code = await main(
  process.argv.slice(2),
  { out: (l) => process.stdout.write(`${l}\n`), err: (l) => process.stderr.write(`${l}\n`) },
  process.cwd(),
  process.env,
  process.stdout.isTTY === true,
  stop.signal,
);
process.exitCode = code;
