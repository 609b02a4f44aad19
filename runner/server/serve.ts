/**
 * `reprise serve`: the Hono app over HTTP with the engine running beside it, in one process.
 * Authentication is explicit: every API call needs a credential (an API token or an OIDC token)
 * unless REPRISE_AUTH=none, which only a server on a loopback address accepts (with a warning).
 * Having no token yet, or revoking the last one, never opens it.
 */
import { serve as listen, type ServerType } from "@hono/node-server";
import type { Logger } from "pino";
import type { Config } from "../config.js";
import { defaultLog } from "../log.js";
import { type GitHubCode, openRuntime, type Runtime } from "../runtime.js";
import { createApp } from "./app.js";
import { Authenticator } from "./auth.js";
import type { ServerDeps } from "./deps.js";
import { isLoopback } from "./hosts.js";
import { Metrics } from "./metrics.js";
import { loadOidcRules } from "./oidc-rules.js";
import { ServeError } from "./serve-error.js";
import { uiRoutes } from "./ui/index.js";

/**
 * How long one request may take to arrive, body included. Node's default (300 s) would cut off an
 * artifact upload of a few GiB; headers still have to arrive within Node's 60 s.
 */
const REQUEST_TIMEOUT_MS = 60 * 60 * 1000;

export interface Served {
  /** The address it listens on, e.g. http://127.0.0.1:3000. */
  url: string;
  runtime: Runtime;
  log: Logger;
  /** Stops accepting, stops the engine (running attempts go on; the next runner re-attaches), closes. */
  close(): Promise<void>;
}

export interface ServeOptions {
  /** Extra parts mounted by the caller: the GitHub App's webhooks, the web UI. */
  extend?: (deps: ServerDeps, runtime: Runtime) => Pick<ServerDeps, "webhooks" | "ui">;
  log?: Logger;
  /** Code at a SHA of GitHub repositories for the executor (runner/runtime.ts). */
  github?: GitHubCode;
}

export { isLoopback } from "./hosts.js";

export async function startServer(config: Config, opts: ServeOptions = {}): Promise<Served> {
  const log = opts.log ?? defaultLog(config);
  const metrics = new Metrics();
  const runtime = await openRuntime(config, {
    onEvent: metrics.onEvent,
    log,
    ...(opts.github ? { github: opts.github } : {}),
  });
  const stop = new AbortController();
  let server: ServerType | null = null;
  let working: Promise<void> | null = null;
  try {
    const store = runtime.open.store;
    const open = config.auth === "none";
    if (open && !isLoopback(config.host))
      throw new ServeError(
        `refusing REPRISE_AUTH=none on ${config.host}: an open server listens only on a loopback address (HOST=127.0.0.1); elsewhere create an API token (\`reprise token create --repo OWNER/NAME\`) or set REPRISE_OIDC_ISSUER and REPRISE_OIDC_AUDIENCE`,
      );
    if (open)
      log.warn(
        `REPRISE_AUTH=none: the API on ${config.host} is open to anyone who can reach this machine, with no credential`,
      );
    else if (config.oidc === null && (await store.tokens.list()).length === 0)
      log.warn(
        "no API token and no OIDC issuer: every API call answers 401 until `reprise token create --repo OWNER/NAME` makes one (or restart with REPRISE_AUTH=none on a loopback address)",
      );
    const auth = new Authenticator({
      store,
      open,
      oidc: config.oidc
        ? {
            issuer: config.oidc.issuer,
            audience: config.oidc.audience,
            githubHost: config.githubHost,
            // A bad rules file refuses the start, naming the line to fix.
            rules: config.oidc.rulesPath ? loadOidcRules(config.oidc.rulesPath) : [],
            productionBranch: config.oidc.productionBranch,
          }
        : null,
    });
    const deps: ServerDeps = {
      store,
      executor: runtime.executor,
      artifacts: runtime.artifacts,
      auth,
      metrics,
      publicUrl: config.publicUrl,
      // A HOST that is one address (not 0.0.0.0 or ::) is a name clients may use.
      hosts: /^(0\.0\.0\.0|::|\[::\])$/.test(config.host)
        ? []
        : [config.host.includes(":") ? `[${config.host}]` : config.host],
      log: (level, message, extra) => log[level](extra ?? {}, message),
    };
    Object.assign(deps, opts.extend?.(deps, runtime) ?? {});
    deps.ui ??= uiRoutes(deps);
    const app = createApp(deps);
    const address = await new Promise<{ port: number }>((resolve, reject) => {
      server = listen(
        {
          fetch: app.fetch,
          hostname: config.host,
          port: config.port,
          serverOptions: { requestTimeout: REQUEST_TIMEOUT_MS },
        },
        (info) => resolve(info),
      );
      server.once("error", reject);
    });
    working = runtime.engine.work(stop.signal).catch((e: Error) => {
      log.error({ err: e.stack ?? e.message }, "the engine stopped");
    });
    runtime.scheduler.start();
    const host = config.host.includes(":") ? `[${config.host}]` : config.host;
    const url = `http://${host}:${address.port}`;
    log.info({ url, owner: runtime.engine.owner, auth: open ? "open" : "required" }, "serving");
    return {
      url,
      runtime,
      log,
      close: async () => {
        stop.abort();
        await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
        await working;
        await runtime.close();
      },
    };
  } catch (e) {
    stop.abort();
    const s = server as ServerType | null;
    if (s) s.close();
    await working;
    await runtime.close();
    throw e;
  }
}
