/** The `reprise` command line (docs/design.md section 11). Parses arguments and dispatches. */
import { parseArgs } from "node:util";
import { InputFlagError } from "../../core/engine/input-flags.js";
import { isDiskFull, StoreError } from "../../db/errors.js";
import { type Config, ConfigError, loadConfig } from "../config.js";
import type { GitHubCode } from "../runtime.js";
import type { Served } from "../server/serve.js";
import { GitError } from "../sources/local-git.js";
import { artifactsGc, artifactsGet, artifactsLs } from "./artifacts.js";
import { relaunchCommand, runCommand, statusCommand } from "./execute.js";
import { historyCommand } from "./history.js";
import {
  cacheCommand,
  DEFAULT_LOG_TAIL,
  lineageCommand,
  logsCommand,
  positiveInt,
} from "./inspect.js";
import { EXIT, type Io, UsageError } from "./io.js";
import { migrateCommand } from "./migrate.js";
import { notRemote, RemoteError, remoteRelaunch, remoteRun, remoteStatus } from "./remote.js";
import { serveCommand, tokenCommand } from "./serve.js";
import { validate } from "./validate.js";
import {
  activateCommand,
  diffCommand,
  productionCommand,
  registerCommand,
  versionsCommand,
} from "./versions.js";
import { workerCommand } from "./worker.js";

const USAGE = `usage: reprise <command> [options]

commands:
  validate   check reprise.yaml and print each task's digest
             [--repo DIR] [--ref REF] [--json]
             without --ref, validates the working tree as it would be committed
  run WORKFLOW   register the commit and execute a workflow
             [-i name=value]... (-i name=@PATH uploads a file or directory input; -i name=sha256:... reuses one) [--inputs FILE] [--overwrite-cache] [--detach] [--json] [--repo DIR] [--ref REF]
  relaunch EXECUTION   run an execution's workflow and inputs again; the cache decides what runs
             [--ref REF] [--recover] [--overwrite-cache] [--detach] [--json]
  status EXECUTION     the execution's document [--json] [--resume: drive it here if no runner does]
  logs EXECUTION [NODE]   a node's log, default its last attempt (without NODE: every node that ran)
             [--attempt N] [--tail BYTES (default 65536)] [--json]
  lineage EXECUTION NODE  where each output of the node was computed: execution, node, version,
             task digest, cache key, time [--json]
  cache stats|evict    the repository's memo cache: entries and hits per task, or evict entries
             [--repo DIR] [--task NAME|DIGEST] [--key KEY] [--execution ID] [--json]
             evict removes the entries matching all of --task, --key, --execution (at least one)
  artifacts get DIGEST -o PATH   write an artifact (a file, or a directory as its tree) to PATH [--repo DIR]
  artifacts ls EXECUTION         the file and directory values an execution read and wrote,
             with where each was produced [--json]
  artifacts gc         remove the stored blobs nothing references (cache entries, executions of
             production versions, unfinished executions), oldest first, and their records
             [--dry-run] [--older-than 30d] [--max-size 50GiB] [--json]
  register             register the commit's version (--ref, default HEAD) [--json]
  versions             registered versions of the repository, production marked [--json] [--limit N]
  diff A B             tasks and workflows added / removed / changed / renamed between two commits [--json]
  history TASK         the versions in which a task's digest changed (commit, branch, message) and
             the executions that ran each [--json]
  production           the production version and its activation history [--json]
  activate REF         make a commit the production version (a revert reads "rollback to <sha>") [--reason TEXT]
  worker               claim and drive executions until SIGINT/SIGTERM [--once: finish what is pending, then exit]
  serve                the HTTP API, web UI and GitHub webhooks on HOST:PORT (default 127.0.0.1:3000),
             with the engine beside it; SIGINT/SIGTERM stops it
  token create|list|revoke   API tokens: create --repo OWNER/NAME [--repo ...] [--read-only]
             [--description TEXT] prints the token once; revoke ID
  migrate    apply pending database migrations [--json]
             (DATABASE_URL, or the embedded database under REPRISE_DATA_DIR)

options:
  --repo DIR   the git repository (default: the one containing the current directory)
  --ref REF    a commit, branch or tag
  --json       machine-readable output on stdout
  -h, --help   this help

internal: pod-io fetch-inputs|store-outputs runs inside a kubernetes attempt's pod (not for users).

REPRISE_SERVER=URL (with REPRISE_TOKEN=API token): run, relaunch and status go through that
server's API (the commit is registered there from the checkout if it lacks it); the other store
commands exit 2 there for now. validate, serve, worker, migrate work locally as ever.
`;

