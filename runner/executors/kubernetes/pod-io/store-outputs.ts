/**
 * `reprise pod-io store-outputs`, the attempt's sidecar: waits for the task container to end
 * (the broker's long poll), then, when it exited 0, stores each declared output with
 * `storeArtifactIn()` (../../../artifacts/ingest.ts: the local executor's walk and shape rules)
 * through a sink that sends each file's bytes to a presigned URL for its digest. Nothing is held
 * whole: a file is hashed streaming from disk, then streamed again to S3, in one PUT or, above
 * the broker's threshold, in parts read by byte range, a few at a time.
 */
import { createReadStream } from "node:fs";
import { join } from "node:path";
import { Readable } from "node:stream";
import type { ArtifactRef, ArtifactType } from "../../../../core/artifacts/ref.js";
import { outputEnvName } from "../../../../core/spec/names.js";
import { type ArtifactSink, inParallel, storeArtifactIn } from "../../../artifacts/ingest.js";
import { hashFile } from "../../../artifacts/local-store.js";
import {
  type BrokerClient,
  type CompletedPart,
  MAX_UPLOAD_BLOBS,
  MAX_WAIT_SECONDS,
  type SignedRequest,
  type UploadAnswer,
} from "./client.js";
import { type RetryPolicy, withRetries } from "./retry.js";
import { put } from "./transfer.js";

/** Parts of one multipart upload in flight at once (each streams from disk; none is held). */
const PARTS_IN_FLIGHT = 4;

export interface StoreOutputsOptions {
  client: BrokerClient;
  /** REPRISE_OUT_DIR: where the task wrote `<name>` for each output. */
  outDir: string;
  /** REPRISE_IO_OUTPUTS: the artifact outputs and their declared types. */
  outputs: Readonly<Record<string, ArtifactType>>;
  retry: RetryPolicy;
  signal?: AbortSignal;
  log: (line: string) => void;
}

export type StoreOutcome = { skipped: string } | { outputs: Record<string, ArtifactRef> };

/**
 * The outputs stored, or why nothing was. Throws ArtifactShapeError for what the task got wrong
 * (a missing output, the wrong kind, a bad tree), anything else for a transfer that failed.
 */
export async function storeOutputs(options: StoreOutputsOptions): Promise<StoreOutcome> {
  const { outDir, outputs, log } = options;
  const exitCode = await taskExit(options);
  if (exitCode !== 0) {
    log(`the task exited ${exitCode}: its outputs are not stored`);
    return { skipped: `task exited ${exitCode}` };
  }
  const sink = new BrokerSink(options);
  const stored: Record<string, ArtifactRef> = {};
  for (const [name, type] of Object.entries(outputs)) {
    const ref = await storeArtifactIn(
      sink,
      join(outDir, name),
      type,
      `output "${name}" (${outputEnvName(name)})`,
    );
    stored[name] = ref;
    log(
      `output "${name}": ${ref.type} ${ref.artifact}, ${ref.size} bytes${ref.type === "directory" ? ` in ${ref.files} files` : ""}`,
    );
  }
  log(`${sink.sent} blobs sent, ${sink.present} already in the store`);
  return { outputs: stored };
}

/**
 * The task container's exit code, from the broker's long poll. A broker out of reach is waited
 * for without end (a runner restarting, a network blip): the Job's deadline bounds the pod.
 */
async function taskExit({ client, retry, log }: StoreOutputsOptions): Promise<number> {
  const patient: RetryPolicy = { ...retry, attempts: Number.POSITIVE_INFINITY };
  let said = "";
  // The first look answers at once, so the log says at once what the helper waits for.
  for (let wait = 0; ; wait = MAX_WAIT_SECONDS) {
    const task = await client.task(wait, patient);
    if (task.state === "terminated") return task.exitCode;
    if (task.state !== said) log(`the task is ${task.state}`);
    said = task.state;
  }
}

/** Bytes to send: a file's range read from disk, or a manifest already in memory. */
interface Source {
  size: number;
  /** Bytes [start, end) as a fresh stream (a retry opens another). */
  open(start: number, end: number): Readable;
}

class BrokerSink implements ArtifactSink {
  sent = 0;
  present = 0;
  /** Each digest is sent once, however many files hold its bytes. */
  readonly #stored = new Map<string, Promise<void>>();
  readonly #asking: UploadQuestions;
  constructor(readonly options: StoreOutputsOptions) {
    this.#asking = new UploadQuestions(options.client);
  }

