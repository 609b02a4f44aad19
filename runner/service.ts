/**
 * What every edge asks of the runner — the CLI, the HTTP API, the GitHub App, the Action — in
 * one place: start an execution of a workflow at a version, relaunch one, activate a version.
 * Edges translate their input into these calls and `RequestError`s into their own answers
 * (an exit code, an HTTP status, a comment).
 */

import { artifactRef, isArtifactDigest, isArtifactType } from "../core/artifacts/ref.js";
import { resolveWorkflowInputs } from "../core/engine/inputs.js";
import type { InputDecl, JsonValue } from "../core/spec/types.js";
import { NotFoundError } from "../db/errors.js";
import type { CreateExecution } from "../db/store/executions.js";
import type { Store } from "../db/store.js";
import type { Activation, ExecutionRecord, Trigger, VersionRecord } from "../db/types.js";

export type RequestErrorCode =
  | "bad_request"
  | "not_found"
  | "conflict"
  | "invalid_spec"
  | "invalid_inputs";

const STATUS: Record<RequestErrorCode, 400 | 404 | 409 | 422> = {
  bad_request: 400,
  not_found: 404,
  conflict: 409,
  invalid_spec: 422,
  invalid_inputs: 422,
};

/** A request the runner refuses, with what to fix. */
export class RequestError extends Error {
  override readonly name = "RequestError";
  constructor(
    readonly code: RequestErrorCode,
    message: string,
  ) {
    super(message);
  }

  get status(): 400 | 404 | 409 | 422 {
    return STATUS[this.code];
  }
}

/** Which version to run: a registered SHA, or the repository's production version. */
export type VersionRef = { sha: string } | { production: true };

export interface StartRequest {
  repo: string;
  at: VersionRef;
  workflow: string;
  /** As given: defaults are applied and types checked here. */
  inputs: Record<string, JsonValue>;
  trigger: Trigger;
  overwriteCache?: boolean;
}

/** The registered, valid version `at` names. */
export async function versionAt(
  store: Store,
  repo: string,
  at: VersionRef,
): Promise<VersionRecord> {
  let sha: string;
  if ("production" in at) {
    const current = await store.production.current(repo);
    if (!current)
      throw new RequestError(
        "conflict",
        `${repo} has no production version yet: activate one, or name a SHA`,
      );
    sha = current.sha;
  } else sha = at.sha;
  const version = await store.versions.get(repo, sha);
  if (!version)
    throw new RequestError("not_found", `${sha} of ${repo} is not registered; register it first`);
  if (version.status !== "registered")
    throw new RequestError(
      "invalid_spec",
      `reprise.yaml of ${sha.slice(0, 12)} is invalid (${version.errors.length} errors): fix it and register a new commit`,
    );
  return version;
}

/** Creates an execution (QUEUED, pinned to the version); a runner drives it. */
export async function startExecution(store: Store, req: StartRequest): Promise<ExecutionRecord> {
  return store.executions.create(await executionOf(store, req));
}

/**
 * startExecution, once per `claim.id` whoever asks (a schedule slot, across replicas): null when
 * the claim was taken before. The claim and the execution commit together (ExecutionStore.createOnce).
 */
export async function startExecutionOnce(
  store: Store,
  req: StartRequest,
  claim: { id: string; event: string; payload: unknown },
): Promise<ExecutionRecord | null> {
  return store.executions.createOnce(await executionOf(store, req), claim);
}

/** What a start request creates, checked: the version, the workflow, the inputs resolved. */
async function executionOf(store: Store, req: StartRequest): Promise<CreateExecution> {
  const version = await versionAt(store, req.repo, req.at);
  if (!(req.workflow in version.workflows)) {
    const known = Object.keys(version.workflows);
    throw new RequestError(
      "not_found",
      `no workflow "${req.workflow}" in ${version.sha.slice(0, 12)} (its workflows: ${known.join(", ") || "none"})`,
    );
  }
  const wf = await store.versions.resolveWorkflow(version.repo, version.sha, req.workflow);
  const given = await artifactInputs(store, version.repo, wf.spec.inputs, req.inputs);
  const resolved = resolveWorkflowInputs(wf.spec.inputs, given);
  if (!resolved.ok) throw new RequestError("invalid_inputs", resolved.reason);
  return {
    repo: version.repo,
    sha: version.sha,
    workflow: req.workflow,
    inputs: resolved.inputs,
    trigger: req.trigger,
    overwriteCache: req.overwriteCache ?? false,
  };
}

/**
 * `file` and `directory` inputs name an artifact of the repository by digest (`sha256:...`, or
 * an artifact value): each must be one the repository holds (uploaded, or produced by one of its
 * tasks), of the declared type, and becomes its full value. Knowing another repository's digest
 * gives nothing: it is not this repository's artifact.
 */
