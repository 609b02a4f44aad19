/**
 * `reprise pod-io fetch-inputs`, the attempt's init container: asks the broker for the inputs'
 * presigned GETs, materialises each under `$REPRISE_IO_DIR/in/<name>` (read-only files, verified
 * as they stream), and lays out `$REPRISE_IO_DIR/out/` with an empty `out/<name>/` per directory
 * output, as the local executor does (../../artifact-io.ts, prepareIo).
 */
import { chmod, mkdir, rm } from "node:fs/promises";
import { join } from "node:path";
import type { ArtifactType } from "../../../../core/artifacts/ref.js";
import { PARAM_NAME } from "../../../../core/spec/names.js";
import { materialise } from "../../../artifacts/ingest.js";
import type { BrokerClient } from "./client.js";
import { PresignedBlobStore } from "./presigned-store.js";
import type { RetryPolicy } from "./retry.js";

/**
 * The task's image may run as any user, and the helper's as another: the output directories
 * must be writable by whoever the task is (the emptyDir is the attempt's alone).
 */
const OUTPUT_DIR_MODE = 0o777;

export interface FetchInputsOptions {
  client: BrokerClient;
  /** REPRISE_IO_DIR: `in/` and `out/` go there. */
  ioDir: string;
  /** REPRISE_IO_OUTPUTS: the artifact outputs, whose `directory` ones get an empty directory. */
  outputs: Readonly<Record<string, ArtifactType>>;
  retry: RetryPolicy;
  signal?: AbortSignal;
  log: (line: string) => void;
}

export async function fetchInputs(options: FetchInputsOptions): Promise<void> {
  const { client, ioDir, outputs, retry, signal, log } = options;
  const inputs = await client.inputs();
  const inDir = join(ioDir, "in");
  const outDir = join(ioDir, "out");
  await mkdir(inDir, { recursive: true });
  await mkdir(outDir, { recursive: true });
  await chmod(outDir, OUTPUT_DIR_MODE);
  for (const { name, ref, blobs } of inputs) {
    // A name is a path segment here: nothing the broker says may lead outside `in/`.
    if (typeof name !== "string" || !PARAM_NAME.test(name))
      throw new Error(
        `the broker named an input ${JSON.stringify(name)}, which is not an input name`,
      );
    const dest = join(inDir, name);
    // A second run of the container (the kubelet may rerun an init container) starts afresh.
    await rm(dest, { recursive: true, force: true });
    const store = new PresignedBlobStore(blobs, { retry, signal, log });
    await materialise(store, ref, dest);
    log(
      `input "${name}": ${ref.type} ${ref.artifact}, ${ref.size} bytes${ref.type === "directory" ? ` in ${ref.files} files` : ""}`,
    );
  }
  for (const [name, type] of Object.entries(outputs)) {
    if (type !== "directory") continue;
    const dir = join(outDir, name);
    await mkdir(dir, { recursive: true });
    await chmod(dir, OUTPUT_DIR_MODE);
  }
}
