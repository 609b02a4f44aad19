/**
 * What the server is built from (app.ts's `createApp`, the API, the UI): the store and the parts
 * of the runtime it serves, passed in so tests build it on any store. A file of its own, so that
 * the app and the routes it mounts import it rather than each other.
 */
import type { Hono } from "hono";
import type { Store } from "../../db/store.js";
import type { BlobStore } from "../artifacts/store.js";
import type { Executor } from "../executors/types.js";
import type { Authenticator } from "./auth.js";
import type { Metrics } from "./metrics.js";

export interface ServerDeps {
  store: Store;
  /** Log tails of attempts (the executor that ran them). */
  executor: Pick<Executor, "logTail">;
  /**
   * Where `file` and `directory` values live (runner/artifacts): uploads, downloads, previews.
   * Absent: the artifact routes answer 503 and the execution page shows no previews.
   */
  artifacts?: BlobStore | undefined;
  auth: Authenticator;
  metrics: Metrics;
  /** Where users reach this server (links in check runs, the UI); null: relative links. */
  publicUrl: string | null;
  /**
   * Host names answered besides loopback ones and the public URL's (runner/server/hosts.ts):
   * the address listened on, when it is one.
   */
  hosts?: readonly string[] | undefined;
  log: (level: "info" | "warn" | "error", message: string, extra?: Record<string, unknown>) => void;
  /** The GitHub App's webhook handler, mounted at /api/github/webhooks when configured. */
  webhooks?: ((req: Request) => Promise<Response>) | undefined;
  /** The web UI, mounted at / (runner/server/ui). */
  ui?: Hono | undefined;
}
