/**
 * `run`, `relaunch` and `status` through a Reprise server's API (REPRISE_SERVER, with
 * REPRISE_TOKEN): register the commit from the checkout if the server lacks it, start or
 * relaunch, follow the execution by polling its document (the same document `--json` prints
 * locally: the API builds it with the same function), printing the same live progress. The
 * repository key is the GitHub repository the `origin` remote names (as the Action keys it), or
 * else `file://` and the checkout's path, as the local CLI keys it (runner/cli/README.md).
 */
import { createReadStream } from "node:fs";
import { Readable } from "node:stream";
import { branchOf, originRepoKey, specAt } from "../../client/checkout.js";
import { ApiClient, ApiClientError } from "../../client/client.js";
import { type Followed, followExecution } from "../../client/follow.js";
import { ensureRegistered, InvalidSpecError } from "../../client/register.js";
import { parseInputFlags } from "../../core/engine/input-flags.js";
import type { ExecutionDocument } from "../../core/report/document.js";
import { summaryLines } from "../../core/report/document.js";
import { parseSpec } from "../../core/spec/parse-spec.js";
import type { InputDecl } from "../../core/spec/types.js";
import { localRepoKey } from "../../core/version/repo-key.js";
import { type ArtifactSink, storeArtifactIn } from "../artifacts/ingest.js";
import { hashFile } from "../artifacts/local-store.js";
import type { Config } from "../config.js";
import { repoRoot, resolveCommit } from "../sources/local-git.js";
import type { RelaunchOptions, RunOptions } from "./execute.js";
import { readInputsFile, uploadInputs } from "./execute.js";
import { EXIT, type Io, UsageError } from "./io.js";
import { progressPrinter } from "./progress.js";

export type Server = NonNullable<Config["server"]>;

/** A refusal or failure of the server, said so that the user knows what to fix (exit 2). */
export class RemoteError extends Error {
  override readonly name = "RemoteError";
}

/** Between two reads of a followed execution. */
const POLL_MS = 500;
/** How long following rides out a server that does not answer before giving up (exit 2). */
const GIVE_UP_MS = 10 * 60_000;

/** A command the API cannot do yet: exit 2 rather than silently using a local store. */
export function notRemote(command: string, server: Server): never {
  throw new RemoteError(
    `reprise ${command} is not available through REPRISE_SERVER yet (${server.url}): unset REPRISE_SERVER to use the local store, or use the server's web UI`,
  );
}

function client(server: Server): ApiClient {
  // A few quick retries: a server that refuses connections is reported in about a second.
  return new ApiClient({ server: server.url, token: server.token, attempts: 3, backoffMs: 250 });
}

/** The server's refusals and failures, as messages that name what to fix. */
function explain(server: Server, e: unknown): never {
  if (!(e instanceof ApiClientError)) throw e;
  if (e.status === 0) throw new RemoteError(`${e.message} (REPRISE_SERVER)`);
  if (e.status === 401)
    throw new RemoteError(
      server.token
        ? `the Reprise server at ${server.url} refused REPRISE_TOKEN (${e.message}): set REPRISE_TOKEN to a valid API token, from \`reprise token create --repo ...\` where the server runs`
        : `the Reprise server at ${server.url} wants a token (${e.message}): set REPRISE_TOKEN to an API token, from \`reprise token create --repo ...\` where the server runs`,
    );
  if (e.status === 403)
    throw new RemoteError(
      `the Reprise server at ${server.url} refused: ${e.message} (REPRISE_TOKEN must be a token for this repository, and not read-only to start executions)`,
    );
  throw new RemoteError(e.message);
}

async function call<T>(server: Server, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    explain(server, e);
  }
}

/**
 * The repository's key on the server: the GitHub repository its `origin` remote names (the key
 * the Action and the GitHub App use), else `file://` and the checkout's path (the local CLI's).
 */
export async function remoteRepoKey(config: Config, root: string): Promise<string> {
  return (await originRepoKey(root, config.githubHost)) ?? localRepoKey(root);
}

/** Registers `ref` of the checkout if the server lacks it; its SHA, or null (said why) when its spec is invalid. */
async function registered(
  server: Server,
  api: ApiClient,
  repo: string,
  root: string,
  ref: string,
  io: Io,
): Promise<string | null> {
  const sha = await resolveCommit(root, ref);
  try {
    const r = await call(server, async () =>
      ensureRegistered(api, repo, root, sha, await branchOf(root, ref)),
    );
    if (r === "registered") io.err(`registered ${sha.slice(0, 12)} of ${repo} on ${server.url}`);
    return sha;
  } catch (e) {
    if (!(e instanceof InvalidSpecError)) throw e;
    io.err(e.message);
    io.err(
      `reprise.yaml of ${ref} (${sha.slice(0, 12)}) is invalid: nothing registered, nothing run`,
    );
    return null;
  }
}

/**
 * Uploads through the server's artifact API: each file hashed here first, and sent only when
 * the repository does not hold it yet (a HEAD), streamed; a directory's manifest last, once
 * every file it lists is there. The server verifies every digest as the bytes arrive.
 */
function apiSink(api: ApiClient, repo: string): ArtifactSink {
  return {
    async putFile(path) {
      const hashed = await hashFile(path);
      if (!(await api.headArtifact(repo, hashed.digest)))
        await api.uploadFile(
          repo,
          hashed.digest,
          Readable.toWeb(createReadStream(path)) as ReadableStream<Uint8Array>,
        );
      return hashed;
    },
    async putManifest(bytes, digest) {
      if (!(await api.headArtifact(repo, digest))) await api.putManifest(repo, digest, bytes);
    },
  };
}

