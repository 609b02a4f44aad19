/**
 * The GitHub App (docs/design.md section 8): a webhook endpoint that verifies, stores once and answers
 * (the durable inbox), and processors that work the inbox after the answer, translating each
 * event into runner calls. See README.md here for the invariants.
 */
import type { Logger } from "pino";
import { sleep } from "../client/sleep.js";
import type { Store } from "../db/store.js";
import type { Delivery, ExecutionRecord } from "../db/types.js";
import type { Executor } from "../runner/executors/types.js";
import { MAX_WEBHOOK_BYTES } from "../runner/server/app.js";
import type { AppContext, Outcome } from "./context.js";
import type { GitHubClient } from "./github-client.js";
import { type CheckRunPayload, onCheckRun } from "./on-check-run.js";
import { type CommentPayload, onComment } from "./on-comment.js";
import { onPullRequest, type PullRequestPayload } from "./on-pull-request.js";
import { onPush, type PushPayload } from "./on-push.js";
import { makeStorable, payloadProblem } from "./payloads.js";
import { onReport, queueReports, REPORT_EVENT } from "./report.js";
import { CHECK_RUN_EVENT, onCheckRunQueued, queueCheckRun } from "./schedules.js";
import { InFlight, readSigned, unsignedSize } from "./signed-body.js";

export interface GitHubAppOptions {
  /** The process's one GitHub client (github-client.ts): the App's credentials and GHE_HOST. */
  client: GitHubClient;
  store: Store;
  executor: Pick<Executor, "logTail">;
  publicUrl: string | null;
  log: Logger;
  /** Deliveries processed at once by this replica. */
  concurrency?: number;
  /** How often the inbox and ended executions are looked at without a wake-up. */
  tickMs?: number;
}

/** A claimed delivery not finished within this is claimed again (by any replica). */
const CLAIM_MS = 60_000;
/** A delivery that failed this many times is closed with its last error. */
const MAX_ATTEMPTS = 5;

interface InboxEntry {
  id: string;
  event: string;
  action: string | null;
  payload: unknown;
}

/** Processing waits until no webhook request arrived for this long... */
const QUIET_MS = 100;
/** ...but never longer than this: a steady stream of deliveries must not starve the work. */
const MAX_YIELD_MS = 5_000;
/** Deliveries inserted by one statement, at most. */
const MAX_BATCH = 200;
/** X-GitHub-Delivery is a GUID and X-GitHub-Event a word; the inbox's key must stay indexable. */
const MAX_HEADER_CHARS = 200;
/**
 * Ids and events of the App's own deliveries (report.ts, schedules.ts) and of the runtime's
 * schedule slots (runner/schedules.ts), which share the inbox.
 */
const INTERNAL_ID = "reprise:";
const INTERNAL_EVENT = "reprise.";
const MAX_OUTCOME_CHARS = 2_000;

