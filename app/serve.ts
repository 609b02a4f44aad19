/**
 * `reprise serve` with the GitHub App mounted at /api/github/webhooks when APP_ID is configured
 * (runner/cli/bin.ts, the composition root, hands this to the CLI instead of startServer), and
 * the App's code at a SHA for the executors. The App's processors start once the server listens
 * and stop before it closes. Everything here talks to GitHub through one client
 * (github-client.ts): the webhooks' handlers, the local executor's tarball checkout and the
 * kubernetes executor's code source share its installation cache.
 */

import type { Logger } from "pino";
import type { ProbotOctokit } from "probot";
import type { Config } from "../runner/config.js";
import { defaultLog } from "../runner/log.js";
import type { GitHubCode } from "../runner/runtime.js";
import { type Served, type ServeOptions, startServer } from "../runner/server/serve.js";
import { GitHubApp, type GitHubAppOptions } from "./app.js";
import { appCodeSource } from "./code-source.js";
import { type ClientOf, sharedClient } from "./github-client.js";
import { githubCheckout } from "./tarball-source.js";

/**
 * Code at a SHA of GitHub repositories through the process's client, for the executors
 * (runner/runtime.ts): each is null when the App is not configured.
 */
export function githubCode(clientOf: ClientOf): GitHubCode {
  return {
    checkout(config, log) {
      const client = clientOf(config, log);
      return client ? githubCheckout(config, client) : null;
    },
    codeSource(config, log) {
      const client = clientOf(config, log);
      return client ? appCodeSource(client) : null;
    },
  };
}

export interface GitHubServeOptions extends ServeOptions {
  /** The process's client (the composition root's); without it, one made here for this server. */
  client?: ClientOf;
  /** Tests and benchmarks may give an Octokit class for a client made here; Probot's otherwise. */
  Octokit?: typeof ProbotOctokit;
  tuning?: Pick<GitHubAppOptions, "concurrency" | "tickMs">;
}

export async function startWithGitHub(
  config: Config,
  opts: GitHubServeOptions = {},
): Promise<Served & { github: GitHubApp | null }> {
  const clientOf = opts.client ?? sharedClient(opts.Octokit);
  const code = githubCode(clientOf);
  const github = config.githubApp;
  if (!github) return { ...(await startServer(config, { github: code, ...opts })), github: null };
  const log: Logger = opts.log ?? defaultLog(config);
  // The one client, made before the runtime asks for it (its executor's checkout or code source).
  const client = clientOf(config, log.child({ component: "github" }));
  if (!client) throw new Error("no GitHub client for a configured GitHub App");
  let app: GitHubApp | null = null;
  const served = await startServer(config, {
    github: code,
    ...opts,
    log,
    extend: (deps, runtime) => {
      app = new GitHubApp({
        client,
        store: deps.store,
        executor: deps.executor,
        publicUrl: deps.publicUrl,
        log,
        ...opts.tuning,
      });
      // The runtime fires schedules; the App adds the check runs of GitHub repositories' ones.
      runtime.scheduler.onStarted(app.scheduled);
      return { ...opts.extend?.(deps, runtime), webhooks: app.webhooks };
    },
  });
  const started = app as GitHubApp | null;
  if (!started) throw new Error("the server did not mount the GitHub App");
  started.start();
  log.info({ baseUrl: github.baseUrl, appId: github.appId }, "GitHub App at /api/github/webhooks");
  return {
    ...served,
    github: started,
    close: async () => {
      await started.close();
      await served.close();
    },
  };
}
