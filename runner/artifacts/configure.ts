/**
 * The artifact store the configuration names (REPRISE_ARTIFACTS): a directory, by default
 * `<dataDir>/artifacts`, or an S3 bucket. The AWS SDK is loaded only for S3, so the embedded
 * default starts without it.
 */
import type { Config } from "../config.js";
import { LocalBlobStore } from "./local-store.js";
import type { BlobStore } from "./store.js";

export async function openArtifactStore(config: Config): Promise<BlobStore> {
  const where = config.artifacts;
  if (where.kind === "file") return new LocalBlobStore(where.path);
  const { s3BlobStoreFromUrl } = await import("./s3-store.js");
  return s3BlobStoreFromUrl(where.url, config.environment);
}
