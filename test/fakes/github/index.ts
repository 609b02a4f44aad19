export * from "./deliveries.js";
export * from "./server.js";

import { generateKeyPairSync } from "node:crypto";
import { pino } from "pino";
import type { ProbotOctokit } from "probot";
import { GitHubApp, type GitHubAppOptions } from "../../../app/app.js";
import { GitHubClient } from "../../../app/github-client.js";
import type { Store } from "../../../db/store.js";
import type { FakeGitHub } from "./server.js";

/** A throwaway GitHub App private key (PKCS#1 PEM, as GitHub hands them out). */
export function appPrivateKey(): string {
  const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  return privateKey.export({ type: "pkcs1", format: "pem" }).toString();
}

/** Polls `check` until it returns a value that is not undefined, null or false; throws after `ms`. */
export async function until<T>(
  what: string,
  check: () => T | undefined | null | false | Promise<T | undefined | null | false>,
  ms = 30_000,
): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v !== undefined && v !== null && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

let sharedKey: string | null = null;

/**
 * The GitHub App as tests and benchmarks build it, in process: a store, the fake GitHub (or an
 * address nothing answers), a silent log, a task-log reader with nothing to say, and its client
 * (`host` github.com unless given; `Octokit` Probot's). Everything of GitHubAppOptions can be
 * given; the private key is made once per process.
 */
export function testGitHubApp(
  o: Partial<Omit<GitHubAppOptions, "client">> & {
    store: Store;
    fake?: FakeGitHub;
    secret?: string;
    host?: string;
    Octokit?: typeof ProbotOctokit;
  },
): GitHubApp {
  sharedKey ??= appPrivateKey();
  const { fake, secret, host, Octokit, ...rest } = o;
  const log = rest.log ?? pino({ level: "silent" });
  const client = new GitHubClient(
    {
      appId: 1,
      privateKey: sharedKey,
      webhookSecret: secret ?? "s",
      baseUrl: fake?.baseUrl ?? "http://127.0.0.1:9/api/v3",
    },
    host ?? "github.com",
    log.child({ component: "github" }),
    Octokit,
  );
  return new GitHubApp({
    client,
    executor: { logTail: async () => null },
    publicUrl: null,
    ...rest,
    log,
  });
}