async function artifactInputs(
  store: Store,
  repo: string,
  declared: Readonly<Record<string, InputDecl>>,
  given: Readonly<Record<string, JsonValue>>,
): Promise<Record<string, JsonValue>> {
  const out: Record<string, JsonValue> = { ...given };
  for (const [name, decl] of Object.entries(declared)) {
    const v = given[name];
    if (!isArtifactType(decl.type) || v === undefined) continue;
    const digest =
      typeof v === "string"
        ? v
        : typeof v === "object" && v !== null && !Array.isArray(v)
          ? (v as Record<string, JsonValue>).artifact
          : undefined;
    if (!isArtifactDigest(digest))
      throw new RequestError(
        "invalid_inputs",
        `input "${name}" (${decl.type}) takes an artifact digest sha256:<64 hex> (or, from the CLI, -i ${name}=@PATH to upload one), got ${JSON.stringify(v).slice(0, 80)}`,
      );
    const held = await store.artifacts.get(repo, digest);
    if (!held)
      throw new RequestError(
        "invalid_inputs",
        `input "${name}": ${digest} is not an artifact of ${repo}: upload it (reprise run -i ${name}=@PATH, or the API's artifact upload) or name one its tasks produced`,
      );
    if (held.type !== decl.type)
      throw new RequestError(
        "invalid_inputs",
        `input "${name}" is a ${decl.type}, but ${digest} is a ${held.type}`,
      );
    out[name] = artifactRef(
      held.type,
      held.digest,
      held.size,
      held.files ?? 0,
    ) as unknown as JsonValue;
  }
  return out;
}

export interface RelaunchRequest {
  /** The execution to run again: its workflow and inputs. */
  parent: string;
  /** Another registered SHA of the same repository (the fix); default the parent's. */
  sha?: string | null;
  /** Reuse the parent's succeeded nodes by content, even with the cache off. */
  recover?: boolean;
  overwriteCache?: boolean;
  /**
   * Who asks, and why. `fork` true or false says whether the code at `sha` is a fork's; left
   * out, a relaunch at the parent's own commit keeps the parent's. Only `fork: true` is stored.
   */
  trigger: Trigger;
}

export async function relaunchExecution(
  store: Store,
  req: RelaunchRequest,
): Promise<ExecutionRecord> {
  const parent = await store.executions.get(req.parent);
  if (!parent) throw new RequestError("not_found", `no execution "${req.parent}"`);
  const version = await versionAt(store, parent.repo, { sha: req.sha ?? parent.sha });
  if (!(parent.workflow in version.workflows))
    throw new RequestError(
      "not_found",
      `${version.sha.slice(0, 12)} has no workflow "${parent.workflow}" to relaunch (it was removed or renamed)`,
    );
  // Whether the code is a fork's (then it gets no secrets, docs/design.md section 2): as the caller
  // says when it knows (a comment knows its pull request's head), otherwise as the parent was
  // when its own commit runs again, whoever asks (the check run's button, the API, the CLI).
  const { fork: said, ...trigger } = req.trigger;
  const fork = said ?? (parent.trigger.fork === true && version.sha === parent.sha);
  return store.executions.create({
    repo: parent.repo,
    sha: version.sha,
    workflow: parent.workflow,
    inputs: parent.inputs,
    trigger: fork ? { ...trigger, fork: true } : trigger,
    parentId: parent.id,
    mode: req.recover ? "recover" : "normal",
    overwriteCache: req.overwriteCache ?? false,
  });
}

/**
 * Makes a registered version the production one. Without a reason, a version equivalent to an
 * earlier one (a revert) reads "rollback to <sha>".
 */
export async function activateVersion(
  store: Store,
  input: {
    repo: string;
    sha: string;
    actor: string;
    reason?: string | null;
    /** The reason recorded when none is given and the version is not a rollback. */
    otherwise?: string;
  },
): Promise<{ activation: Activation; changed: boolean }> {
  const version = await versionAt(store, input.repo, { sha: input.sha });
  const identicalTo = version.specDigest
    ? await store.versions.findEquivalent(version.repo, version.specDigest, version.sha)
    : null;
  const reason =
    input.reason ?? (identicalTo ? `rollback to ${identicalTo}` : (input.otherwise ?? "activated"));
  try {
    return await store.production.activate({
      repo: version.repo,
      sha: version.sha,
      actor: input.actor,
      reason,
    });
  } catch (e) {
    if (e instanceof NotFoundError) throw new RequestError("not_found", e.message);
    throw e;
  }
}
