/**
 * `reprise serve`: the Hono app over HTTP with the engine running beside it, in one process.
 * Authentication is decided at start: with OIDC configured or any API token stored, every API
 * call needs a credential; with neither, a server on a loopback address runs open (with a
 * warning) and one on any other address refuses to start.
 */
import { serve as listen, type ServerType } from "@hono/node-server";
import type { Logger } from "pino";
import type { Runtime } from "../cli/runtime.js";
import { openRuntime } from "../cli/runtime.js";
import type { Config } from "../config.js";
import { defaultLog } from "../log.js";
import { createApp, type ServerDeps } from "./app.js";
import { Authenticator } from "./auth.js";
import { Metrics } from "./metrics.js";
import { uiRoutes } from "./ui/index.js";

/**
 * How long one request may take to arrive, body included. Node's default (300 s) would cut off an
 * artifact upload of a few GiB; headers still have to arrive within Node's 60 s.
 */
const REQUEST_TIMEOUT_MS = 60 * 60 * 1000;

export class ServeError extends Error {
  override readonly name = "ServeError";
}

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
  extend?: (deps: ServerDeps) => Pick<ServerDeps, "webhooks" | "ui">;
  log?: Logger;
}

export function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || /^127\./.test(host);
}

export async function startServer(config: Config, opts: ServeOptions = {}): Promise<Served> {
  const log = opts.log ?? defaultLog(config);
  const metrics = new Metrics();
  const runtime = await openRuntime(config, metrics.onEvent, log);
  const stop = new AbortController();
  let server: ServerType | null = null;
  let working: Promise<void> | null = null;
  try {
    const store = runtime.open.store;
    const tokens = (await store.tokens.list()).length;
    const secured = config.oidc !== null || tokens > 0;
    if (!secured && !isLoopback(config.host))
      throw new ServeError(
        `refusing to serve on ${config.host} without authentication: create an API token (\`reprise token create --repo OWNER/NAME\`) or set REPRISE_OIDC_ISSUER and REPRISE_OIDC_AUDIENCE, or listen on 127.0.0.1`,
      );
    if (!secured)
      log.warn(
        `no API token and no OIDC issuer configured: the API on ${config.host} is open to anyone who can reach it. \`reprise token create\` secures it (restart to apply).`,
      );
    const auth = new Authenticator({
      store,
      open: !secured,
      oidc: config.oidc ? { ...config.oidc, githubHost: config.githubHost } : null,
    });
    const deps: ServerDeps = {
      store,
      executor: runtime.executor,
      artifacts: runtime.artifacts,
      auth,
      metrics,
      publicUrl: config.publicUrl,
      log: (level, message, extra) => log[level](extra ?? {}, message),
    };
    Object.assign(deps, opts.extend?.(deps) ?? {});
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
    const host = config.host.includes(":") ? `[${config.host}]` : config.host;
    const url = `http://${host}:${address.port}`;
    log.info({ url, owner: runtime.engine.owner, auth: secured ? "required" : "open" }, "serving");
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
