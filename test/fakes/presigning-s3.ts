/**
 * s3rver behind the signature gate (s3-signature-gate.ts), and S3 stores on it: the peer of
 * every test of presigned requests (the store's, the broker's, the pod's helpers').
 */
import { S3BlobStore, s3Client } from "../../runner/artifacts/s3-store.js";
import { type FakeS3, startS3 } from "./s3-server.js";
import { type SignatureGate, startSignatureGate } from "./s3-signature-gate.js";

export interface PresigningS3 {
  s3: FakeS3;
  gate: SignatureGate;
  /** A store under `prefix`, reaching S3 through `endpoint` (the gate unless told otherwise). */
  store(prefix: string, endpoint?: string): S3BlobStore;
  close(): Promise<void>;
}

export async function startPresigningS3(): Promise<PresigningS3> {
  const s3 = await startS3();
  const gate = await startSignatureGate(s3.endpoint, s3.env.AWS_SECRET_ACCESS_KEY);
  return {
    s3,
    gate,
    store(prefix, endpoint = gate.endpoint) {
      // Static keys: a URL is presigned with them, as the runner's keys or role session would.
      const client = s3Client(
        { ...s3.env, AWS_ENDPOINT_URL: endpoint },
        {
          credentials: {
            accessKeyId: s3.env.AWS_ACCESS_KEY_ID,
            secretAccessKey: s3.env.AWS_SECRET_ACCESS_KEY,
          },
        },
      );
      return new S3BlobStore({ bucket: s3.bucket, prefix, client });
    },
    async close() {
      await gate.close();
      await s3.close();
    },
  };
}
