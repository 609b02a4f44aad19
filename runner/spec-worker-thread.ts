/**
 * The body of a spec worker (spec-worker.ts): core's pure spec code, one request at a time,
 * on its own thread so a big spec never holds the server's event loop.
 */
import { isMainThread, parentPort, threadId } from "node:worker_threads";
import { parseSpec } from "../core/spec/parse-spec.js";
import { buildVersion } from "../core/version/build-version.js";
import type { SpecReply, SpecRequest } from "./spec-worker.js";

if (isMainThread || !parentPort) throw new Error("spec-worker-thread.ts runs only as a worker");
const port = parentPort;

port.on("message", (req: SpecRequest) => {
  let reply: SpecReply;
  try {
    if (req.op === "build")
      reply = { id: req.id, threadId, result: buildVersion(req.spec, req.tree) };
    else {
      const parsed = parseSpec(req.spec);
      const globs = parsed.ok ? Object.values(parsed.spec.tasks).flatMap((t) => t.sources) : null;
      reply = { id: req.id, threadId, globs };
    }
  } catch (e) {
    const err = e instanceof Error ? e : new Error(String(e));
    reply = { id: req.id, threadId, error: { message: err.message, stack: err.stack ?? "" } };
  }
  port.postMessage(reply);
});
