/**
 * Where each page lives. The UI is mounted at the root of `reprise serve`; a repository key is
 * one path segment, URL-encoded as in the API (`github.com%2Facme%2Fml`). Check runs and the
 * Action link to `executionUrl`.
 */
const enc = encodeURIComponent;

export const paths = {
  home: () => "/",
  login: (next?: string) => (next && next !== "/" ? `/login?next=${enc(next)}` : "/login"),
  logout: () => "/logout",
  asset: (name: string) => `/assets/${name}`,
  repo: (repo: string) => `/repos/${enc(repo)}`,
  runs: (repo: string, workflow: string) => `/repos/${enc(repo)}/workflows/${enc(workflow)}`,
  task: (repo: string, task: string) => `/repos/${enc(repo)}/tasks/${enc(task)}`,
  execution: (id: string, node?: string | null) =>
    `/executions/${enc(id)}${node ? `?node=${enc(node)}#node` : ""}`,
  compare: (a?: string, b?: string) => (a && b ? `/compare?a=${enc(a)}&b=${enc(b)}` : "/compare"),
  /** An artifact's bytes, as a download named `name`, or `inline` for an `<img>`. */
  artifact: (repo: string, digest: string, o: { name?: string; inline?: boolean } = {}) =>
    `/repos/${enc(repo)}/artifacts/${enc(digest)}${o.inline ? "?inline=1" : o.name ? `?name=${enc(o.name)}` : ""}`,
};

/** The execution page's address for people outside the server: check runs, job summaries. */
export function executionUrl(publicUrl: string | null, id: string): string {
  return `${publicUrl ? publicUrl.replace(/\/+$/, "") : ""}${paths.execution(id)}`;
}
