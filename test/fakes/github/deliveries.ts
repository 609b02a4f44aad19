/**
 * Signed webhook deliveries built from the real payloads of `@octokit/webhooks-examples`,
 * rewritten to point at the fake's repositories, and sent over HTTP like GitHub sends them.
 */
import { createHmac, randomUUID } from "node:crypto";
import { createRequire } from "node:module";

type Json = Record<string, unknown>;
interface Examples {
  name: string;
  examples: Json[];
}

const examples = createRequire(import.meta.url)(
  "@octokit/webhooks-examples/api.github.com/index.json",
) as Examples[];

/** A deep copy of the first example of `event` whose fields satisfy `pick`. */
export function example(event: string, pick: (p: Json) => boolean = () => true): Json {
  const found = examples.find((e) => e.name === event)?.examples.find(pick);
  if (!found) throw new Error(`no ${event} example in @octokit/webhooks-examples`);
  return structuredClone(found);
}

export function sign(secret: string, body: string): string {
  return `sha256=${createHmac("sha256", secret).update(body).digest("hex")}`;
}

export interface Sent {
  status: number;
  body: unknown;
  ms: number;
}

export async function deliver(
  url: string,
  event: string,
  payload: unknown,
  opts: { secret: string | null; id?: string; raw?: string },
): Promise<Sent & { id: string }> {
  const id = opts.id ?? randomUUID();
  const body = opts.raw ?? JSON.stringify(payload);
  const headers: Record<string, string> = {
    "content-type": "application/json",
    "x-github-event": event,
    "x-github-delivery": id,
    "user-agent": "GitHub-Hookshot/fake",
  };
  if (opts.secret !== null) headers["x-hub-signature-256"] = sign(opts.secret, body);
  const started = performance.now();
  const res = await fetch(`${url}/api/github/webhooks`, { method: "POST", headers, body });
  const text = await res.text();
  const ms = performance.now() - started;
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {}
  return { id, status: res.status, body: parsed, ms };
}

function repository(fullName: string, defaultBranch: string): (r: Json) => Json {
  const [owner = "", name = ""] = fullName.split("/");
  return (r) => ({
    ...r,
    name,
    full_name: fullName,
    owner: { ...(r.owner as Json), login: owner, name: owner },
    default_branch: defaultBranch,
    master_branch: defaultBranch,
  });
}

export function pushPayload(o: {
  repo: string;
  branch: string;
  before: string;
  after: string;
  commits?: string[];
  defaultBranch?: string;
  installationId?: number;
  sender?: string;
  message?: string;
}): Json {
  const p = example("push", (e) => e.ref === "refs/heads/master" && e.deleted === false);
  p.ref = `refs/heads/${o.branch}`;
  p.before = o.before;
  p.after = o.after;
  p.created = /^0+$/.test(o.before);
  p.deleted = false;
  p.commits = (o.commits ?? [o.after]).map((id) => ({ id, message: o.message ?? "commit" }));
  p.head_commit = { id: o.after, message: o.message ?? "commit" };
  p.repository = repository(o.repo, o.defaultBranch ?? "main")(p.repository as Json);
  p.installation = { id: o.installationId ?? 1, node_id: "x" };
  p.sender = { ...(p.sender as Json), login: o.sender ?? "ada", type: "User" };
  p.pusher = { name: o.sender ?? "ada", email: "ada@example.com" };
  return p;
}

export function commentPayload(o: {
  repo: string;
  pr: number;
  body: string;
  user: string;
  userType?: "User" | "Bot";
  commentId?: number;
  installationId?: number;
}): Json {
  const p = example("issue_comment", (e) => e.action === "created");
  const user = { login: o.user, type: o.userType ?? "User", id: 1 };
  p.issue = { ...(p.issue as Json), number: o.pr, pull_request: { url: "x" } };
  p.comment = {
    ...(p.comment as Json),
    created_at: new Date().toISOString(),
    id: o.commentId ?? Math.floor(Math.random() * 1e9),
    body: o.body,
    user,
  };
  p.sender = user;
  p.repository = repository(o.repo, "main")(p.repository as Json);
  p.installation = { id: o.installationId ?? 1, node_id: "x" };
  return p;
}

export function checkRunPayload(o: {
  repo: string;
  action: "rerequested" | "requested_action";
  checkRunName: string;
  externalId: string;
  user: string;
}): Json {
  const p = example("check_run", (e) => e.action === o.action);
  p.check_run = {
    ...(p.check_run as Json),
    name: o.checkRunName,
    external_id: o.externalId,
    pull_requests: [],
  };
  if (o.action === "requested_action") p.requested_action = { identifier: "relaunch" };
  p.sender = { login: o.user, type: "User" };
  p.repository = repository(o.repo, "main")(p.repository as Json);
  p.installation = { id: 1, node_id: "x" };
  return p;
}

/**
 * One push delivery (a fresh id) per repository `${prefix}${r}` and commit of `shas`, commit by
 * commit across the repositories: a burst of pushes to a feature branch (installation r + 1).
 */
export function pushBurst(
  prefix: string,
  repos: number,
  shas: readonly string[],
): Array<{ id: string; payload: Json }> {
  const out: Array<{ id: string; payload: Json }> = [];
  shas.forEach((sha, n) => {
    for (let r = 0; r < repos; r++)
      out.push({
        id: randomUUID(),
        payload: pushPayload({
          repo: `${prefix}${r}`,
          branch: "feature",
          before: n === 0 ? "0".repeat(40) : (shas[n - 1] as string),
          after: sha,
          installationId: r + 1,
        }),
      });
  });
  return out;
}
