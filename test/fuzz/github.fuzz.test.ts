/**
 * Hostile webhook deliveries (issue 9): correctly signed, so they pass the signature and reach
 * the inbox, with payloads that are arbitrary JSON objects, or real GitHub payloads (from
 * @octokit/webhooks-examples, as the e2e test sends them) with the fields the handlers read made
 * wrong: other types, missing, huge, deeply nested, unicode with NUL and lone surrogates.
 *
 * The endpoint answers 2xx or 4xx, never 5xx; every stored delivery is processed once (no retry
 * with backoff) with a clean outcome; a malformed payload is ignored at once, with a warning, and
 * nothing is read from or posted to GitHub, registered or started for it.
 */
import { randomUUID } from "node:crypto";
import fc from "fast-check";
import type { Hono } from "hono";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { GitHubApp } from "../../app/app.js";
import { createApp } from "../../runner/server/app.js";
import { Authenticator } from "../../runner/server/auth.js";
import { Metrics } from "../../runner/server/metrics.js";
import { tempRepo } from "../fakes/git-repo.js";
import {
  checkRunPayload,
  commentPayload,
  example,
  FakeGitHub,
  pushPayload,
  sign,
  testGitHubApp,
} from "../fakes/github/index.js";
import { openTestStore, type TestStore } from "../setup/stores.js";

type Json = Record<string, unknown>;
const SECRET = "fuzz-secret";
const ZERO = "0".repeat(40);
const EVENTS = ["push", "pull_request", "issue_comment", "check_run"] as const;
type Event = (typeof EVENTS)[number];

let db: TestStore;
let fake: FakeGitHub;
let github: GitHubApp;
let server: Hono;
let repo: ReturnType<typeof tempRepo>;
let head: string;
/** Every log line of the App, parsed. */
const logs: Array<{ level: number; msg: string; deliveryId?: string }> = [];
const serverErrors: string[] = [];

beforeAll(async () => {
  db = await openTestStore("pglite");
  fake = await FakeGitHub.start();
  // A repository without reprise.yaml: a payload that is valid after all registers nothing.
  repo = tempRepo("reprise-github-fuzz-");
  repo.write({ "README.md": "no spec here\n" });
  head = repo.commit("first");
  fake.addRepo({
    fullName: "acme/fuzz",
    dir: repo.dir,
    permissions: { rob: "read" },
    pulls: { 1: { head: "main", base: "main" } },
  });
  const log = pino(
    { level: "info" },
    { write: (line: string) => void logs.push(JSON.parse(line) as (typeof logs)[number]) },
  );
  github = testGitHubApp({
    store: db.store,
    fake,
    secret: SECRET,
    log,
    tickMs: 20,
    concurrency: 4,
  });
  server = createApp({
    store: db.store,
    executor: { logTail: async () => null },
    auth: new Authenticator({ store: db.store, open: false, oidc: null }),
    metrics: new Metrics(),
    publicUrl: null,
    log: (_level, message, extra) => serverErrors.push(`${message} ${JSON.stringify(extra)}`),
    webhooks: github.webhooks,
  });
  github.start();
}, 60_000);

afterAll(async () => {
  await github?.close();
  await fake?.close();
  repo?.remove();
  await db?.dispose();
});

/** Valid deliveries of each event, for the fake's repository; each alone posts nothing. */
function base(event: Event): Json {
  switch (event) {
    case "push":
      return pushPayload({ repo: "acme/fuzz", branch: "main", before: ZERO, after: head });
    case "pull_request": {
      const p = example("pull_request", (e) => e.action === "opened");
      const side = { sha: head, ref: "main", repo: { full_name: "acme/fuzz" } };
      p.number = 1;
      p.pull_request = { ...(p.pull_request as Json), head: side, base: side };
      p.repository = { ...(p.repository as Json), full_name: "acme/fuzz", name: "fuzz" };
      p.installation = { id: 1 };
      p.sender = { login: "rob", type: "User" };
      return p;
    }
    case "issue_comment":
      // rob may only read: a command is refused with a reply.
      return commentPayload({ repo: "acme/fuzz", pr: 1, body: "looks good", user: "rob" });
    case "check_run":
      return checkRunPayload({
        repo: "acme/fuzz",
        action: "rerequested",
        checkRunName: "reprise/train",
        externalId: "no-such-execution",
        user: "rob",
      });
  }
}

