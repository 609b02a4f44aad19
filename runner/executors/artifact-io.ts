/**
 * The artifact half of the task contract (DESIGN: task I/O), the same for every executor:
 *
 *   - each `file` / `directory` input is materialised under `<io>/in/<name>` (read-only files)
 *     and handed to the task as its path: REPRISE_INPUT_<NAME>, its value in REPRISE_INPUTS, and
 *     REPRISE_INPUT_<NAME>_DIGEST;
 *   - each `file` / `directory` output is written by the task at REPRISE_OUTPUT_<NAME>
 *     (`<io>/out/<name>`: a path to create, or an existing empty directory to fill), and stored
 *     (hashed, verified) once the task has exited 0, before the runner records the success;
 *   - REPRISE_OUTPUTS holds only the other outputs.
 *
 * A missing output, or one of the wrong kind, is the task's failure (user); a store that fails is
 * a system failure (retried); an input the store lost is a system failure that says so.
 */
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { type ArtifactRef, artifactsOf, isArtifactType } from "../../core/artifacts/ref.js";
import type { NodeError } from "../../core/engine/vocabulary.js";
import { inputEnvName, outputEnvName } from "../../core/spec/names.js";
import type { JsonValue, OutputDecl } from "../../core/spec/types.js";
import { ArtifactShapeError, materialise, storeArtifact } from "../artifacts/ingest.js";
import { BlobMissingError, type BlobStore, BlobStoreError } from "../artifacts/store.js";
import type { LaunchSpec } from "./types.js";

/** Whether the attempt reads or writes artifacts at all. */
export function usesArtifacts(spec: LaunchSpec): boolean {
  return (
    Object.values(spec.inputTypes ?? {}).some(isArtifactType) ||
    Object.values(spec.outputs).some((o) => isArtifactType(o.type))
  );
}

/** The outputs the task writes to REPRISE_OUTPUTS: all but its artifacts. */
export function valueOutputs(
  outputs: Readonly<Record<string, OutputDecl>>,
): Record<string, OutputDecl> {
  return Object.fromEntries(Object.entries(outputs).filter(([, d]) => !isArtifactType(d.type)));
}

export interface AttemptIo {
  /** The inputs as the task sees them: artifacts replaced by their paths. */
  inputs: Record<string, JsonValue>;
  /** REPRISE_INPUT_<NAME>_DIGEST and REPRISE_OUTPUT_<NAME>. */
  env: Record<string, string>;
}

/**
 * Lays out `<staging>/in` and `<staging>/out` for an attempt whose io directory will be `final`
 * (the paths handed to the task name `final`; the caller moves staging there before the start).
 */
export async function prepareIo(
  store: BlobStore | null,
  spec: LaunchSpec,
  staging: string,
  final: string,
): Promise<AttemptIo> {
  const inputs: Record<string, JsonValue> = { ...spec.inputs };
  const env: Record<string, string> = {};
  const artifacts = artifactsOf(
    Object.fromEntries(Object.entries(spec.inputTypes ?? {}).map(([n, type]) => [n, { type }])),
    spec.inputs,
  );
  await mkdir(join(staging, "in"), { recursive: true });
  await mkdir(join(staging, "out"), { recursive: true });
  for (const { name, ref } of artifacts) {
    if (!store) throw noStore(spec);
    const path = join(final, "in", name);
    await materialise(store, ref, join(staging, "in", name));
    inputs[name] = path;
    env[`${inputEnvName(name)}_DIGEST`] = ref.artifact;
  }
  for (const [name, decl] of Object.entries(spec.outputs)) {
    if (!isArtifactType(decl.type)) continue;
    if (!store) throw noStore(spec);
    if (decl.type === "directory") await mkdir(join(staging, "out", name));
    env[outputEnvName(name)] = join(final, "out", name);
  }
  return { inputs, env };
}

export type CollectedOutputs =
  | { ok: true; outputs: Record<string, JsonValue> }
  | { ok: false; error: NodeError };

/**
 * Stores the artifact outputs the task wrote under `<io>/out` and returns every output: `values`
 * (what REPRISE_OUTPUTS held, already checked) with each artifact's value added.
 */
export async function collectOutputs(
  store: BlobStore | null,
  spec: LaunchSpec,
  io: string,
  values: Record<string, JsonValue>,
): Promise<CollectedOutputs> {
  const outputs: Record<string, JsonValue> = { ...values };
  for (const [name, decl] of Object.entries(spec.outputs)) {
    if (!isArtifactType(decl.type)) continue;
    if (!store) return { ok: false, error: systemError(noStore(spec).message) };
    try {
      const ref: ArtifactRef = await storeArtifact(
        store,
        join(io, "out", name),
        decl.type,
        `output "${name}" (${outputEnvName(name)})`,
        { owned: true },
      );
      outputs[name] = ref as unknown as JsonValue;
    } catch (e) {
      if (e instanceof ArtifactShapeError)
        return { ok: false, error: { kind: "user", reason: "outputs", message: e.message } };
      const message =
        e instanceof BlobStoreError
          ? e.message
          : `could not store output "${name}": ${(e as Error).message}`;
      return { ok: false, error: systemError(message) };
    }
  }
  return { ok: true, outputs };
}

/** Why an attempt could not be given its inputs, as the node's error. */
export function inputError(e: unknown): NodeError {
  if (e instanceof BlobMissingError)
    return {
      kind: "system",
      reason: "input-missing",
      message: `an input artifact is gone: ${e.message}`,
    };
  return systemError(`could not materialise the inputs: ${(e as Error).message}`);
}

function systemError(message: string): NodeError {
  return { kind: "system", reason: "artifact-store", message };
}

function noStore(spec: LaunchSpec): Error {
  return new BlobStoreError(
    `task "${spec.taskName}" reads or writes artifacts, but this executor has no artifact store: configure REPRISE_ARTIFACTS`,
  );
}
