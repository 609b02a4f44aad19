/** Process entry point: wires the real stdout/stderr and exit code to `main`. */
import { main } from "./main.js";

const code = await main(
  process.argv.slice(2),
  { out: (l) => process.stdout.write(`${l}\n`), err: (l) => process.stderr.write(`${l}\n`) },
  process.cwd(),
  process.env,
  process.stdout.isTTY === true,
);
process.exitCode = code;