  async putFile(path: string): Promise<{ digest: string; size: number }> {
    const { digest, size } = await hashFile(path);
    await this.#store(digest, {
      size,
      open: (start, end) =>
        end === start ? Readable.from([]) : createReadStream(path, { start, end: end - 1 }),
    });
    return { digest, size };
  }

  async putManifest(bytes: Buffer, digest: string): Promise<void> {
    await this.#store(digest, {
      size: bytes.length,
      open: (start, end) => Readable.from([bytes.subarray(start, end)]),
    });
  }

  #store(digest: string, source: Source): Promise<void> {
    let stored = this.#stored.get(digest);
    if (!stored) {
      stored = this.#send(digest, source);
      this.#stored.set(digest, stored);
    }
    return stored;
  }

  async #send(digest: string, source: Source): Promise<void> {
    const answer = await this.#asking.ask(digest, source.size);
    if ("present" in answer) {
      this.present++;
      return;
    }
    if ("put" in answer) {
      await this.#put(answer.put, source, 0, source.size, digest);
      this.sent++;
      return;
    }
    const { uploadId, partBytes, parts } = answer.multipart;
    if (!(partBytes > 0) || parts.length !== Math.max(1, Math.ceil(source.size / partBytes)))
      throw new Error(
        `the broker's multipart upload of ${digest} (${source.size} bytes) has ${parts.length} parts of ${partBytes} bytes, which do not cover it`,
      );
    const done: CompletedPart[] = [];
    await inParallel(
      parts.map((signed, i) => ({ signed, i })),
      PARTS_IN_FLIGHT,
      async ({ signed, i }) => {
        const start = i * partBytes;
        const end = Math.min(source.size, start + partBytes);
        const etag = await this.#put(signed, source, start, end, `${digest} part ${i + 1}`);
        if (etag === null)
          throw new Error(
            `the store answered part ${i + 1} of ${digest} without an ETag, which completing the upload needs (does its CORS or proxy drop the header?)`,
          );
        done.push({ partNumber: i + 1, etag });
      },
    );
    done.sort((a, b) => a.partNumber - b.partNumber);
    await this.options.client.complete(digest, uploadId, done);
    this.options.log(`sent ${digest} (${source.size} bytes) in ${parts.length} parts`);
    this.sent++;
  }

  #put(
    signed: SignedRequest,
    source: Source,
    start: number,
    end: number,
    what: string,
  ): Promise<string | null> {
    const { retry, signal, log } = this.options;
    return withRetries(
      retry,
      signal,
      () => put(signed, { length: end - start, open: () => source.open(start, end) }, signal),
      (e, waitMs) => log(`${e.message}; sending ${what} again in ${waitMs} ms`),
    ).catch((e: unknown) => {
      throw new Error(`could not upload ${what}: ${(e as Error).message}`, { cause: e });
    });
  }
}

/**
 * Asks the broker about blobs in batches: every question asked in the same turn of the event
 * loop (a directory's files finishing their hashes together) goes in one `uploads` request.
 */
class UploadQuestions {
  #pending: Array<{
    blob: { digest: string; size: number };
    resolve: (a: UploadAnswer) => void;
    reject: (e: unknown) => void;
  }> = [];
  #scheduled = false;
  constructor(readonly client: BrokerClient) {}

  ask(digest: string, size: number): Promise<UploadAnswer> {
    return new Promise((resolve, reject) => {
      this.#pending.push({ blob: { digest, size }, resolve, reject });
      if (!this.#scheduled) {
        this.#scheduled = true;
        setImmediate(() => this.#flush());
      }
    });
  }

  #flush(): void {
    this.#scheduled = false;
    while (this.#pending.length > 0) {
      const batch = this.#pending.splice(0, MAX_UPLOAD_BLOBS);
      this.client.uploads(batch.map((q) => q.blob)).then(
        (answers) => {
          for (const [i, q] of batch.entries()) {
            const a = answers[i];
            if (a?.digest === q.blob.digest) q.resolve(a);
            else
              q.reject(
                new Error(
                  `the broker answered about ${a?.digest} where ${q.blob.digest} was asked`,
                ),
              );
          }
        },
        (e: unknown) => {
          for (const q of batch) q.reject(e);
        },
      );
    }
  }
}
