/**
 * Following an execution to its end over the API, the one way the GitHub Action and the CLI
 * through REPRISE_SERVER both do it: read its document every `intervalMs`, tell the caller each
 * document and the nodes that changed since the last one, and stop when it has ended, when the
 * caller's signal fires, or when the caller's time is up. What to print, and what an end other
 * than "finished" means, stays with the caller.
 */
import { isTerminalExecutionState } from "../core/engine/vocabulary.js";
import type { ExecutionDocument } from "../core/report/document.js";
import { type ApiClient, ApiClientError } from "./client.js";
import { sleep } from "./sleep.js";

export type DocumentNode = ExecutionDocument["nodes"][number];

export interface FollowOptions {
  /** Between two reads of the document. */
  intervalMs: number;
  /**
   * Each document read, the first included, with its nodes that changed (status, cache status,
   * attempts or error) since the one before; PENDING nodes are left out until they move.
   */
  onUpdate?: (doc: ExecutionDocument, changed: DocumentNode[]) => void;
  /** Stop following (the execution goes on): ends "interrupted". */
  signal?: AbortSignal;
  /** Stop following once this long has passed without the execution ending: ends "timeout". */
  timeoutMs?: number | null;
  /**
   * Ride out a server that does not answer (network, 429, 5xx, after the client's own retries):
   * keep asking, backing off from `backoffMs` (default 1 s), doubling, up to 15 s, for up to
   * `giveUpMs`, then throw the last error. Without it the first such error is thrown. Any other
   * refusal is always thrown at once.
   */
  outage?: {
    giveUpMs: number;
    backoffMs?: number;
    /** The server stopped answering (said once per outage). */
    onLost?: (e: ApiClientError) => void;
    /** It answers again. */
    onBack?: () => void;
  };
}

export interface Followed {
  /** The last document read. */
  doc: ExecutionDocument;
  /** finished: the execution ended; interrupted: the signal fired; timeout: `timeoutMs` passed. */
  ended: "finished" | "interrupted" | "timeout";
}

/** Follows execution `first` (its id, or a document of it already in hand) until it ends. */
export async function followExecution(
  client: ApiClient,
  first: ExecutionDocument | string,
  opts: FollowOptions,
): Promise<Followed> {
  const { signal } = opts;
  const deadline = opts.timeoutMs == null ? null : Date.now() + opts.timeoutMs;
  const seen = new Map<string, string>();
  let doc = typeof first === "string" ? await client.execution(first) : first;
  const firstBackoff = opts.outage?.backoffMs ?? 1_000;
  let lostSince: number | null = null;
  let backoff = firstBackoff;
  for (;;) {
    if (lostSince === null) opts.onUpdate?.(doc, changedNodes(doc, seen));
    if (isTerminalExecutionState(doc.status)) return { doc, ended: "finished" };
    if (signal?.aborted) return { doc, ended: "interrupted" };
    if (deadline !== null && Date.now() > deadline) return { doc, ended: "timeout" };
    await sleep(lostSince === null ? opts.intervalMs : backoff, signal);
    if (signal?.aborted) return { doc, ended: "interrupted" };
    try {
      doc = await client.execution(doc.id);
      if (lostSince !== null) opts.outage?.onBack?.();
      lostSince = null;
      backoff = firstBackoff;
    } catch (e) {
      if (!(e instanceof ApiClientError && e.transient && opts.outage)) throw e;
      if (lostSince === null) {
        lostSince = Date.now();
        opts.outage.onLost?.(e);
      } else if (Date.now() - lostSince > opts.outage.giveUpMs) throw e;
      backoff = Math.min(backoff * 2, 15_000);
    }
  }
}

/** The nodes of `doc` that moved since `seen` last recorded them (and records them). */
function changedNodes(doc: ExecutionDocument, seen: Map<string, string>): DocumentNode[] {
  const changed: DocumentNode[] = [];
  for (const n of doc.nodes) {
    const now = `${n.status}/${n.cache ?? ""}/${n.attempts}/${n.error?.message ?? ""}`;
    if (n.status === "PENDING" || seen.get(n.id) === now) continue;
    seen.set(n.id, now);
    changed.push(n);
  }
  return changed;
}