/**
 * The fields each handler reads, and what a wrong value is for each: `string` (any non-string,
 * or absent), `sha` (also any string that is not hex), `id` (a positive integer), `object`
 * (required), `optional` (null or absent is fine, another type is not).
 */
type Kind =
  | "string"
  | "sha"
  | "id"
  | "object"
  | "optional"
  | "optionalString"
  | "fullName"
  | "array"
  | "bool";
const COMMON: Array<[string, Kind]> = [
  ["repository", "object"],
  ["repository.full_name", "fullName"],
  ["sender", "optional"],
  ["sender.login", "string"],
  ["installation", "optional"],
  ["installation.id", "id"],
];
const READ: Record<Event, Array<[string, Kind]>> = {
  push: [
    ...COMMON,
    ["ref", "string"],
    ["before", "sha"],
    ["after", "sha"],
    ["deleted", "bool"],
    ["commits", "array"],
    ["commits.0.id", "sha"],
    ["head_commit", "optional"],
    ["head_commit.message", "optionalString"],
    ["pusher", "optional"],
  ],
  pull_request: [
    ...COMMON,
    ["action", "string"],
    ["number", "id"],
    ["pull_request", "object"],
    ["pull_request.head", "object"],
    ["pull_request.head.sha", "sha"],
    ["pull_request.head.ref", "string"],
    ["pull_request.base", "object"],
    ["pull_request.base.ref", "string"],
  ],
  issue_comment: [
    ...COMMON,
    ["action", "string"],
    ["issue", "object"],
    ["issue.number", "id"],
    ["comment", "object"],
    ["comment.id", "id"],
    ["comment.body", "string"],
    ["comment.user", "object"],
    ["comment.user.login", "string"],
  ],
  check_run: [
    ...COMMON,
    ["action", "string"],
    ["check_run", "object"],
    ["check_run.name", "string"],
    ["check_run.external_id", "optionalString"],
    ["check_run.pull_requests", "array"],
    ["requested_action", "optional"],
  ],
};

/** Strings a careless handler chokes on: NUL, lone surrogates, huge, control characters. */
const hostileString = fc.oneof(
  fc.string({ unit: "binary", maxLength: 40 }),
  fc.string({ unit: "grapheme", maxLength: 40 }),
  fc.constantFrom(
    "\u0000",
    "a\u0000b",
    "\ud800",
    "x\udfffy",
    "refs/heads/\u0000",
    "\u202e\ufeff\u200b",
    "../../etc/passwd",
    "/run train",
    "acme/fuzz\u0000",
  ),
  fc
    .tuple(
      fc.constantFrom("x", "é", "\u0000", "😀", "\n/"),
      fc.integer({ min: 1_000, max: 200_000 }),
    )
    .map(([c, n]) => c.repeat(n)),
);

/** Nesting of arrays and objects, `n` levels deep. */
function nest(n: number): unknown {
  let v: unknown = "bottom";
  for (let i = 0; i < n; i++) v = i % 2 ? [v] : { d: v };
  return v;
}

/** Values of another type than a string, number, or object would be. */
const notString = fc.oneof(
  fc.integer(),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
  fc.array(fc.jsonValue({ maxDepth: 2 }), { maxLength: 3 }),
  fc.dictionary(fc.string({ maxLength: 5 }), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 3 }),
  fc.integer({ min: 1, max: 60 }).map(nest),
);

/** A value certainly wrong for a field of this kind; undefined deletes the field. */
function wrong(kind: Kind): fc.Arbitrary<unknown> {
  const absent = fc.constant(undefined);
  switch (kind) {
    case "string":
      return fc.oneof(absent, notString);
    case "sha":
    case "fullName":
      return fc.oneof(
        absent,
        notString,
        hostileString.filter((s) => !/^[0-9A-Za-z._-]*\/?[0-9A-Za-z._-]*$/.test(s)),
      );
    case "id":
      return fc.oneof(
        absent,
        fc.constantFrom(0, -1, 1.5, Number.MAX_VALUE, "1", "12", true, null, [1], { id: 1 }),
      );
    case "object":
      return fc.oneof(absent, fc.constantFrom(null, "object", 1, true, [], [{}]), hostileString);
    case "optionalString":
      return fc.oneof(
        fc.constantFrom(1, -0.5, true, [], {}),
        notString.filter((v) => v !== null),
      );
    case "optional":
    case "array":
    case "bool":
      return fc.oneof(
        fc.constantFrom("object", 1, true, "null").filter((v) => kind !== "bool" || v !== true),
        hostileString,
        fc.integer({ min: 1, max: 60 }).map((n) => (kind === "array" ? { n: nest(n) } : [n])),
      );
  }
}

