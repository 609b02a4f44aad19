/**
 * The artifacts engine contract with the S3 artifact store on a loopback S3 server (s3rver):
 * blobs deleted and corrupted through the S3 API itself.
 */
import { DeleteObjectCommand, GetObjectCommand, PutObjectCommand } from "@aws-sdk/client-s3";
import { describe } from "vitest";
import { S3BlobStore } from "../../runner/artifacts/s3-store.js";
import { startS3 } from "../fakes/s3-server.js";
import { artifactsEngineContract } from "./artifacts-engine-contract.js";

describe("artifacts through the engine (PGlite, S3 store)", () =>
  artifactsEngineContract("pglite", {
    backend: async () => {
      const s3 = await startS3();
      const blobs = new S3BlobStore({ bucket: s3.bucket, prefix: "engine", client: s3.client });
      const Bucket = s3.bucket;
      return {
        blobs,
        remove: async (digest) => {
          await s3.client.send(new DeleteObjectCommand({ Bucket, Key: blobs.key(digest) }));
        },
        async corrupt(digest) {
          const Key = blobs.key(digest);
          const got = await s3.client.send(new GetObjectCommand({ Bucket, Key }));
          const bytes = (await got.Body?.transformToByteArray()) ?? new Uint8Array(0);
          bytes[bytes.length - 1] = (bytes.at(-1) ?? 0) ^ 1;
          await s3.client.send(new PutObjectCommand({ Bucket, Key, Body: bytes }));
        },
        close: () => s3.close(),
      };
    },
  }));
