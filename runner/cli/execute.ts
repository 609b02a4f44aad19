/** `reprise run`, `relaunch` and `status`: register, create the execution, drive it, report it. */

import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { parse as parseYaml } from "yaml";
import {
  type ArtifactRef,
  type ArtifactType,
  formatBytes,
  isArtifactType,
  shortDigest,
} from "../../core/artifacts/ref.js";
import { parseInputFlags } from "../../core/engine/input-flags.js";
import { summaryLines } from "../../core/report/document.js";
import { formatDiagnostic } from "../../core/spec/diagnostics.js";
import type { InputDecl, JsonValue } from "../../core/spec/types.js";
import { localRepoKey } from "../../core/version/repo-key.js";
import type { Store } from "../../db/store.js";
import type { ExecutionRecord, VersionRecord } from "../../db/types.js";
import { TERMINAL_EXECUTION_STATES } from "../../db/types.js";
import { ArtifactShapeError, storeArtifact } from "../artifacts/ingest.js";
import type { Config } from "../config.js";
import { executionDocument, orderedNodes } from "../documents.js";
import { registerLocalCommitIfValid } from "../registry.js";
import { type GitHubCode, openRuntime, type Runtime, type RuntimeOptions } from "../runtime.js";
import { RequestError, relaunchExecution, startExecution } from "../service.js";
import { gitUser, repoRoot } from "../sources/local-git.js";
import { EXIT, type Io, UsageError } from "./io.js";
import { progressPrinter } from "./progress.js";

export interface CommonOptions {
  repo: string;
  json: boolean;
  detach: boolean;
  /** Live progress (a terminal, and not --json). */
  progress: boolean;
  /** Ctrl-C: stop driving; the execution stays as it is for a worker or `status --resume`. */
  signal?: AbortSignal;
  /** Code at a SHA of GitHub repositories (the composition root's, runner/cli/main.ts `Edges`). */
  github?: GitHubCode;
}

export interface RunOptions extends CommonOptions {
  workflow: string;
  ref: string;
  inputs: string[];
  inputsFile: string | null;
  overwriteCache: boolean;
  /** Where `-i NAME=@PATH` paths are relative to. */
  cwd?: string;
}

export async function runCommand(config: Config, opts: RunOptions, io: Io): Promise<number> {
  const root = await repoRoot(opts.repo);
  const printer = progressPrinter(io, opts.progress);
  const rt = await openRuntime(config, runtimeOptions(printer, opts));
  try {
    const version = await registerOrExplain(rt.open.store, root, opts.ref, io);
    if (!version) return EXIT.invalid;
    const wf = await rt.open.store.versions
      .resolveWorkflow(version.repo, version.sha, opts.workflow)
      .catch((e: Error) => {
        throw new UsageError(e.message);
      });
    const actor = (await gitUser(root)) ?? config.user;
    const inputs = await uploadInputs(
      async (path, type, label) => {
        const ref = await storeArtifact(rt.artifacts, path, type, label);
        await rt.open.store.artifacts.recordUpload(
          version.repo,
          { ...ref, digest: ref.artifact },
          actor,
        );
        return ref;
      },
      wf.spec.inputs,
      { ...readInputsFile(opts.inputsFile), ...parseInputFlags(opts.inputs, wf.spec.inputs) },
      io,
      opts.cwd,
    );
    const exec = await startExecution(rt.open.store, {
      repo: version.repo,
      at: { sha: version.sha },
      workflow: opts.workflow,
      inputs,
      trigger: { kind: "cli", actor },
      overwriteCache: opts.overwriteCache,
    }).catch(usage);
    return await finish(rt, exec, opts, io, printer);
  } finally {
    await rt.close();
  }
}

export interface RelaunchOptions extends CommonOptions {
  execution: string;
  ref: string | null;
  recover: boolean;
  overwriteCache: boolean;
}

export async function relaunchCommand(
  config: Config,
  opts: RelaunchOptions,
  io: Io,
): Promise<number> {
  const printer = progressPrinter(io, opts.progress);
  const rt = await openRuntime(config, runtimeOptions(printer, opts));
  try {
    const parent = await rt.open.store.executions.get(opts.execution);
    if (!parent)
      throw new UsageError(
        `no execution "${opts.execution}"; \`reprise status\` lists none by that id`,
      );
    let sha = parent.sha;
    if (opts.ref !== null) {
      const root = await repoRoot(opts.repo);
      if (localRepoKey(root) !== parent.repo) {
        throw new UsageError(
          `execution ${parent.id} belongs to ${parent.repo}, not ${localRepoKey(root)}; pass --repo`,
        );
      }
      const version = await registerOrExplain(rt.open.store, root, opts.ref, io);
      if (!version) return EXIT.invalid;
      sha = version.sha;
    }
    const exec = await relaunchExecution(rt.open.store, {
      parent: parent.id,
      sha,
      recover: opts.recover,
      overwriteCache: opts.overwriteCache,
      trigger: { kind: "cli", actor: config.user },
    }).catch(usage);
    return await finish(rt, exec, opts, io, printer);
  } finally {
    await rt.close();
  }
}