function setPath(p: Json, path: string, value: unknown): void {
  const keys = path.split(".");
  let at: unknown = p;
  for (const k of keys.slice(0, -1)) {
    if (typeof at !== "object" || at === null) return;
    at = (at as Json)[k];
  }
  if (typeof at !== "object" || at === null) return;
  const last = keys.at(-1) as string;
  if (value === undefined) delete (at as Json)[last];
  else (at as Json)[last] = value;
}

/** A base payload with 1 to 3 of its read fields made certainly wrong. */
const malformed = fc.constantFrom(...EVENTS).chain((event) =>
  fc
    .array(
      fc
        .constantFrom(...READ[event])
        .chain(([path, kind]) => wrong(kind).map((value) => ({ path, value }))),
      { minLength: 1, maxLength: 3 },
    )
    .map((changes) => {
      const p = base(event);
      // Set the first change last: whatever the others did, it stays wrong.
      for (const c of [...changes].reverse()) setPath(p, c.path, c.value);
      return { event, payload: p as unknown, changes };
    }),
);

/** A base payload whose string fields got hostile strings: of the right type, so handled. */
const plausible = fc.constantFrom(...EVENTS).chain((event) =>
  fc
    .array(
      fc.tuple(
        fc.constantFrom(
          ...READ[event].filter(([, k]) => k === "string").map(([path]) => path),
          "head_commit.message",
          "repository.default_branch",
          "pusher.name",
          "unread_field",
        ),
        hostileString,
      ),
      { minLength: 1, maxLength: 3 },
    )
    .map((changes) => {
      const p = base(event);
      for (const [path, value] of changes) setPath(p, path, value);
      return { event, payload: p as unknown };
    }),
);

interface Sent {
  id: string;
  event: string;
  status: number;
  body: unknown;
}

async function deliver(event: string, payload: unknown, raw?: string): Promise<Sent> {
  const id = randomUUID();
  const body = raw ?? JSON.stringify(payload);
  const res = await server.request("/api/github/webhooks", {
    method: "POST",
    headers: {
      "content-type": "application/json",
      "x-github-event": event,
      "x-github-delivery": id,
      "x-hub-signature-256": sign(SECRET, body),
    },
    body,
  });
  const text = await res.text();
  return { id, event, status: res.status, body: JSON.parse(text) };
}

/** The answer is 2xx, or a 4xx that says why; never 5xx. */
function answeredWell(s: Sent): void {
  expect(s.status, JSON.stringify(s.body)).toBeLessThan(500);
  if (s.status >= 400) {
    const e = (s.body as { error?: { code?: string; message?: string } }).error;
    expect(e?.code).toBeTruthy();
    expect(e?.message).toBeTruthy();
  } else expect(s.status).toBe(202);
}

/** Processed once, at the first attempt, with an outcome that is neither a failure nor a retry. */
async function processedCleanly(s: Sent): Promise<string> {
  const d = await db.store.deliveries.get(s.id);
  expect(d, s.id).not.toBeNull();
  expect(d?.processedAt, d?.outcome ?? "").not.toBeNull();
  expect(d?.attempts, d?.outcome ?? "").toBe(1);
  expect(d?.outcome ?? "").not.toMatch(/^(failed|retrying):/);
  return d?.outcome ?? "";
}

