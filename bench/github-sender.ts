/**
 * The sender of bench/github.ts, in a process of its own so that its CPU does not share the
 * server's event loop: signed bodies prepared before the clock starts, sent over keep-alive
 * node:http connections, `inFlight` at a time. Input and output travel over IPC.
 */
import { createHmac, randomUUID } from "node:crypto";
import { Agent, request } from "node:http";

interface Job {
  url: string;
  secret: string;
  bodies: string[];
  ids: string[] | null;
  inFlight: number;
}

export interface SendResult {
  ms: number;
  times: number[];
  statuses: number[];
  ids: string[];
}

function post(
  agent: Agent,
  url: URL,
  headers: Record<string, string>,
  body: string,
): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        agent,
        host: url.hostname,
        port: url.port,
        path: "/api/github/webhooks",
        method: "POST",
        headers,
      },
      (res) => {
        res.resume();
        res.on("end", () => resolve(res.statusCode ?? 0));
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

async function run(job: Job): Promise<SendResult> {
  const url = new URL(job.url);
  const agent = new Agent({ keepAlive: true, maxSockets: job.inFlight });
  const ids = job.ids ?? job.bodies.map(() => randomUUID());
  const prepared = job.bodies.map((body, i) => ({
    body,
    headers: {
      "content-type": "application/json",
      "content-length": String(Buffer.byteLength(body)),
      "x-github-event": "push",
      "x-github-delivery": ids[i] as string,
      "x-hub-signature-256": `sha256=${createHmac("sha256", job.secret).update(body).digest("hex")}`,
    },
  }));
  const times: number[] = new Array(prepared.length);
  const statuses: number[] = new Array(prepared.length);
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: job.inFlight }, async () => {
      for (let i = next++; i < prepared.length; i = next++) {
        const p = prepared[i] as (typeof prepared)[number];
        const t = performance.now();
        statuses[i] = await post(agent, url, p.headers, p.body);
        times[i] = performance.now() - t;
      }
    }),
  );
  const ms = performance.now() - started;
  agent.destroy();
  return { ms, times, statuses, ids };
}

process.once("message", (job: Job) => {
  run(job).then(
    (r) => process.send?.(r, () => process.exit(0)),
    (e: Error) => {
      process.stderr.write(`bench/github-sender: ${e.stack ?? e.message}\n`);
      process.exit(1);
    },
  );
});
