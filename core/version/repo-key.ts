/** Repository keys (docs/design.md section 4): github.com/OWNER/NAME, or file://ABSOLUTE_PATH. */

const GITHUB_NAME = /^[A-Za-z0-9-]{1,39}\/[A-Za-z0-9._-]{1,100}$/;

export function githubRepoKey(fullName: string, host = "github.com"): string {
  if (!GITHUB_NAME.test(fullName)) throw new Error(`"${fullName}" is not OWNER/NAME`);
  return `${host}/${fullName}`;
}

/** `absolutePath` must already be absolute and resolved; core does not touch the filesystem. */
export function localRepoKey(absolutePath: string): string {
  if (!absolutePath.startsWith("/")) throw new Error(`"${absolutePath}" is not an absolute path`);
  return `file://${absolutePath.replace(/\/+$/, "") || "/"}`;
}
