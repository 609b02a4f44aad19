/**
 * A real S3-protocol server on loopback (s3rver, objects in a temporary directory) and one bucket
 * in it, for the S3 artifact store's tests. It runs in its own Node process, started with
 * OpenSSL's legacy provider: s3rver encrypts ListObjectsV2 continuation tokens with DES, which
 * OpenSSL 3 offers only there, so without it any listing longer than one page fails
 * (InternalError). Its stdin is a lifeline: when this process goes, so does the server. It is
 * taught AbortMultipartUpload and NoSuchUpload, which s3rver lacks (see SERVER).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { CreateBucketCommand, type S3Client } from "@aws-sdk/client-s3";
import { s3Client } from "../../runner/artifacts/s3-store.js";

/** s3rver's one account; it checks every request's signature against it. */
const ACCESS_KEY = "S3RVER";
const STARTUP_MS = 20_000;

const SERVER = `
const { existsSync } = require("node:fs");
const { rm } = require("node:fs/promises");
const { join } = require("node:path");
const S3rver = require(process.env.S3RVER_MAIN);
const server = new S3rver({
  address: "127.0.0.1",
  port: 0,
  silent: true,
  directory: process.env.S3RVER_DIR,
});
// s3rver 3.7 has no AbortMultipartUpload and takes parts for any upload id, even one that was
// never begun or is finished. S3 answers those as here, so that an abort can be tested.
const noSuchUpload = (ctx) => {
  ctx.status = 404;
  ctx.type = "application/xml";
  ctx.body = '<?xml version="1.0" encoding="UTF-8"?><Error><Code>NoSuchUpload</Code><Message>The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.</Message></Error>';
};
server.middleware.splice(server.middleware.length - 1, 0, async (ctx, next) => {
  const id = ctx.query.uploadId;
  const bucket = ctx.path.split("/")[1];
  if (typeof id !== "string" || !bucket || !["PUT", "POST", "DELETE"].includes(ctx.method))
    return next();
  const dir = /^[0-9a-f]{32}$/.test(id)
    ? join(server.store.getResourcePath(bucket, undefined, "uploads"), id)
    : null;
  if (dir === null || !existsSync(dir)) return noSuchUpload(ctx);
  if (ctx.method !== "DELETE") return next();
  await rm(dir, { recursive: true, force: true });
  ctx.status = 204;
});
server.run().then(
  (address) => process.stdout.write(JSON.stringify({ port: address.port }) + "\\n"),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
process.stdin.on("end", () => process.exit(0));
process.stdin.resume();
`;

export interface FakeS3 {
  endpoint: string;
  bucket: string;
  env: {
    AWS_ENDPOINT_URL: string;
    AWS_REGION: string;
    AWS_ACCESS_KEY_ID: string;
    AWS_SECRET_ACCESS_KEY: string;
  };
  /** A client of its own, for going behind a store's back. */
  client: S3Client;
  close(): Promise<void>;
}

export async function startS3(): Promise<FakeS3> {
  const directory = await mkdtemp(join(tmpdir(), "reprise-s3rver-"));
  const child = spawn(process.execPath, ["--openssl-legacy-provider", "-e", SERVER], {
    env: {
      ...process.env,
      S3RVER_MAIN: createRequire(import.meta.url).resolve("s3rver"),
      S3RVER_DIR: directory,
    },
    stdio: ["pipe", "pipe", "inherit"],
  });
  let port: number;
  try {
    port = await listening(child);
  } catch (e) {
    child.kill("SIGKILL");
    await rm(directory, { recursive: true, force: true });
    throw e;
  }
  const endpoint = `http://127.0.0.1:${port}`;
  const env = {
    AWS_ENDPOINT_URL: endpoint,
    AWS_REGION: "us-east-1",
    AWS_ACCESS_KEY_ID: ACCESS_KEY,
    AWS_SECRET_ACCESS_KEY: ACCESS_KEY,
  };
  const client = s3Client(env, {
    credentials: { accessKeyId: ACCESS_KEY, secretAccessKey: ACCESS_KEY },
  });
  const bucket = `reprise-${randomBytes(4).toString("hex")}`;
  const close = async () => {
    client.destroy();
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.stdin?.end();
      await exited;
    }
    await rm(directory, { recursive: true, force: true });
  };
  try {
    await client.send(new CreateBucketCommand({ Bucket: bucket }));
  } catch (e) {
    await close();
    throw e;
  }
  return { endpoint, bucket, env, client, close };
}

function listening(child: ChildProcess): Promise<number> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`s3rver did not start within ${STARTUP_MS} ms`)),
      STARTUP_MS,
    );
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`s3rver exited before listening (${signal ?? `code ${code}`})`));
    });
    const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
    lines.once("line", (line) => {
      clearTimeout(timer);
      lines.close();
      child.stdout?.resume();
      resolve((JSON.parse(line) as { port: number }).port);
    });
  });
}
