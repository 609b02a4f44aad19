/**
 * client/follow.ts, the follower the Action and the remote CLI share, against a server that
 * speaks real HTTP and answers GET /api/v1/executions/{id} from a script: one reply per read,
 * a document or an error status.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { ApiClient, ApiClientError } from "../../client/client.js";
import { type DocumentNode, followExecution } from "../../client/follow.js";
import type { ExecutionDocument } from "../../core/report/document.js";

type Reply = ExecutionDocument | number;

function doc(
  status: ExecutionDocument["status"],
  nodes: Array<Pick<DocumentNode, "id" | "status"> & Partial<DocumentNode>>,
): ExecutionDocument {
  return {
    id: "e1",
    workflow: "w",
    repo: "r",
    sha: "0".repeat(40),
    status,
    mode: "normal",
    parent: null,
    inputs: {},
    outputs: null,
    error: null,
    createdAt: "2026-01-01T00:00:00.000Z",
    startedAt: null,
    finishedAt: null,
    nodes: nodes.map((n) => ({
      task: n.id,
      cache: null,
      attempts: 0,
      taskDigest: "sha256:x",
      cacheKey: null,
      inputs: null,
      outputs: null,
      source: null,
      startedAt: null,
      finishedAt: null,
      error: null,
      ...n,
    })),
  };
}

let server: Server | null = null;

/** A server that answers each read with the next reply; the last one is repeated. */
async function scripted(replies: Reply[]): Promise<{ client: ApiClient; reads: () => number }> {
  let reads = 0;
  server = createServer((req, res) => {
    const reply = replies[Math.min(reads++, replies.length - 1)] as Reply;
    if (req.url !== "/api/v1/executions/e1") res.writeHead(404).end();
    else if (typeof reply === "number")
      res
        .writeHead(reply, { "content-type": "application/json" })
        .end(JSON.stringify({ error: { code: "busy", message: `status ${reply}` } }));
    else res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(reply));
  });
  await new Promise<void>((r) => server?.listen(0, "127.0.0.1", r));
  const { port } = server.address() as AddressInfo;
  // One attempt per read: the follower's own handling of an outage is what is tested.
  const client = new ApiClient({ server: `http://127.0.0.1:${port}`, token: null, attempts: 1 });
  return { client, reads: () => reads };
}

afterEach(async () => {
  await new Promise((r) => (server ? server.close(r) : r(undefined)));
  server = null;
});

describe("followExecution", () => {
  it("reads the execution until it ends, telling each node's change once and never a pending node", async () => {
    const { client } = await scripted([
      doc("RUNNING", [
        { id: "a", status: "RUNNING", attempts: 1 },
        { id: "b", status: "PENDING" },
      ]),
      doc("RUNNING", [
        { id: "a", status: "RUNNING", attempts: 1 },
        { id: "b", status: "PENDING" },
      ]),
      doc("SUCCEEDED", [
        { id: "a", status: "SUCCEEDED", attempts: 1 },
        { id: "b", status: "SUCCEEDED", cache: "HIT" },
      ]),
    ]);
    const told: string[] = [];
    const followed = await followExecution(client, "e1", {
      intervalMs: 1,
      onUpdate: (d, changed) =>
        told.push(`${d.status}: ${changed.map((n) => `${n.id} ${n.status}`).join(", ")}`),
    });
    expect(followed.ended).toBe("finished");
    expect(followed.doc.status).toBe("SUCCEEDED");
    expect(told).toEqual([
      "RUNNING: a RUNNING",
      "RUNNING: ",
      "SUCCEEDED: a SUCCEEDED, b SUCCEEDED",
    ]);
  });

  it("returns at once for a document that has ended, reading nothing", async () => {
    const { client, reads } = await scripted([doc("RUNNING", [])]);
    const followed = await followExecution(client, doc("ABORTED", []), { intervalMs: 1 });
    expect([followed.ended, followed.doc.status, reads()]).toEqual(["finished", "ABORTED", 0]);
  });

  it("stops at the caller's timeout, or its signal, with the last document read", async () => {
    const { client } = await scripted([doc("RUNNING", [])]);
    const timedOut = await followExecution(client, "e1", { intervalMs: 5, timeoutMs: 30 });
    expect([timedOut.ended, timedOut.doc.status]).toEqual(["timeout", "RUNNING"]);

    const stop = new AbortController();
    const interrupted = followExecution(client, "e1", { intervalMs: 60_000, signal: stop.signal });
    setTimeout(() => stop.abort(), 20);
    expect((await interrupted).ended).toBe("interrupted");
  });

  it("rides out a server that answers 503, saying it was lost once and when it is back", async () => {
    const { client } = await scripted([
      doc("RUNNING", []),
      503,
      503,
      doc("FAILED", [{ id: "a", status: "FAILED" }]),
    ]);
    const said: string[] = [];
    const followed = await followExecution(client, "e1", {
      intervalMs: 1,
      outage: {
        giveUpMs: 60_000,
        backoffMs: 10,
        onLost: (e) => said.push(`lost: ${e.status}`),
        onBack: () => said.push("back"),
      },
    });
    expect([followed.ended, followed.doc.status]).toEqual(["finished", "FAILED"]);
    expect(said).toEqual(["lost: 503", "back"]);
  }, 20_000);

  it("throws a 503 at once without `outage`, after `giveUpMs` with it; any other refusal at once", async () => {
    const first = doc("RUNNING", []);
    const busy = await scripted([503]);
    const thrown = await followExecution(busy.client, first, { intervalMs: 1 }).catch((e) => e);
    expect([thrown instanceof ApiClientError, thrown.status, busy.reads()]).toEqual([true, 503, 1]);

    const gaveUp = await followExecution(busy.client, first, {
      intervalMs: 1,
      outage: { giveUpMs: 0, backoffMs: 10 },
    }).catch((e) => e);
    expect([gaveUp instanceof ApiClientError, gaveUp.status, busy.reads()]).toEqual([true, 503, 3]);

    await new Promise((r) => server?.close(r));
    const refused = await scripted([403]);
    const denied = await followExecution(refused.client, first, {
      intervalMs: 1,
      outage: { giveUpMs: 60_000 },
    }).catch((e) => e);
    expect([denied.status, refused.reads()]).toEqual([403, 1]);
  }, 20_000);
});
