/**
 * Process entry point and composition root: wires the real stdout/stderr and exit code to `main`,
 * and plugs in the GitHub App's side (app/): its code at a SHA for the executors, and its webhooks
 * on `serve`. It is the one file outside app/ (and the tests) that imports app/
 * (test/unit/layering.test.ts).
 */
import { sharedClient } from "../../app/github-client.js";
import { githubCode, startWithGitHub } from "../../app/serve.js";
import { main } from "./main.js";

// SIGINT/SIGTERM stop a worker gracefully: leases are released, running tasks keep running
// (they outlive the runner) and the next runner re-attaches to them.
const stop = new AbortController();
for (const sig of ["SIGINT", "SIGTERM"] as const) process.once(sig, () => stop.abort());

// ONE GitHub client for the process (one installation cache), made once the command has loaded
// its configuration: the App's handlers, the local executor's tarball checkout and the kubernetes
// code source all talk to GitHub through it.
const client = sharedClient();

const code = await main(
  process.argv.slice(2),
  { out: (l) => process.stdout.write(`${l}\n`), err: (l) => process.stderr.write(`${l}\n`) },
  process.cwd(),
  process.env,
  process.stdout.isTTY === true,
  stop.signal,
  { github: githubCode(client), serve: (config) => startWithGitHub(config, { client }) },
);
process.exitCode = code;