export async function remoteRun(
  config: Config,
  server: Server,
  opts: RunOptions,
  io: Io,
): Promise<number> {
  const api = client(server);
  const root = await repoRoot(opts.repo);
  const repo = await remoteRepoKey(config, root);
  const sha = await registered(server, api, repo, root, opts.ref, io);
  if (sha === null) return EXIT.invalid;
  // The declared types say how to read `-i name=value`: from the spec at the commit.
  const text = await specAt(root, sha);
  const parsed = text === null ? null : parseSpec(text);
  const declared: Record<string, InputDecl> =
    parsed?.ok === true ? (parsed.spec.workflows[opts.workflow]?.inputs ?? {}) : {};
  const inputs = await uploadInputs(
    (path, type, label) =>
      call(server, () => storeArtifactIn(apiSink(api, repo), path, type, label)),
    declared,
    { ...readInputsFile(opts.inputsFile), ...parseInputFlags(opts.inputs, declared) },
    io,
    opts.cwd,
  );
  const doc = await call(server, () =>
    api.start(repo, {
      workflow: opts.workflow,
      sha,
      inputs,
      overwriteCache: opts.overwriteCache,
    }),
  );
  return finish(server, api, doc, opts, io);
}

export async function remoteRelaunch(
  config: Config,
  server: Server,
  opts: RelaunchOptions,
  io: Io,
): Promise<number> {
  const api = client(server);
  const parent = await call(server, () => api.execution(opts.execution));
  let sha: string | undefined;
  if (opts.ref !== null) {
    const root = await repoRoot(opts.repo);
    const repo = await remoteRepoKey(config, root);
    if (repo !== parent.repo)
      throw new UsageError(
        `execution ${parent.id} belongs to ${parent.repo}, not ${repo}; pass --repo`,
      );
    const at = await registered(server, api, repo, root, opts.ref, io);
    if (at === null) return EXIT.invalid;
    sha = at;
  }
  const doc = await call(server, () =>
    api.relaunch(parent.id, {
      ...(sha ? { sha } : {}),
      recover: opts.recover,
      overwriteCache: opts.overwriteCache,
    }),
  );
  return finish(server, api, doc, opts, io);
}

export async function remoteStatus(
  server: Server,
  opts: { execution: string; json: boolean; resume: boolean },
  io: Io,
): Promise<number> {
  if (opts.resume)
    throw new RemoteError(
      `status --resume drives an execution in this process; through REPRISE_SERVER (${server.url}) the server drives it: unset REPRISE_SERVER to resume one on the local store`,
    );
  const api = client(server);
  return report(await call(server, () => api.execution(opts.execution)), opts.json, io);
}

async function finish(
  server: Server,
  api: ApiClient,
  doc: ExecutionDocument,
  opts: RunOptions | RelaunchOptions,
  io: Io,
): Promise<number> {
  if (opts.detach) return report(doc, opts.json, io);
  const printer = progressPrinter(io, opts.progress);
  printer.started(doc);
  const { doc: done, ended } = await follow(server, api, doc, printer, io, opts.signal);
  if (ended !== "finished")
    io.err(
      `interrupted: ${done.id} is ${done.status} on ${server.url}, which goes on with it; \`reprise status ${done.id}\` shows it`,
    );
  return report(done, opts.json, io);
}

/**
 * Follows the execution to its end (or Ctrl-C) with the client's follower, turning the nodes that
 * changed between two documents into the progress printer's node events. A server that does not
 * answer (network, 5xx) is ridden out with backoff for up to GIVE_UP_MS: the execution goes on
 * there meanwhile.
 */
async function follow(
  server: Server,
  api: ApiClient,
  first: ExecutionDocument,
  printer: ReturnType<typeof progressPrinter>,
  io: Io,
  signal?: AbortSignal,
): Promise<Followed> {
  try {
    return await followExecution(api, first, {
      intervalMs: POLL_MS,
      signal,
      onUpdate: (doc, changed) => {
        for (const n of changed)
          printer.onEvent({
            type: "node",
            executionId: doc.id,
            nodeId: n.id,
            state: n.status,
            cache: n.cache,
            attempt: n.attempts,
            error: n.error,
            source: n.source,
          });
      },
      outage: {
        giveUpMs: GIVE_UP_MS,
        onLost: (e) =>
          io.err(`${e.message}; retrying (execution ${first.id} goes on on the server)`),
        onBack: () => io.err(`the server answers again; following ${first.id}`),
      },
    });
  } catch (e) {
    // A transient error thrown is one the follower rode out for GIVE_UP_MS.
    if (e instanceof ApiClientError && e.transient)
      throw new RemoteError(
        `the Reprise server at ${server.url} has not answered for ${GIVE_UP_MS / 60_000} minutes (${e.message}); execution ${first.id} goes on there: \`reprise status ${first.id}\` later`,
      );
    explain(server, e);
  }
}

function report(doc: ExecutionDocument, json: boolean, io: Io): number {
  if (json) io.out(JSON.stringify(doc, null, 2));
  else for (const line of summaryLines(doc)) io.out(line);
  return doc.status === "FAILED" || doc.status === "ABORTED" ? EXIT.failed : EXIT.ok;
}