/**
 * What the composition root (bin.ts) plugs in from the edges the CLI does not import: the GitHub
 * App's. Without them (tests calling `main`), commands run as with no GitHub App configured.
 */
export interface Edges {
  /** Code at a SHA of GitHub repositories, for the executors of `run`, `relaunch`, `status`, `worker`. */
  github?: GitHubCode;
  /** Starts `reprise serve` (default `startServer`: no GitHub App mounted). */
  serve?: (config: Config) => Promise<Served>;
}

export async function main(
  argv: readonly string[],
  io: Io,
  cwd: string,
  env: Readonly<Record<string, string | undefined>>,
  tty = false,
  signal?: AbortSignal,
  edges: Edges = {},
): Promise<number> {
  /** The configuration of a command that works on the local store only, so far. */
  const local = (command: string) => {
    const config = loadConfig(env);
    if (config.server) notRemote(command, config.server);
    return config;
  };
  try {
    const [command, ...rest] = argv;
    if (command === undefined || command === "-h" || command === "--help" || command === "help") {
      io.out(USAGE);
      return command === undefined ? EXIT.invalid : EXIT.ok;
    }
    switch (command) {
      case "validate": {
        const { values } = parse(rest, {
          repo: { type: "string" },
          ref: { type: "string" },
          json: { type: "boolean", default: false },
        });
        return await validate(
          {
            repo: (values.repo as string | undefined) ?? cwd,
            ref: (values.ref as string | undefined) ?? null,
            json: values.json === true,
          },
          io,
        );
      }
      case "run": {
        const { values, positionals } = parse(
          rest,
          {
            ...EXECUTE_OPTIONS,
            input: { type: "string", short: "i", multiple: true },
            inputs: { type: "string" },
          },
          1,
        );
        const config = loadConfig(env);
        const opts = {
          ...executeOptions(values, cwd, tty, signal, edges),
          workflow: positionals[0] as string,
          ref: str(values.ref) ?? "HEAD",
          inputs: (values.input as string[] | undefined) ?? [],
          inputsFile: str(values.inputs) ?? null,
          cwd,
        };
        return config.server
          ? await remoteRun(config, config.server, opts, io)
          : await runCommand(config, opts, io);
      }
      case "relaunch": {
        const { values, positionals } = parse(
          rest,
          { ...EXECUTE_OPTIONS, recover: { type: "boolean", default: false } },
          1,
        );
        const config = loadConfig(env);
        const opts = {
          ...executeOptions(values, cwd, tty, signal, edges),
          execution: positionals[0] as string,
          ref: str(values.ref) ?? null,
          recover: values.recover === true,
        };
        return config.server
          ? await remoteRelaunch(config, config.server, opts, io)
          : await relaunchCommand(config, opts, io);
      }
      case "status": {
        const { values, positionals } = parse(
          rest,
          {
            json: { type: "boolean", default: false },
            resume: { type: "boolean", default: false },
          },
          1,
        );
        const json = values.json === true;
        const config = loadConfig(env);
        if (config.server)
          return await remoteStatus(
            config.server,
            { execution: positionals[0] as string, json, resume: values.resume === true },
            io,
          );
        return await statusCommand(
          config,
          {
            execution: positionals[0] as string,
            json,
            resume: values.resume === true,
            progress: !json && tty,
            ...(signal ? { signal } : {}),
            ...(edges.github ? { github: edges.github } : {}),
          },
          io,
        );
      }
      case "logs": {
        const spec: OptionSpec = {
          attempt: { type: "string" },
          tail: { type: "string" },
          json: { type: "boolean", default: false },
        };
        const parsed = parse(rest, spec, [1, 2]);
        const { values, positionals } = parsed;
        return await logsCommand(
          local("logs"),
          {
            execution: positionals[0] as string,
            node: positionals[1] ?? null,
            attempt: positiveInt(str(values.attempt), "--attempt", "2"),
            tail: positiveInt(str(values.tail), "--tail", "65536") ?? DEFAULT_LOG_TAIL,
            json: values.json === true,
          },
          io,
        );
      }
      case "lineage": {
        const { values, positionals } = parse(
          rest,
          { json: { type: "boolean", default: false } },
          2,
        );
        return await lineageCommand(
          local("lineage"),
          {
            execution: positionals[0] as string,
            node: positionals[1] as string,
            json: values.json === true,
          },
          io,
        );
      }
      case "cache": {
        const { values, positionals } = parse(
          rest,
          {
            repo: { type: "string" },
            task: { type: "string" },
            key: { type: "string" },
            execution: { type: "string" },
            json: { type: "boolean", default: false },
          },
          1,
        );
        return await cacheCommand(
          local("cache"),
          {
            action: positionals[0] as string,
            repo: str(values.repo) ?? null,
            cwd,
            task: str(values.task) ?? null,
            key: str(values.key) ?? null,
            execution: str(values.execution) ?? null,
            json: values.json === true,
          },
          io,
        );
      }
      case "artifacts": {
        const { values, positionals } = parse(
          rest,
          {
            output: { type: "string", short: "o" },
            repo: { type: "string" },
            json: { type: "boolean", default: false },
            "dry-run": { type: "boolean", default: false },
            "older-than": { type: "string" },
            "max-size": { type: "string" },
          },
          [1, 2],
        );
        const [action, arg] = positionals;
        /** gc's options given to get or ls, or theirs to gc: refused rather than ignored. */
        const foreign = (allowed: string[]) => {
          const given = Object.keys(values).filter(
            (k) => !allowed.includes(k) && values[k] !== undefined && values[k] !== false,
          );
          if (given.length > 0)
            throw new UsageError(`artifacts ${action} does not take --${given.join(", --")}`);
        };
        if (action === "get") {
          foreign(["output", "repo", "json"]);
          const output = str(values.output);
          if (!arg || !output)
            throw new UsageError("usage: reprise artifacts get DIGEST -o PATH [--repo DIR]");
          return await artifactsGet(
            local("artifacts get"),
            { digest: arg, output, repo: str(values.repo) ?? null, cwd },
            io,
          );
        }
        if (action === "ls") {
          foreign(["output", "repo", "json"]);
          if (!arg) throw new UsageError("usage: reprise artifacts ls EXECUTION [--json]");
          return await artifactsLs(
            local("artifacts ls"),
            { execution: arg, json: values.json === true },
            io,
          );
        }
        if (action === "gc") {
          foreign(["dry-run", "older-than", "max-size", "json"]);
          if (arg !== undefined)
            throw new UsageError(
              `artifacts gc takes no argument, got "${arg}": e.g. reprise artifacts gc --older-than 30d`,
            );
          return await artifactsGc(
            local("artifacts gc"),
            {
              dryRun: values["dry-run"] === true,
              olderThan: str(values["older-than"]) ?? null,
              maxSize: str(values["max-size"]) ?? null,
              json: values.json === true,
            },
            io,
          );
        }
        throw new UsageError(
          `unknown artifacts command "${action}": use get DIGEST -o PATH, ls EXECUTION, or gc`,
        );
      }
      case "register": {
        const { values } = parse(rest, {
          repo: { type: "string" },
          ref: { type: "string" },
          json: { type: "boolean", default: false },
        });
        return await registerCommand(
          local("register"),
          {
            repo: str(values.repo) ?? cwd,
            ref: str(values.ref) ?? "HEAD",
            json: values.json === true,
          },
          io,
        );
      }
      case "versions": {
        const { values } = parse(rest, {
          repo: { type: "string" },
          json: { type: "boolean", default: false },
          limit: { type: "string" },
        });
        const limit = Number(str(values.limit) ?? "50");
        if (!Number.isInteger(limit) || limit < 1)
          throw new UsageError("--limit takes a positive whole number");
        return await versionsCommand(
          local("versions"),
          { repo: str(values.repo) ?? cwd, json: values.json === true, limit },
          io,
        );
      }
      case "diff": {
        const { values, positionals } = parse(
          rest,
          { repo: { type: "string" }, json: { type: "boolean", default: false } },
          2,
        );
        return await diffCommand(
          local("diff"),
          {
            repo: str(values.repo) ?? cwd,
            a: positionals[0] as string,
            b: positionals[1] as string,
            json: values.json === true,
          },
          io,
        );
      }
      case "history": {
        const { values, positionals } = parse(
          rest,
          { repo: { type: "string" }, json: { type: "boolean", default: false } },
          1,
        );
        return await historyCommand(
          local("history"),
          {
            repo: str(values.repo) ?? cwd,
            task: positionals[0] as string,
            json: values.json === true,
          },
          io,
        );
      }
      case "production": {
        const { values } = parse(rest, {
          repo: { type: "string" },
          json: { type: "boolean", default: false },
        });
        return await productionCommand(
          local("production"),
          { repo: str(values.repo) ?? cwd, json: values.json === true },
          io,
        );
      }
      case "activate": {
        const { values, positionals } = parse(
          rest,
          {
            repo: { type: "string" },
            reason: { type: "string" },
            json: { type: "boolean", default: false },
          },
          1,
        );
        return await activateCommand(
          local("activate"),
          {
            repo: str(values.repo) ?? cwd,
            ref: positionals[0] as string,
            reason: str(values.reason) ?? null,
            json: values.json === true,
          },
          io,
        );
      }
      case "worker": {
        const { values } = parse(rest, { once: { type: "boolean", default: false } });
        return await workerCommand(
          loadConfig(env),
          { once: values.once === true, ...(edges.github ? { github: edges.github } : {}) },
          io,
          signal ?? new AbortController().signal,
        );
      }
      case "serve": {
        parse(rest, {});
        return await serveCommand(
          loadConfig(env),
          io,
          signal ?? new AbortController().signal,
          // The server (Hono, the API, the UI) is loaded by this command alone.
          edges.serve ?? (async (c) => (await import("../server/serve.js")).startServer(c)),
        );
      }
      case "token": {
        const { values, positionals } = parse(
          rest,
          {
            repo: { type: "string", multiple: true },
            "read-only": { type: "boolean", default: false },
            description: { type: "string" },
            json: { type: "boolean", default: false },
          },
          [1, 2],
        );
        return await tokenCommand(
          local("token"),
          {
            action: positionals[0] as string,
            id: positionals[1] ?? null,
            repos: (values.repo as string[] | undefined) ?? [],
            readOnly: values["read-only"] === true,
            description: (values.description as string | undefined) ?? null,
            json: values.json === true,
          },
          io,
        );
      }
      case "migrate": {
        const { values } = parse(rest, { json: { type: "boolean", default: false } });
        return await migrateCommand(loadConfig(env), { json: values.json === true }, io);
      }
      case "pod-io": {
        // Run inside a kubernetes attempt's pod: no configuration, no database, only its env.
        const { podIo } = await import("../executors/kubernetes/pod-io/main.js");
        return await podIo(rest, env, io, signal);
      }
      default:
        throw new UsageError(`unknown command "${command}"`);
    }
  } catch (e) {
    // A bad `-i name=value` is a usage error here (core's parser is shared with the App).
    if (e instanceof UsageError || e instanceof InputFlagError) {
      io.err(`reprise: ${e.message}\n\n${USAGE}`);
      return EXIT.invalid;
    }
    if (
      e instanceof GitError ||
      e instanceof ConfigError ||
      e instanceof StoreError ||
      e instanceof RemoteError
    ) {
      io.err(`reprise: ${e.message}`);
      return EXIT.invalid;
    }
    if (isDiskFull(e)) {
      io.err(
        "reprise: the disk holding the database is full (REPRISE_DATA_DIR, or the Postgres server's). Free some space and run the command again: what it was writing was not half-written, each change is one transaction.",
      );
      return EXIT.invalid;
    }
    throw e;
  }
}

