/**
 * GitHub as the App sees it: Probot for the app's JWT and installation tokens (cached by Probot
 * until a minute before they expire), its Octokit with the throttling and retry plugins on, and
 * the installation of each repository, learned from deliveries or asked once.
 *
 * A process has ONE client, shared by everything that talks to GitHub: the App's handlers, the
 * local executor's tarball checkout and the kubernetes executor's code source. So a run's
 * checkout uses the installation its push delivery named, and asks GitHub nothing to find it.
 */

import type { Logger } from "pino";
import { Probot, ProbotOctokit } from "probot";
import type { Config, GitHubAppConfig } from "../runner/config.js";
import { defaultLog } from "../runner/log.js";

export type Octokit = ProbotOctokit;

export type RepoName = {
  owner: string;
  repo: string;
};

export class GitHubClient {
  readonly probot: Probot;
  /** Repository key -> installation id. */
  readonly #installations = new Map<string, number>();
  readonly #ready: Promise<void>;

  constructor(
    readonly config: GitHubAppConfig,
    /** Repository keys are HOST/OWNER/NAME (docs/design.md section 4). */
    readonly host: string,
    log: Logger,
    Octokit: typeof ProbotOctokit = ProbotOctokit,
  ) {
    this.probot = new Probot({
      appId: config.appId,
      privateKey: config.privateKey,
      secret: config.webhookSecret,
      baseUrl: config.baseUrl,
      log: log.child({ name: "github" }),
      Octokit,
    });
    // auth() without an installation resolves once Probot is initialized, with no request.
    this.#ready = this.probot.auth().then(
      () => undefined,
      () => undefined,
    );
  }

  /** Checks X-Hub-Signature-256 against the raw body. */
  async verify(body: string, signature: string): Promise<boolean> {
    try {
      // Probot sets up its webhooks asynchronously: a delivery right after start waits for it.
      await this.#ready;
      return await this.probot.webhooks.verify(body, signature);
    } catch {
      return false;
    }
  }

  remember(repoKey: string, installationId: number | undefined): void {
    if (installationId) this.#installations.set(repoKey, installationId);
  }

  /** An Octokit acting as the installation that covers `repoKey`. */
  async forRepo(repoKey: string, installationId?: number): Promise<Octokit> {
    this.remember(repoKey, installationId);
    return this.probot.auth(await this.installationId(repoKey));
  }

  /** The installation that covers `repoKey`: learned from deliveries, else asked once. */
  async installationId(repoKey: string): Promise<number> {
    let id = this.#installations.get(repoKey);
    if (!id) {
      const app = await this.probot.auth();
      const { data } = await app.rest.apps.getRepoInstallation(this.name(repoKey));
      id = data.id;
      this.#installations.set(repoKey, id);
    }
    return id;
  }

  /** `HOST/OWNER/NAME` -> { owner, repo }. */
  name(repoKey: string): RepoName {
    const prefix = `${this.host}/`;
    if (!repoKey.startsWith(prefix))
      throw new Error(
        `${repoKey} is not a repository of ${this.host}; the GitHub App cannot reach it`,
      );
    const [owner = "", repo = ""] = repoKey.slice(prefix.length).split("/");
    return { owner, repo };
  }

  owns(repoKey: string): boolean {
    return repoKey.startsWith(`${this.host}/`);
  }
}

/** The process's GitHub client for a configuration; null when the App is not configured. */
export type ClientOf = (config: Config, log?: Logger) => GitHubClient | null;

/**
 * One client per configuration (a process loads one), made on first use, when the configuration
 * is known: the composition root hands the same `ClientOf` to everything that talks to GitHub.
 */
export function sharedClient(Octokit?: typeof ProbotOctokit): ClientOf {
  const made = new WeakMap<Config, GitHubClient | null>();
  return (config, log) => {
    let client = made.get(config);
    if (client === undefined) {
      client = config.githubApp
        ? new GitHubClient(config.githubApp, config.githubHost, log ?? defaultLog(config), Octokit)
        : null;
      made.set(config, client);
    }
    return client;
  };
}