export class GitHubApp {
  readonly ctx: AppContext;
  #queue: Array<{
    d: InboxEntry;
    resolve: (stored: boolean) => void;
    reject: (e: unknown) => void;
  }> = [];
  #flushing = false;
  /** When the last webhook request arrived: processing yields to a burst of them. */
  #lastRequest = 0;
  readonly #opts: GitHubAppOptions;
  readonly #stop = new AbortController();
  #wakers: Array<() => void> = [];
  #loops: Promise<void>[] = [];
  #busy = 0;

  constructor(opts: GitHubAppOptions) {
    this.#opts = opts;
    const log = opts.log.child({ component: "github" });
    this.ctx = {
      store: opts.store,
      client: opts.client,
      executor: opts.executor,
      publicUrl: opts.publicUrl,
      log,
    };
  }

  /**
   * POST /api/github/webhooks: 401 unsigned, 400 malformed, 202 stored, 200 seen before. The
   * body's size is limited before this is called (runner/server/app.ts: 413 over 25 MiB).
   */
  /** Bytes of deliveries being received whose signature is not checked yet. */
  readonly inFlight = new InFlight();

  readonly webhooks = async (req: Request): Promise<Response> => {
    this.#lastRequest = performance.now();
    const signature = req.headers.get("x-hub-signature-256");
    // Without a signature there is nothing to verify: refused before the body is read (one of
    // unknown length is counted, not kept, to tell one over the limit).
    if (!signature) {
      if ((await unsignedSize(req, MAX_WEBHOOK_BYTES)) === "over")
        return Response.json(
          {
            error: {
              code: "payload_too_large",
              message: `webhook deliveries are limited to ${MAX_WEBHOOK_BYTES} bytes (${MAX_WEBHOOK_BYTES / 1024 / 1024} MiB)`,
            },
          },
          { status: 413, headers: { connection: "close" } },
        );
      return unsigned();
    }
    // Verified as it streams, with the bytes of unverified deliveries capped (signed-body.ts).
    const read = await readSigned(req, {
      secret: this.ctx.client.config.webhookSecret,
      signature,
      maxBytes: MAX_WEBHOOK_BYTES,
      inFlight: this.inFlight,
    });
    if (!read.ok)
      return Response.json(
        { error: { code: read.code, message: read.message } },
        {
          status: read.status,
          // The rest of a refused body is not worth reading to keep the connection.
          headers: read.status === 401 ? {} : { connection: "close", "retry-after": "10" },
        },
      );
    const body = read.body;
    const id = req.headers.get("x-github-delivery");
    const event = req.headers.get("x-github-event");
    if (!id || !event)
      return error(400, "bad_request", "X-GitHub-Delivery and X-GitHub-Event are required");
    if (id.length > MAX_HEADER_CHARS || event.length > MAX_HEADER_CHARS)
      return error(
        400,
        "bad_request",
        `X-GitHub-Delivery and X-GitHub-Event are at most ${MAX_HEADER_CHARS} characters`,
      );
    // The App's own deliveries (reports, check runs) and the runtime's schedule slots are inserted
    // here, never received: a received one could start any workflow, or take a slot before it fires.
    if (id.startsWith(INTERNAL_ID) || event.startsWith(INTERNAL_EVENT))
      return error(
        400,
        "bad_request",
        `X-GitHub-Delivery "${INTERNAL_ID}..." and X-GitHub-Event "${INTERNAL_EVENT}..." are the App's own`,
      );
    let payload: unknown;
    try {
      payload = JSON.parse(body);
    } catch {
      return error(400, "bad_request", "the body is not JSON");
    }
    if (typeof payload !== "object" || payload === null || Array.isArray(payload))
      return error(400, "bad_request", "the body is not a JSON object");
    const unstorable = makeStorable(payload);
    if (unstorable) return error(400, "bad_request", unstorable);
    const action = (payload as { action?: unknown }).action;
    let stored: boolean;
    try {
      stored = await this.#record({
        id,
        event,
        action: typeof action === "string" ? action : null,
        payload,
      });
    } catch (e) {
      this.ctx.log.error({ deliveryId: id, err: (e as Error).message }, "cannot store a delivery");
      return error(
        500,
        "not_stored",
        `the delivery was not stored (${(e as Error).message}); redeliver it from the App's settings once fixed`,
      );
    }
    if (stored) this.#wake(1);
    return Response.json({ delivery: id, stored }, { status: stored ? 202 : 200 });
  };

  /**
   * Group commit: deliveries that arrive while an insert is in flight are inserted together by
   * the next one, so a burst costs a few round trips, not one per delivery. Each request is
   * answered only once its own row is committed.
   */
  #record(d: InboxEntry): Promise<boolean> {
    return new Promise((resolve, reject) => {
      this.#queue.push({ d, resolve, reject });
      if (!this.#flushing) void this.#flush();
    });
  }

  async #flush(): Promise<void> {
    this.#flushing = true;
    try {
      while (this.#queue.length > 0) {
        const batch = this.#queue.splice(0, MAX_BATCH);
        try {
          const fresh = await this.ctx.store.deliveries.recordMany(batch.map((b) => b.d));
          for (const b of batch) {
            // Only the first of repeated ids in one batch counts as stored.
            b.resolve(fresh.delete(b.d.id));
          }
        } catch (e) {
          // One bad row (say, a \u0000 that jsonb refuses) must not fail its neighbours: alone,
          // each succeeds or fails on its own.
          if (batch.length === 1) (batch[0] as (typeof batch)[number]).reject(e);
          else
            await Promise.all(
              batch.map((b) =>
                this.ctx.store.deliveries.record(b.d).then(
                  (r) => b.resolve(r.stored),
                  (err: unknown) => b.reject(err),
                ),
              ),
            );
        }
      }
    } finally {
      this.#flushing = false;
    }
  }

  /**
   * The runtime's scheduler calls this for each execution it started (runner/schedules.ts): one of
   * a GitHub repository gets its check run, through the inbox.
   */
  readonly scheduled = async (exec: ExecutionRecord): Promise<void> => {
    if (await queueCheckRun(this.ctx, exec)) this.#wake(1);
  };

  /** Starts the processors; deliveries left unprocessed by a crash are taken up first. */
  start(): void {
    const n = this.#opts.concurrency ?? 8;
    for (let i = 0; i < n; i++) this.#loops.push(this.#work());
    this.#loops.push(this.#watch());
  }

  async close(): Promise<void> {
    this.#stop.abort();
    this.#wake();
    await Promise.all(this.#loops);
  }

  /** Resolves when the inbox is empty and nothing is being processed (tests, benchmarks). */
  async idle(timeoutMs = 30_000): Promise<void> {
    const until = Date.now() + timeoutMs;
    while (Date.now() < until) {
      await queueReports(this.ctx);
      if (this.#busy === 0 && (await this.ctx.store.deliveries.pendingCount()) === 0) return;
      await sleep(25);
    }
    throw new Error(`the GitHub App inbox is not empty after ${timeoutMs} ms`);
  }

  async #work(): Promise<void> {
    const signal = this.#stop.signal;
    while (!signal.aborted) {
      // Answer first, work after: while deliveries are arriving, their answers get the event
      // loop and the database pool; the work waits for a quiet moment (at most MAX_YIELD_MS).
      for (
        let waited = 0;
        waited < MAX_YIELD_MS && performance.now() - this.#lastRequest < QUIET_MS;
      ) {
        await sleep(QUIET_MS);
        waited += QUIET_MS;
      }
      let d: Delivery | null = null;
      try {
        d = await this.ctx.store.deliveries.claimNext(CLAIM_MS);
      } catch (e) {
        if (signal.aborted) return;
        this.ctx.log.error({ err: (e as Error).message }, "cannot read the delivery inbox");
      }
      if (!d) {
        await this.#nap();
        continue;
      }
      this.#busy++;
      try {
        await this.#process(d);
      } finally {
        this.#busy--;
      }
    }
  }

  async #process(d: Delivery): Promise<void> {
    const log = this.ctx.log.child({ deliveryId: d.id, event: d.event, action: d.action });
    let outcome: Outcome;
    try {
      outcome = clip(await this.#dispatch(d, log));
    } catch (e) {
      const err = e as Error;
      if (d.attempts >= MAX_ATTEMPTS) {
        await this.#settle(log, () =>
          this.ctx.store.deliveries.finish(d.id, `failed: ${err.message}`),
        );
        log.error(
          { err: err.stack ?? err.message, attempts: d.attempts },
          "delivery failed for good",
        );
      } else {
        // 1 s, 2 s, 4 s, 8 s: a GitHub hiccup is retried soon, a lasting failure gives up.
        const backoff = Math.min(CLAIM_MS, 1_000 * 2 ** (d.attempts - 1));
        await this.#settle(log, () =>
          this.ctx.store.deliveries.retryLater(d.id, backoff, err.message),
        );
        log.warn(
          { err: err.stack ?? err.message, attempts: d.attempts },
          `delivery failed; retried in ${backoff / 1000} s`,
        );
      }
      return;
    }
    // Done: only recording that is left. Were the database down, processing it again would
    // repeat the work; the write is retried instead.
    if (await this.#settle(log, () => this.ctx.store.deliveries.finish(d.id, outcome)))
      log.info({ outcome }, "delivery processed");
  }

  /**
   * Records what became of a delivery, retrying through a database outage (a restart takes
   * seconds): otherwise the delivery would sit claimed until its claim expires (CLAIM_MS). Gives
   * up before that, when another replica may take the delivery, or when the App stops.
   */
  async #settle(log: Logger, write: () => Promise<void>): Promise<boolean> {
    const until = Date.now() + CLAIM_MS / 2;
    for (let wait = 100; ; wait = Math.min(wait * 2, 2_000)) {
      try {
        await write();
        return true;
      } catch (e) {
        if (this.#stop.signal.aborted || Date.now() + wait > until) {
          log.error({ err: (e as Error).message }, "cannot record the delivery's outcome");
          return false;
        }
        await sleep(wait, this.#stop.signal);
      }
    }
  }

  #dispatch(d: Delivery, log: Logger): Promise<Outcome> {
    const p = d.payload;
    // A payload without what its handler reads is answered at once: retrying cannot fix it.
    const problem = payloadProblem(d.event, p);
    if (problem) {
      log.warn({ problem }, `malformed ${d.event} payload`);
      return Promise.resolve(`ignored: malformed ${d.event} payload: ${problem}`);
    }
    switch (d.event) {
      case "push":
        return onPush(this.ctx, p as PushPayload, d);
      case "pull_request":
        return onPullRequest(this.ctx, p as PullRequestPayload);
      case "issue_comment":
        return onComment(this.ctx, p as CommentPayload);
      case "check_run":
        return onCheckRun(this.ctx, p as CheckRunPayload);
      case REPORT_EVENT:
        return onReport(this.ctx, p as { executionId: string });
      case CHECK_RUN_EVENT:
        return onCheckRunQueued(this.ctx, p as { executionId: string });
      default:
        return Promise.resolve(`ignored: event ${d.event}`);
    }
  }

  /** Ended executions to report, on every tick (schedules are the runtime's: runner/schedules.ts). */
  async #watch(): Promise<void> {
    const signal = this.#stop.signal;
    while (!signal.aborted) {
      try {
        const queued = await queueReports(this.ctx);
        if (queued > 0) this.#wake(queued);
      } catch (e) {
        if (!signal.aborted)
          this.ctx.log.error({ err: (e as Error).message }, "cannot look for reports");
      }
      await this.#nap();
    }
  }

  #nap(): Promise<void> {
    if (this.#stop.signal.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        const i = this.#wakers.indexOf(done);
        if (i >= 0) this.#wakers.splice(i, 1);
        resolve();
      };
      const timer = setTimeout(done, this.#opts.tickMs ?? 1_000);
      this.#wakers.push(done);
    });
  }

  /** Wakes `n` idle processors (all by default): one per new delivery, not a herd. */
  #wake(n = Number.POSITIVE_INFINITY): void {
    const wakers = this.#wakers.splice(0, n);
    for (const w of wakers) w();
  }
}

function unsigned(): Response {
  return error(
    401,
    "bad_signature",
    "X-Hub-Signature-256 is missing or does not match WEBHOOK_SECRET",
  );
}

/** An outcome quotes payload fields (an action, a name): kept to a line's worth. */
function clip(outcome: Outcome): Outcome {
  return outcome.length > MAX_OUTCOME_CHARS ? `${outcome.slice(0, MAX_OUTCOME_CHARS)}…` : outcome;
}

function error(status: 400 | 401 | 500, code: string, message: string): Response {
  return Response.json({ error: { code, message } }, { status });
}
