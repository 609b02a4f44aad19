/**
 * `reprise pod-io fetch-inputs | store-outputs`: the helpers that run in an attempt's pod from
 * Reprise's own image (../ARTIFACTS.md, "The helpers"). Everything comes from the environment the
 * Job gives them; nothing here reads Reprise's configuration, opens a database or holds a store
 * credential. What happened goes to the termination message, which the runner's classify reads:
 *
 *   exit 0  fetch-inputs: the inputs are in place. store-outputs: `{"outputs": {...}}`, or
 *           `{"skipped": "task exited N"}` when the task failed (nothing to store)
 *   exit 3  store-outputs: `{"error": {"kind": "user", "reason": "outputs", "message"}}`
 *   exit 4  `{"error": {"kind": "system", "reason": "upload" | "fetch" | "input-missing", "message"}}`
 *   exit 2  a usage error (no such helper)
 */
import { writeFileSync } from "node:fs";
import { type ArtifactType, isArtifactType } from "../../../../core/artifacts/ref.js";
import type { ErrorKind } from "../../../../core/engine/vocabulary.js";
import { PARAM_NAME } from "../../../../core/spec/names.js";
import { ArtifactShapeError } from "../../../artifacts/ingest.js";
import { BlobMissingError } from "../../../artifacts/store.js";
import { BrokerClient } from "./client.js";
import { fetchInputs } from "./fetch-inputs.js";
import { DEFAULT_RETRY, type RetryPolicy } from "./retry.js";
import { storeOutputs } from "./store-outputs.js";

export const POD_IO_EXIT = { ok: 0, usage: 2, outputs: 3, system: 4 } as const;

/** Kubernetes keeps at most this much of a container's termination message. */
const TERMINATION_MESSAGE_BYTES = 4096;
const DEFAULT_TERMINATION_LOG = "/dev/termination-log";

export interface PodIoOutput {
  out(line: string): void;
  err(line: string): void;
}

type Env = Readonly<Record<string, string | undefined>>;

const USAGE =
  "usage: reprise pod-io fetch-inputs | store-outputs  (internal: run by the kubernetes executor inside an attempt's pod; see runner/executors/kubernetes/ARTIFACTS.md)";

export async function podIo(
  argv: readonly string[],
  env: Env,
  io: PodIoOutput,
  signal?: AbortSignal,
): Promise<number> {
  const [helper, ...extra] = argv;
  if ((helper !== "fetch-inputs" && helper !== "store-outputs") || extra.length > 0) {
    io.err(USAGE);
    return POD_IO_EXIT.usage;
  }
  const log = (line: string) => io.err(`pod-io ${helper}: ${line}`);
  const terminationLog = env.REPRISE_TERMINATION_LOG || DEFAULT_TERMINATION_LOG;
  const finish = (code: number, message: unknown): number => {
    const text = JSON.stringify(message);
    io.out(text);
    try {
      writeFileSync(terminationLog, text);
    } catch (e) {
      log(`could not write the termination message to ${terminationLog}: ${(e as Error).message}`);
    }
    return code;
  };
  const failed = (code: number, kind: ErrorKind, reason: string, message: string) => {
    log(message);
    return finish(code, errorMessage(kind, reason, message));
  };
  const systemReason = helper === "fetch-inputs" ? "fetch" : "upload";

  let settings: Settings;
  try {
    settings = readSettings(env, helper);
  } catch (e) {
    return failed(POD_IO_EXIT.system, "system", systemReason, (e as Error).message);
  }
  const client = new BrokerClient({ ...settings.broker, retry: settings.retry, signal, log });
  const stopped = (e: unknown) =>
    signal?.aborted ? `stopped by SIGTERM before it was done (${(e as Error).message})` : null;

  if (helper === "fetch-inputs") {
    try {
      await fetchInputs({
        client,
        ioDir: settings.dir,
        outputs: settings.outputs,
        retry: settings.retry,
        signal,
        log,
      });
      return POD_IO_EXIT.ok;
    } catch (e) {
      const message = stopped(e) ?? `could not fetch the inputs: ${(e as Error).message}`;
      // The engine reruns the producer of an input the store lost; any other failure is retried.
      const reason = e instanceof BlobMissingError ? "input-missing" : "fetch";
      return failed(POD_IO_EXIT.system, "system", reason, message);
    }
  }

  try {
    const outcome = await storeOutputs({
      client,
      outDir: settings.dir,
      outputs: settings.outputs,
      retry: settings.retry,
      signal,
      log,
    });
    if (Buffer.byteLength(JSON.stringify(outcome)) > TERMINATION_MESSAGE_BYTES)
      return failed(
        POD_IO_EXIT.system,
        "system",
        "upload",
        `the outputs were stored, but their ${Object.keys(settings.outputs).length} references do not fit the ${TERMINATION_MESSAGE_BYTES} bytes of a Kubernetes termination message: declare fewer file or directory outputs (a directory holds many files)`,
      );
    return finish(POD_IO_EXIT.ok, outcome);
  } catch (e) {
    if (e instanceof ArtifactShapeError)
      return failed(POD_IO_EXIT.outputs, "user", "outputs", e.message);
    const message = stopped(e) ?? `could not store the outputs: ${(e as Error).message}`;
    return failed(POD_IO_EXIT.system, "system", "upload", message);
  }
}

