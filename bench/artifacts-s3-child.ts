/**
 * The S3 half of bench/artifacts.ts, in a process of its own so its RSS is the transfer's alone:
 * a large file uploaded and downloaded through the S3 artifact store and through the bare SDK
 * (lib-storage `Upload`, `GetObject` streamed to a file) on a loopback S3 server (s3rver, in its
 * own process too). Sends back the median times and the peak RSS while the store moved bytes.
 */
import { createReadStream, createWriteStream, rmSync } from "node:fs";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import { GetObjectCommand } from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";
import { S3BlobStore } from "../runner/artifacts/s3-store.js";
import { startS3 } from "../test/fakes/s3-server.js";

const { src, rounds } = JSON.parse(process.argv[2] as string) as { src: string; rounds: number };

function medianOf(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] as number;
}

const s3 = await startS3();
let peak = 0;
let sampling = false;
const sampler = setInterval(() => {
  if (sampling) peak = Math.max(peak, process.memoryUsage().rss);
}, 20);
try {
  const store = new S3BlobStore({ bucket: s3.bucket, prefix: "bench", client: s3.client });
  const bareUp: number[] = [];
  const bareDown: number[] = [];
  const up: number[] = [];
  const down: number[] = [];
  let digest = "";
  for (let r = 0; r < rounds; r++) {
    let t = performance.now();
    await new Upload({
      client: s3.client,
      params: { Bucket: s3.bucket, Key: `bare/${r}`, Body: createReadStream(src) },
    }).done();
    bareUp.push(performance.now() - t);
    t = performance.now();
    const got = await s3.client.send(new GetObjectCommand({ Bucket: s3.bucket, Key: `bare/${r}` }));
    await pipeline(got.Body as NodeJS.ReadableStream, createWriteStream(`${src}.bare`));
    bareDown.push(performance.now() - t);
    rmSync(`${src}.bare`);

    if (digest) await store.delete(digest);
    sampling = true;
    t = performance.now();
    digest = (await store.putFile(src)).digest;
    up.push(performance.now() - t);
    const dest = join(`${src}.down`);
    t = performance.now();
    await store.getFile(digest, dest, 0o444);
    down.push(performance.now() - t);
    sampling = false;
    rmSync(dest, { force: true });
  }
  process.send?.(
    {
      bareUp: medianOf(bareUp),
      bareDown: medianOf(bareDown),
      up: medianOf(up),
      down: medianOf(down),
      peakRssMb: peak / 2 ** 20,
    },
    () => process.exit(0),
  );
} finally {
  clearInterval(sampler);
  await s3.close();
}
