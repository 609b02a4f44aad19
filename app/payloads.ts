/**
 * What the handlers read from each stored payload, checked before they run (issue 9). A delivery
 * is signed by GitHub, but its payload is still data: a field of the wrong type, missing, or a
 * value GitHub never sends (a SHA that is not hex, a negative installation id) would otherwise
 * throw inside a handler and be retried five times with backoff, or worse, reach GitHub or the
 * store. Only the fields the handlers read are checked; everything else in the payload is left
 * alone (the handlers get the payload as stored, not a stripped copy).
 *
 * The handlers keep their own interfaces (on-*.ts); the types inferred here are compatible with
 * them, for anyone who wants a type that says exactly what was checked.
 */
import { z } from "zod";
import { REPORT_EVENT } from "./report.js";
import { CHECK_RUN_EVENT } from "./schedules.js";

/** As core/version/repo-key.ts checks it: what githubRepoKey accepts. */
const FULL_NAME = /^[A-Za-z0-9-]{1,39}\/[A-Za-z0-9._-]{1,100}$/;
const SHA = /^(?:[0-9a-f]{40}|[0-9a-f]{64})$/;

const fullName = z.string().regex(FULL_NAME, "is not OWNER/NAME");
const sha = z.string().regex(SHA, "is not a full lowercase commit SHA");
/** GitHub's numeric ids: positive integers (the API is called with them). */
const id = z.number().int().positive().max(Number.MAX_SAFE_INTEGER);

const repository = z.object({
  full_name: fullName,
  default_branch: z.string().nullish(),
  master_branch: z.string().nullish(),
});

/** The sender's login is only recorded (as the actor); GitHub's are at most 39 characters. */
const sender = z.object({ login: z.string().min(1).max(255), type: z.string().nullish() });
/** Handlers read `sender?.login` and `installation?.id`: absent or null is fine, wrong is not. */
/**
 * The commenter's login goes into an API path (their permission): GitHub's logins are letters,
 * digits and hyphens (underscores for managed users), `[bot]` for apps; `..` would change the path.
 */
const login = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}(?:\[bot\])?$/, "is not a GitHub login");
const common = {
  repository,
  sender: sender.nullish(),
  installation: z.object({ id }).nullish(),
};

export const pushSchema = z.object({
  ...common,
  ref: z.string(),
  before: sha,
  after: sha,
  deleted: z.boolean().nullish(),
  commits: z.array(z.object({ id: sha })).nullish(),
  head_commit: z.object({ message: z.string().nullish() }).nullish(),
  pusher: z.object({ name: z.string().nullish() }).nullish(),
});

export const pullRequestSchema = z.object({
  ...common,
  action: z.string(),
  number: id,
  pull_request: z.object({
    head: z.object({
      sha,
      ref: z.string(),
      repo: z.object({ full_name: z.string() }).nullable(),
    }),
    base: z.object({ ref: z.string() }),
  }),
});

export const commentSchema = z.object({
  ...common,
  action: z.string(),
  issue: z.object({ number: id, pull_request: z.unknown().optional() }),
  comment: z.object({
    id,
    body: z.string(),
    user: z.object({ login, type: z.string().nullish() }),
    created_at: z.string().nullish(),
  }),
});

export const checkRunSchema = z.object({
  ...common,
  action: z.string(),
  check_run: z.object({
    name: z.string(),
    external_id: z.string().nullish(),
    pull_requests: z.array(z.object({ number: id })).nullish(),
  }),
  requested_action: z.object({ identifier: z.string() }).nullish(),
});

/** The App's own deliveries (report.ts, schedules.ts): never from GitHub, checked all the same. */
export const reportSchema = z.object({ executionId: z.string().min(1) });

export type PushPayloadChecked = z.infer<typeof pushSchema>;
export type PullRequestPayloadChecked = z.infer<typeof pullRequestSchema>;
export type CommentPayloadChecked = z.infer<typeof commentSchema>;
export type CheckRunPayloadChecked = z.infer<typeof checkRunSchema>;

/** The schema of each event the App handles, by X-GitHub-Event (or the App's own event). */
export const PAYLOADS: Readonly<Record<string, z.ZodType>> = {
  push: pushSchema,
  pull_request: pullRequestSchema,
  issue_comment: commentSchema,
  check_run: checkRunSchema,
  [REPORT_EVENT]: reportSchema,
  [CHECK_RUN_EVENT]: reportSchema,
};

/** At most this many problems are named in an outcome. */
const PROBLEMS_SAID = 3;

/**
 * Null when `payload` has every field the handler of `event` reads, with the right type; else
 * what is wrong, short enough for an outcome and a log line (it never quotes the payload's values).
 * Events without a handler have nothing to check.
 */
export function payloadProblem(event: string, payload: unknown): string | null {
  const schema = PAYLOADS[event];
  if (!schema) return null;
  const r = schema.safeParse(payload);
  if (r.success) return null;
  const issues = r.error.issues;
  const said = issues.slice(0, PROBLEMS_SAID).map((i) => {
    const path = i.path.map((p) => (typeof p === "number" ? `[${p}]` : `.${String(p)}`)).join("");
    return `${path ? path.slice(path.startsWith(".") ? 1 : 0) : "the payload"}: ${i.message}`;
  });
  const more = issues.length > PROBLEMS_SAID ? ` (and ${issues.length - PROBLEMS_SAID} more)` : "";
  return `${said.join("; ")}${more}`;
}

/** Payloads nested deeper than this are refused: GitHub's are about ten levels deep. */
export const MAX_PAYLOAD_DEPTH = 64;
/** What jsonb cannot hold: the NUL character, and UTF-16 surrogates that are not in a pair. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: NUL is what jsonb refuses
const UNSTORABLE = /[\u0000\uD800-\uDFFF]/u;
// biome-ignore lint/suspicious/noControlCharactersInRegex: NUL is what jsonb refuses
const UNSTORABLE_ALL = /[\u0000\uD800-\uDFFF]/gu;

/**
 * Makes a parsed JSON object storable in the inbox (a jsonb column), in place: every NUL
 * character and every unpaired surrogate in a string or a key becomes U+FFFD, as a lossy UTF-8
 * decoder would do. The database would refuse the row otherwise, and the delivery could never be
 * stored however often GitHub redelivers it. Returns what is wrong when the object is nested
 * deeper than MAX_PAYLOAD_DEPTH (refused: no GitHub payload is), else null. Iterative: a deep
 * payload cannot overflow the stack.
 */
export function makeStorable(payload: object): string | null {
  const stack: Array<{ value: object; depth: number }> = [{ value: payload, depth: 1 }];
  for (let top = stack.pop(); top; top = stack.pop()) {
    const { value, depth } = top;
    if (depth > MAX_PAYLOAD_DEPTH)
      return `the payload is nested deeper than ${MAX_PAYLOAD_DEPTH} levels`;
    const record = value as Record<string, unknown>;
    for (const key of Object.keys(record)) {
      let k = key;
      if (UNSTORABLE.test(key)) {
        k = key.replace(UNSTORABLE_ALL, "\uFFFD");
        const v = record[key];
        delete record[key];
        // defineProperty, not assignment: a key such as "__proto__" stays a plain key.
        Object.defineProperty(record, k, {
          value: v,
          enumerable: true,
          writable: true,
          configurable: true,
        });
      }
      const v = record[k];
      if (typeof v === "string") {
        if (UNSTORABLE.test(v)) record[k] = v.replace(UNSTORABLE_ALL, "\uFFFD");
      } else if (typeof v === "object" && v !== null) stack.push({ value: v, depth: depth + 1 });
    }
  }
  return null;
}
