/**
 * Where the init container fetches the code at a SHA from (docs/design.md section 7): a URL of the
 * commit's gzipped tarball, and a short-lived token when the repository needs one. The token
 * travels in the attempt's own Secret, owned by its Job, so it goes when the Job goes.
 */

export interface CodeLocation {
  url: string;
  token?: string;
}

export type CodeSource = (repo: string, sha: string) => Promise<CodeLocation>;

const GITHUB = /^github\.com\/([A-Za-z0-9-]{1,39})\/([A-Za-z0-9._-]{1,100})$/;

/**
 * GitHub repositories (`github.com/OWNER/NAME`) through the REST tarball endpoint, with the
 * installation token `token(repo)` gives (none for a public repository); `file://` repositories
 * as their path, which only a cluster that shares this machine's disk (the test fake) can read.
 */
export function defaultCodeSource(
  token?: (repo: string) => Promise<string | undefined>,
): CodeSource {
  return async (repo, sha) => {
    if (repo.startsWith("file://")) return { url: repo };
    const m = GITHUB.exec(repo);
    if (!m) {
      throw new Error(
        `the kubernetes executor cannot fetch ${repo}: it reads github.com/OWNER/NAME repositories (and file:// ones on a test cluster)`,
      );
    }
    const url = `https://api.github.com/repos/${m[1]}/${m[2]}/tarball/${sha}`;
    const t = await token?.(repo);
    return t ? { url, token: t } : { url };
  };
}
