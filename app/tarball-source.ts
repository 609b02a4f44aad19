/**
 * The GitHub half of code at a SHA for the local executor (docs/design.md section 7): a commit's tree
 * (repository.ts) and tarball through the process's GitHub client, the tarball streamed.
 * Extraction, its checks and bounds are runner/sources/tarball.ts's, published by
 * runner/sources/materialise.ts, the step shared with the `git archive` checkout of local
 * repositories.
 */
import { join } from "node:path";
import { Readable } from "node:stream";
import type { Config } from "../runner/config.js";
import { fileRepoCheckout } from "../runner/sources/git-archive.js";
import type { Checkout } from "../runner/sources/materialise.js";
import {
  DEFAULT_MAX_ENTRIES,
  routeCheckout,
  type TarballLimits,
  type TarballSource,
  tarballCheckout,
} from "../runner/sources/tarball.js";
import type { GitHubClient } from "./github-client.js";
import { readTree } from "./repository.js";

/** The commit's tree and tarball through the App's installation token, the tarball streamed. */
export function appTarballSource(client: GitHubClient): TarballSource {
  return {
    async tree(repoKey, sha) {
      const octokit = await client.forRepo(repoKey);
      return readTree(octokit, client.name(repoKey), sha, DEFAULT_MAX_ENTRIES);
    },
    async tarball(repoKey, sha) {
      const octokit = await client.forRepo(repoKey);
      const response = await octokit.request("GET /repos/{owner}/{repo}/tarball/{ref}", {
        ...client.name(repoKey),
        ref: sha,
        request: { parseSuccessResponseBody: false },
      });
      const body = response.data as unknown as ReadableStream<Uint8Array> | null;
      if (!body) throw new Error(`GitHub sent no tarball for ${sha} of ${repoKey}`);
      return Readable.fromWeb(body as import("node:stream/web").ReadableStream<Uint8Array>);
    },
  };
}

/** GitHub repositories' checkouts from their tarball through `client`, cached under `cacheRoot`. */
export function appTarballCheckout(
  client: GitHubClient,
  cacheRoot: string,
  limits?: TarballLimits,
): Checkout {
  return tarballCheckout(cacheRoot, appTarballSource(client), limits);
}

/**
 * What runner/runtime.ts gives the local executor when the GitHub App is configured (serve.ts's
 * `githubCode`): local repositories through `git archive` as before, GitHub ones through the
 * tarball, fetched with the process's one client.
 */
export function githubCheckout(config: Config, client: GitHubClient): Checkout {
  const root = join(config.dataDir, "local", "checkouts");
  const limits = { maxBytes: config.checkoutMaxBytes };
  return routeCheckout(
    fileRepoCheckout(root, limits),
    appTarballCheckout(client, join(root, "github"), limits),
  );
}
