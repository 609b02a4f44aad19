/**
 * `reprise serve` with the GitHub App mounted at /api/github/webhooks when APP_ID is configured
 * (runner/cli/serve.ts calls this instead of startServer). The App's processors start once the
 * server listens and stop before it closes.
 */
import type { Logger } from "pino";
import type { ProbotOctokit } from "probot";
import type { Config } from "../config.js";
import { defaultLog } from "../log.js";
import { type Served, type ServeOptions, startServer } from "../server/serve.js";
import { GitHubApp, type GitHubAppOptions } from "./app.js";

export interface GitHubServeOptions extends ServeOptions {
  Octokit?: typeof ProbotOctokit;
  tuning?: Pick<GitHubAppOptions, "concurrency" | "tickMs" | "now" | "scheduleEveryMs">;
}

export async function startWithGitHub(
  config: Config,
  opts: GitHubServeOptions = {},
): Promise<Served & { github: GitHubApp | null }> {
  const github = config.githubApp;
  if (!github) return { ...(await startServer(config, opts)), github: null };
  const log: Logger = opts.log ?? defaultLog(config);
  let app: GitHubApp | null = null;
  const served = await startServer(config, {
    ...opts,
    log,
    extend: (deps) => {
      app = new GitHubApp({
        config: github,
        host: config.githubHost,
        store: deps.store,
        executor: deps.executor,
        publicUrl: deps.publicUrl,
        log,
        ...(opts.Octokit ? { Octokit: opts.Octokit } : {}),
        ...opts.tuning,
      });
      return { ...opts.extend?.(deps), webhooks: app.webhooks };
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