export async function statusCommand(
  config: Config,
  opts: {
    execution: string;
    json: boolean;
    resume: boolean;
    progress: boolean;
    signal?: AbortSignal;
    github?: GitHubCode;
  },
  io: Io,
): Promise<number> {
  const printer = progressPrinter(io, opts.progress);
  const rt = await openRuntime(config, runtimeOptions(printer, opts));
  try {
    let exec = await rt.open.store.executions.get(opts.execution);
    if (!exec) throw new UsageError(`no execution "${opts.execution}"`);
    // --resume: drive it here if no live runner holds it (after a crash, say).
    if (opts.resume) exec = await rt.engine.drive(exec.id, opts.signal);
    return await report(rt.open.store, exec, opts.json, io);
  } finally {
    await rt.close();
  }
}

async function finish(
  rt: Runtime,
  exec: ExecutionRecord,
  opts: CommonOptions,
  io: Io,
  printer: ReturnType<typeof progressPrinter>,
): Promise<number> {
  if (opts.detach) {
    await report(rt.open.store, exec, opts.json, io);
    return EXIT.ok;
  }
  printer.started(exec);
  const done = await rt.engine.drive(exec.id, opts.signal);
  if (opts.signal?.aborted && !TERMINAL_EXECUTION_STATES.includes(done.state)) {
    io.err(
      `interrupted: ${exec.id} is ${done.state}; \`reprise status --resume ${exec.id}\` or \`reprise worker\` finishes it`,
    );
  }
  return report(rt.open.store, done, opts.json, io);
}

async function report(store: Store, exec: ExecutionRecord, json: boolean, io: Io): Promise<number> {
  const doc = executionDocument(exec, await orderedNodes(store, exec));
  if (json) io.out(JSON.stringify(doc, null, 2));
  else for (const line of summaryLines(doc)) io.out(line);
  return exec.state === "FAILED" || exec.state === "ABORTED" ? EXIT.failed : EXIT.ok;
}

/** Registers the commit, printing its diagnostics; null (nothing registered) when its spec is invalid. */
async function registerOrExplain(
  store: Store,
  root: string,
  ref: string,
  io: Io,
): Promise<VersionRecord | null> {
  const checked = await registerLocalCommitIfValid(store, root, ref);
  if ("invalid" in checked) {
    for (const d of [...checked.invalid.errors, ...checked.invalid.warnings]) {
      io.err(`${formatDiagnostic(d)}${d.severity === "warning" ? " (warning)" : ""}`);
    }
    io.err(
      `reprise.yaml of ${ref} (${checked.sha.slice(0, 12)}) is invalid: nothing registered, nothing run`,
    );
    return null;
  }
  const { version, identicalTo } = checked;
  for (const w of version.warnings) io.err(`${formatDiagnostic(w)} (warning)`);
  if (version.status !== "registered") {
    // Registered as invalid earlier (by the GitHub App, say): still nothing to run.
    for (const e of version.errors) io.err(formatDiagnostic(e));
    io.err(`reprise.yaml of ${ref} (${version.sha.slice(0, 12)}) is invalid: nothing to run`);
    return null;
  }
  if (identicalTo)
    io.err(`${version.sha.slice(0, 12)} is identical to ${identicalTo.slice(0, 12)}`);
  return version;
}

function runtimeOptions(
  printer: ReturnType<typeof progressPrinter>,
  opts: { github?: GitHubCode },
): RuntimeOptions {
  return { onEvent: printer.onEvent, ...(opts.github ? { github: opts.github } : {}) };
}

/** The runner's refusals are usage errors on the command line (exit 2). */
function usage(e: unknown): never {
  if (e instanceof RequestError) throw new UsageError(e.message);
  throw e;
}

/** Stores the file or directory at `path` as an artifact of the repository. */
export type Upload = (path: string, type: ArtifactType, label: string) => Promise<ArtifactRef>;

/**
 * `-i data=@PATH` for a `file` or `directory` input: stores the file or directory (deduplicated
 * by digest: bytes the store holds already are not sent again) as an artifact of the repository
 * with `upload`, and passes its value. Other values pass as they are (`sha256:...` names an
 * artifact the repository holds; startExecution checks it).
 */
export async function uploadInputs(
  upload: Upload,
  declared: Readonly<Record<string, InputDecl>>,
  given: Record<string, JsonValue>,
  io: Io,
  cwd = process.cwd(),
): Promise<Record<string, JsonValue>> {
  const out = { ...given };
  for (const [name, v] of Object.entries(given)) {
    const decl = declared[name];
    if (!decl || !isArtifactType(decl.type) || typeof v !== "string" || !v.startsWith("@"))
      continue;
    const path = resolve(cwd, v.slice(1));
    let ref: ArtifactRef;
    try {
      ref = await upload(path, decl.type, `-i ${name}=${v}`);
    } catch (e) {
      if (e instanceof ArtifactShapeError) throw new UsageError(e.message);
      if ((e as NodeJS.ErrnoException).code === "ENOENT")
        throw new UsageError(`-i ${name}=${v}: ${path} does not exist`);
      throw e;
    }
    io.err(
      `input ${name}: ${decl.type} ${shortDigest(ref.artifact)} (${formatBytes(ref.size)}${ref.files !== undefined ? `, ${ref.files} files` : ""}) from ${path}`,
    );
    out[name] = ref as unknown as JsonValue;
  }
  return out;
}

export function readInputsFile(path: string | null): Record<string, JsonValue> {
  if (path === null) return {};
  let value: unknown;
  try {
    value = parseYaml(readFileSync(path, "utf8"));
  } catch (e) {
    throw new UsageError(`--inputs ${path}: ${(e as Error).message}`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new UsageError(
      `--inputs ${path}: must hold a YAML or JSON mapping of input names to values`,
    );
  }
  return value as Record<string, JsonValue>;
}