/** Runs `sends`, waits for the inbox to drain, and checks what every stored delivery became. */
async function round(
  sends: Array<{ event: string; payload: unknown }>,
  expectMalformed: boolean,
): Promise<void> {
  const calls = fake.calls.length;
  const posted = fake.checkRuns.length + fake.comments.length + fake.reactions.length;
  const sent = await Promise.all(sends.map((s) => deliver(s.event, s.payload)));
  for (const s of sent) answeredWell(s);
  await github.idle(20_000);
  for (const s of sent) {
    if (s.status !== 202) {
      expect(await db.store.deliveries.get(s.id)).toBeNull();
      continue;
    }
    const outcome = await processedCleanly(s);
    const handled = (EVENTS as readonly string[]).includes(s.event);
    if (expectMalformed && handled) {
      expect(outcome).toMatch(new RegExp(`^ignored: malformed ${s.event} payload: .+`));
      expect(
        logs.some((l) => l.level === 40 && l.deliveryId === s.id && /malformed/.test(l.msg)),
      ).toBe(true);
    }
  }
  if (expectMalformed) {
    // Nothing read from GitHub, nothing posted.
    expect(fake.calls.slice(calls)).toEqual([]);
    expect(fake.checkRuns.length + fake.comments.length + fake.reactions.length).toBe(posted);
  }
  // The repository has no reprise.yaml: nothing is ever registered or started.
  expect(await db.store.versions.repositories()).toEqual([]);
  expect(await db.store.executions.list({})).toEqual([]);
  expect(logs.filter((l) => l.level >= 50).map((l) => l.msg)).toEqual([]);
  expect(serverErrors).toEqual([]);
}

describe("hostile webhook deliveries", () => {
  it("arbitrary JSON objects under every event: stored, ignored as malformed at once", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.record({
            event: fc.constantFrom(...EVENTS, "ping", "installation", "x-unknown"),
            payload: fc.dictionary(
              fc.string({ unit: "binary", maxLength: 12 }),
              fc.jsonValue({ maxDepth: 4 }),
              { maxKeys: 6 },
            ),
          }),
          { minLength: 1, maxLength: 4 },
        ),
        (sends) => round(sends, true),
      ),
      { numRuns: 40 },
    );
  }, 60_000);

  it("real payloads with the fields handlers read made wrong: ignored as malformed, nothing posted", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(malformed, { minLength: 1, maxLength: 4 }), (sends) =>
        round(sends, true),
      ),
      { numRuns: 60 },
    );
  }, 60_000);

  it("real payloads with hostile strings where strings go: handled at the first attempt", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(plausible, { minLength: 1, maxLength: 3 }), (sends) =>
        round(sends, false),
      ),
      { numRuns: 40 },
    );
  }, 60_000);

  it("payloads nested too deep, NUL and lone surrogates in keys, reserved ids and events", async () => {
    // Built as text: JSON.stringify itself overflows the stack on such depths.
    for (const depth of [65, 1_000, 1_000_000]) {
      const deep = await deliver("push", null, `{"a":${"[".repeat(depth)}${"]".repeat(depth)}}`);
      expect(deep.status).toBe(400);
      if (depth < 10_000) expect(JSON.stringify(deep.body)).toContain("nested deeper than 64");
      expect(await db.store.deliveries.get(deep.id)).toBeNull();
    }

    // jsonb refuses NUL and lone surrogates: they are stored as U+FFFD, and the delivery is
    // handled like any other.
    const raw = JSON.stringify(base("check_run")).replace(
      "{",
      '{"__proto__":{"polluted":1},"k\\u0000\\ud800":"v\\u0000","\\udc00":"\\ud83d\\ude00",',
    );
    const sent = await deliver("check_run", null, raw);
    expect(sent.status).toBe(202);
    await github.idle();
    const stored = await db.store.deliveries.get(sent.id);
    expect(stored?.payload).toMatchObject({ "k\ufffd\ufffd": "v\ufffd", "\ufffd": "😀" });
    expect(({} as Json).polluted).toBeUndefined();
    expect(stored?.outcome).toMatch(/^ignored: no execution/);

    for (const [event, id] of [
      ["reprise.schedule", randomUUID()],
      ["push", "reprise:schedule:github.com/acme/fuzz:train:0:2026-01-01T00:00:00.000Z"],
      ["push", "x".repeat(10_000)],
    ] as const) {
      const body = JSON.stringify(base("push"));
      const res = await server.request("/api/github/webhooks", {
        method: "POST",
        headers: {
          "x-github-event": event,
          "x-github-delivery": id,
          "x-hub-signature-256": sign(SECRET, body),
        },
        body,
      });
      expect(res.status).toBe(400);
      expect(await db.store.deliveries.get(id)).toBeNull();
    }
  }, 30_000);
});
