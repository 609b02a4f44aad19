/**
 * Process entry point and composition root: wires the real stdout/stderr and exit code to `main`,
 * and plugs in the GitHub App's side (app/): its code at a SHA for the executors, and its webhooks
 * on `serve`. It is the one file outside app/ (and the tests) that imports app/
 * (test/unit/layering.test.ts).
 *
 * app/ (Probot, and through it the server) is imported only when a command needs it: a
 * configured GitHub App, or `serve`. Every other command (`run`, `--help`) starts without
 * loading either, which is most of what a laptop runs.
 */
import type { ClientOf } from "../../app/github-client.js";
import type { Config } from "../config.js";
import { main } from "./main.js";

// SIGINT/SIGTERM stop a worker gracefully: leases are released, running tasks keep running
// (they outlive the runner) and the next runner re-attaches to them.
const stop = new AbortController();
for (const sig of ["SIGINT", "SIGTERM"] as const) process.once(sig, () => stop.abort());

// ONE GitHub client for the process (one installation cache), made once the command has loaded
// its configuration: the App's handlers, the local executor's tarball checkout and the kubernetes
// code source all talk to GitHub through it.
let client: Promise<ClientOf> | null = null;
const app = async () => {
  client ??= import("../../app/github-client.js").then((m) => m.sharedClient());
  const [clientOf, serve] = await Promise.all([client, import("../../app/serve.js")]);
  return { clientOf, serve };
};
/** Without a GitHub App configured the App's side has nothing to add: it is not loaded. */
async function withApp<T>(
  config: Config,
  use: (a: Awaited<ReturnType<typeof app>>) => T,
): Promise<Awaited<T> | null> {
  return config.githubApp ? await use(await app()) : null;
}

const code = await main(
  process.argv.slice(2),
  { out: (l) => process.stdout.write(`${l}\n`), err: (l) => process.stderr.write(`${l}\n`) },
  process.cwd(),
  process.env,
  process.stdout.isTTY === true,
  stop.signal,
  {
    github: {
      checkout: (config, log) =>
        withApp(config, (a) => a.serve.githubCode(a.clientOf).checkout(config, log)),
      codeSource: (config, log) =>
        withApp(config, (a) => a.serve.githubCode(a.clientOf).codeSource(config, log)),
    },
    serve: async (config) => {
      const { clientOf, serve } = await app();
      return serve.startWithGitHub(config, { client: clientOf });
    },
  },
);
process.exitCode = code;