interface Settings {
  broker: { url: string; token: string; attempt: string };
  /** REPRISE_IO_DIR (fetch-inputs) or REPRISE_OUT_DIR (store-outputs). */
  dir: string;
  outputs: Record<string, ArtifactType>;
  retry: RetryPolicy;
}

function readSettings(env: Env, helper: "fetch-inputs" | "store-outputs"): Settings {
  const need = (name: string): string => {
    const v = env[name];
    if (!v)
      throw new Error(
        `${name} is not set: the kubernetes executor sets it on the ${helper} container (is the Job from an older runner?)`,
      );
    return v;
  };
  const url = need("REPRISE_BROKER_URL");
  if (!/^https?:\/\/[^/]/.test(url))
    throw new Error(`REPRISE_BROKER_URL must be an http(s) URL, got ${JSON.stringify(url)}`);
  const dir =
    helper === "fetch-inputs"
      ? env.REPRISE_IO_DIR || "/reprise/io"
      : env.REPRISE_OUT_DIR || "/reprise/out";
  const retries = env.REPRISE_IO_RETRIES;
  const attempts =
    retries === undefined || retries === "" ? DEFAULT_RETRY.attempts : Number(retries);
  if (!Number.isSafeInteger(attempts) || attempts < 1)
    throw new Error(
      `REPRISE_IO_RETRIES must be a whole number of tries, at least 1, got ${retries}`,
    );
  return {
    broker: { url, token: need("REPRISE_BROKER_TOKEN"), attempt: need("REPRISE_ATTEMPT") },
    dir,
    outputs: parseOutputs(env.REPRISE_IO_OUTPUTS),
    retry: { ...DEFAULT_RETRY, attempts },
  };
}

function parseOutputs(text: string | undefined): Record<string, ArtifactType> {
  if (text === undefined || text === "") return {};
  const wanted = `REPRISE_IO_OUTPUTS must be a JSON object {"name": "file" | "directory"}, got ${text.slice(0, 200)}`;
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new Error(wanted);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed))
    throw new Error(wanted);
  const out: Record<string, ArtifactType> = {};
  for (const [name, type] of Object.entries(parsed)) {
    // Each name is a path under the io directory: nothing may lead outside it.
    if (!PARAM_NAME.test(name) || typeof type !== "string" || !isArtifactType(type))
      throw new Error(wanted);
    out[name] = type;
  }
  return out;
}

/** The error as a termination message, its text cut to fit what Kubernetes keeps. */
function errorMessage(kind: string, reason: string, message: string): unknown {
  const wrap = (m: string) => ({ error: { kind, reason, message: m } });
  let m = message;
  while (Buffer.byteLength(JSON.stringify(wrap(m))) > TERMINATION_MESSAGE_BYTES)
    m = `${m.slice(0, Math.floor(m.length * 0.9))}...`;
  return wrap(m);
}
