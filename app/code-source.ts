/**
 * Where a Kubernetes attempt's init container fetches a GitHub repository at a SHA (docs/design.md
 * section 7), when the GitHub App is configured: the REST tarball URL on GitHub or GHE_HOST, and
 * an installation token narrowed to that one repository and `contents: read`, so a task's pod
 * never holds the App's wider token. Tokens are reused until ten minutes before they expire.
 */
import { type CodeSource, defaultCodeSource } from "../runner/executors/kubernetes/code-source.js";
import type { GitHubClient } from "./github-client.js";

/** A token is reused while it has at least this long to live (a fetch takes seconds). */
const MIN_LIFE_MS = 10 * 60_000;

/** GitHub repositories through `client` (the process's one); others as by default. */
export function appCodeSource(client: GitHubClient): CodeSource {
  const fallback = defaultCodeSource();
  const tokens = new Map<string, Promise<{ token: string; expiresAt: number }>>();
  const tokenFor = async (repoKey: string): Promise<string> => {
    const cached = await tokens.get(repoKey)?.catch(() => null);
    if (cached && cached.expiresAt - Date.now() > MIN_LIFE_MS) return cached.token;
    const fresh = (async () => {
      const installationId = await client.installationId(repoKey);
      const app = await client.probot.auth();
      const { data } = await app.rest.apps.createInstallationAccessToken({
        installation_id: installationId,
        repositories: [client.name(repoKey).repo],
        permissions: { contents: "read" },
      });
      return { token: data.token, expiresAt: Date.parse(data.expires_at) };
    })();
    tokens.set(repoKey, fresh);
    return (await fresh).token;
  };
  return async (repo, sha) => {
    if (!client.owns(repo)) return fallback(repo, sha);
    const { owner, repo: name } = client.name(repo);
    return {
      url: `${client.config.baseUrl}/repos/${owner}/${name}/tarball/${sha}`,
      token: await tokenFor(repo),
    };
  };
}