type OptionSpec = Record<
  string,
  { type: "string" | "boolean"; default?: string | boolean; short?: string; multiple?: boolean }
>;

/** Parses options strictly; `positionals`: how many positional arguments (or [min, max]) the command takes. */
function parse(
  args: string[],
  options: OptionSpec,
  positionals: number | readonly [number, number] = 0,
) {
  const [min, max] = typeof positionals === "number" ? [positionals, positionals] : positionals;
  let parsed: {
    values: Record<string, string | boolean | string[] | undefined>;
    positionals: string[];
  };
  try {
    parsed = parseArgs({ args, options, strict: true, allowPositionals: true }) as typeof parsed;
  } catch (e) {
    throw new UsageError(e instanceof Error ? e.message : String(e));
  }
  const n = parsed.positionals.length;
  if (n < min || n > max) {
    throw new UsageError(
      max === 0
        ? `unexpected argument "${parsed.positionals[0]}"`
        : `expected ${min === max ? min : `${min} to ${max}`} argument(s), got ${n}`,
    );
  }
  return parsed;
}

/** The options `run` and `relaunch` share. */
const EXECUTE_OPTIONS: OptionSpec = {
  repo: { type: "string" },
  ref: { type: "string" },
  "overwrite-cache": { type: "boolean", default: false },
  detach: { type: "boolean", default: false },
  json: { type: "boolean", default: false },
};

function executeOptions(
  values: Record<string, string | boolean | string[] | undefined>,
  cwd: string,
  tty: boolean,
  signal: AbortSignal | undefined,
  edges: Edges,
) {
  const json = values.json === true;
  return {
    repo: str(values.repo) ?? cwd,
    overwriteCache: values["overwrite-cache"] === true,
    detach: values.detach === true,
    json,
    // Live progress on a terminal; never with --json, never when piped.
    progress: !json && tty,
    ...(signal ? { signal } : {}),
    ...(edges.github ? { github: edges.github } : {}),
  };
}

function str(v: unknown): string | undefined {
  return typeof v === "string" ? v : undefined;
}
