/** What every handler of the GitHub App works with. */
import type { Logger } from "pino";
import type { Store } from "../db/store.js";
import type { Executor } from "../runner/executors/types.js";
import type { GitHubClient } from "./github-client.js";

export interface AppContext {
  store: Store;
  client: GitHubClient;
  /** Log tails of failed nodes, for the check run. */
  executor: Pick<Executor, "logTail">;
  /** REPRISE_PUBLIC_URL: the execution page is `<publicUrl>/executions/<id>`. */
  publicUrl: string | null;
  log: Logger;
}

/** The answer a handler gives about one delivery: stored as the delivery's outcome. */
export type Outcome = string;

/** The delivery being processed: its id, and how many times it was taken up (1 the first time). */
export interface DeliveryAttempt {
  id: string;
  attempts: number;
}

/** Fields of webhook payloads the handlers read; every one is checked before use. */
export interface RepositoryPayload {
  full_name: string;
  name: string;
  owner: { login?: string; name?: string };
  default_branch?: string;
  master_branch?: string;
}

export interface Sender {
  login: string;
  type?: string;
}

export function isBot(sender: Sender | undefined): boolean {
  return !sender || sender.type === "Bot" || sender.login.endsWith("[bot]");
}
