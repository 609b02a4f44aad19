/** `reprise serve` and `reprise token`: the server, and the API tokens that secure it. */
import { githubRepoKey, localRepoKey } from "../../core/version/repo-key.js";
import type { Config } from "../config.js";
import { openConfiguredStore } from "../open-store.js";
import type { Served } from "../server/serve.js";
import { ServeError } from "../server/serve-error.js";
import { repoRoot } from "../sources/local-git.js";
import { EXIT, type Io, UsageError } from "./io.js";

export async function serveCommand(
  config: Config,
  io: Io,
  signal: AbortSignal,
  /** The composition root's (bin.ts): with APP_ID configured, it mounts the GitHub App. */
  start: (config: Config) => Promise<Served>,
): Promise<number> {
  let served: Served;
  try {
    served = await start(config);
  } catch (e) {
    if (e instanceof ServeError) throw new UsageError(e.message);
    throw e;
  }
  io.err(`reprise serve: listening on ${served.url}`);
  await new Promise<void>((resolve) => {
    if (signal.aborted) resolve();
    else signal.addEventListener("abort", () => resolve(), { once: true });
  });
  io.err("reprise serve: stopping (running tasks go on; the next runner re-attaches)");
  await served.close();
  return EXIT.ok;
}

/**
 * A repository as `--repo` names it: OWNER/NAME (on GHE_HOST, default github.com), a full key
 * (github.com/OWNER/NAME, file:///path), or a local directory.
 */
export async function repoKeyOf(config: Config, given: string): Promise<string> {
  if (/^file:\/\//.test(given) || /^[^/\s]+\.[^/\s]+\/[^/\s]+\/[^/\s]+$/.test(given)) return given;
  if (/^[A-Za-z0-9-]+\/[A-Za-z0-9._-]+$/.test(given))
    return githubRepoKey(given, config.githubHost);
  return localRepoKey(await repoRoot(given));
}

export async function tokenCommand(
  config: Config,
  opts: {
    action: string;
    repos: string[];
    readOnly: boolean;
    description: string | null;
    id: string | null;
    json: boolean;
  },
  io: Io,
): Promise<number> {
  const open = await openConfiguredStore(config);
  try {
    const tokens = open.store.tokens;
    switch (opts.action) {
      case "create": {
        if (opts.repos.length === 0)
          throw new UsageError("token create needs --repo OWNER/NAME (once per repository)");
        const repos = await Promise.all(opts.repos.map((r) => repoKeyOf(config, r)));
        const { token, record } = await tokens.create({
          repos,
          readOnly: opts.readOnly,
          description: opts.description ?? "",
        });
        if (opts.json) io.out(JSON.stringify({ token, ...record }, null, 2));
        else {
          io.out(token);
          io.err(
            `token ${record.id} for ${repos.join(", ")}${record.readOnly ? " (read-only)" : ""}: shown once, stored only as a hash`,
          );
        }
        return EXIT.ok;
      }
      case "list": {
        const list = await tokens.list();
        if (opts.json) io.out(JSON.stringify(list, null, 2));
        else if (list.length === 0)
          io.out("no API tokens: `reprise token create --repo OWNER/NAME`");
        else
          for (const t of list)
            io.out(
              `${t.id}  ${t.readOnly ? "read-only " : "read-write"}  ${t.repos.join(",")}  ${t.description}`,
            );
        return EXIT.ok;
      }
      case "revoke": {
        if (!opts.id)
          throw new UsageError("token revoke needs the token's id (`reprise token list`)");
        if (!(await tokens.revoke(opts.id))) throw new UsageError(`no token "${opts.id}"`);
        io.out(`revoked ${opts.id}`);
        return EXIT.ok;
      }
      default:
        throw new UsageError(`token ${opts.action}: choose create, list or revoke`);
    }
  } finally {
    await open.close();
  }
}
