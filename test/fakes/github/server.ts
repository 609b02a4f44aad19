/**
 * A fake GitHub REST API over real HTTP (node:http), under /api/v3 as GitHub Enterprise Server
 * serves it (Probot builds GHE_PROTOCOL://GHE_HOST/api/v3). Trees, blobs and tarballs come from
 * real local git repositories; pull requests, permissions and installations are declared by the
 * test; check runs, comments and reactions are recorded. Every request is logged in `calls`.
 */
import { execFile } from "node:child_process";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { promisify } from "node:util";

const run = promisify(execFile);

export interface FakeRepo {
  fullName: string;
  /** The local git repository whose objects it serves. */
  dir: string;
  installationId: number;
  defaultBranch: string;
  /** login -> admin | write | read | none (default read). */
  permissions: Record<string, string>;
  /** number -> the pull request's branches (the head SHA is read from git when asked). */
  pulls: Record<number, { head: string; base: string; fork?: string }>;
  /** Answer recursive tree reads of this repository as truncated (over GitHub's limits). */
  truncated?: boolean;
}

export interface Call {
  method: string;
  path: string;
  body: unknown;
}

export interface RecordedCheckRun {
  id: number;
  repo: string;
  name: string;
  head_sha: string;
  status?: string;
  conclusion?: string;
  external_id?: string;
  details_url?: string;
  output?: { title?: string; summary?: string; text?: string; annotations?: unknown[] };
  actions?: Array<{ identifier: string }>;
  /** Every annotation sent, over the create and its updates. */
  annotations: unknown[];
  updates: number;
}

export class FakeGitHub {
  readonly calls: Call[] = [];
  readonly checkRuns: RecordedCheckRun[] = [];
  readonly comments: Array<{ id: number; repo: string; issue: number; body: string }> = [];
  readonly reactions: Array<{ repo: string; commentId: number; content: string }> = [];
  tokensIssued = 0;
  /** Answer recursive tree reads as truncated (a tree over GitHub's limits). */
  truncateTrees = false;
  /** Tarballs to serve instead of `git archive`'s, by commit SHA (a gzip bomb, a corrupted one). */
  readonly tarballs = new Map<string, () => AsyncIterable<Uint8Array>>();
  /** Bytes of the last tarball that reached the socket before it ended or was closed. */
  tarballBytesSent = 0;
  /** Requests to fail: method, path pattern, status, how many more times. */
  readonly #failures: Array<{ method: string; path: RegExp; status: number; times: number }> = [];
  readonly #repos = new Map<string, FakeRepo>();
  /** Git objects never change: tree listings and blobs by repository directory and SHA. */
  readonly #objects = new Map<string, Promise<unknown>>();
  #nextId = 1000;

  private constructor(
    private readonly server: Server,
    readonly host: string,
  ) {}

  static async start(): Promise<FakeGitHub> {
    let fake: FakeGitHub | null = null;
    const server = createServer((req, res) => {
      fake?.handle(req, res).catch((e: Error) => send(res, 500, { message: e.message }));
    });
    server.keepAliveTimeout = 60_000;
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const { port } = server.address() as AddressInfo;
    fake = new FakeGitHub(server, `127.0.0.1:${port}`);
    return fake;
  }

  get baseUrl(): string {
    return `http://${this.host}/api/v3`;
  }

  addRepo(r: Partial<FakeRepo> & Pick<FakeRepo, "fullName" | "dir">): FakeRepo {
    const repo: FakeRepo = {
      installationId: 1,
      defaultBranch: "main",
      permissions: {},
      pulls: {},
      ...r,
    };
    this.#repos.set(repo.fullName.toLowerCase(), repo);
    return repo;
  }

  /** Requests whose path (after /api/v3) matches. */
  count(method: string, path: RegExp): number {
    return this.calls.filter((c) => c.method === method && path.test(c.path)).length;
  }

  /** The next `times` requests matching `method` and `path` get `status` (GitHub having a bad moment). */
  failNext(method: string, path: RegExp, status: number, times = 1): void {
    this.#failures.push({ method, path, status, times });
  }

  resetCalls(): void {
    this.calls.length = 0;
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((r) => this.server.close(() => r()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const raw = Buffer.concat(chunks).toString("utf8");
    const body = raw ? (JSON.parse(raw) as Record<string, unknown>) : {};
    const url = new URL(req.url ?? "/", "http://fake");
    const method = req.method ?? "GET";
    if (!url.pathname.startsWith("/api/v3/")) return send(res, 404, { message: "Not Found" });
    const path = url.pathname.slice("/api/v3".length);
    this.calls.push({ method, path, body });
    const failure = this.#failures.find(
      (f) => f.times > 0 && f.method === method && f.path.test(path),
    );
    if (failure) {
      failure.times--;
      return send(res, failure.status, { message: "Validation Failed (injected by the test)" });
    }
    const tokens = /^\/app\/installations\/(\d+)\/access_tokens$/.exec(path);
    if (method === "POST" && tokens) {
      this.tokensIssued++;
      return send(res, 201, {
        token: `ghs_fake_${tokens[1]}_${this.tokensIssued}`,
        expires_at: new Date(Date.now() + 3_600_000).toISOString(),
        permissions: { checks: "write", contents: "read", pull_requests: "write", issues: "write" },
        repository_selection: "all",
      });
    }
    const g = /^\/repos\/([^/]+)\/([^/]+)(\/.*)?$/.exec(path);
    const repo = g ? this.#repos.get(`${g[1]}/${g[2]}`.toLowerCase()) : undefined;
    if (!g || !repo) return send(res, 404, { message: "Not Found" });
    const rest = g[3] ?? "";
    for (const [verb, pattern, route] of this.routes()) {
      const match = verb === method ? pattern.exec(rest) : null;
      if (match) return route(res, repo, match.slice(1).map(decodeURIComponent), body, url);
    }
    return send(res, 404, { message: `Not Found: ${method} ${path}` });
  }

  private routes(): Array<
    [
      string,
      RegExp,
      (
        res: ServerResponse,
        repo: FakeRepo,
        args: string[],
        body: Record<string, unknown>,
        url: URL,
      ) => Promise<void> | void,
    ]
  > {
    return [
      ["GET", /^\/installation$/, (res, repo) => send(res, 200, { id: repo.installationId })],
      [
        "GET",
        /^\/git\/trees\/(.+)$/,
        async (res, repo, [sha], _b, url) => {
          const recursive = url.searchParams.has("recursive");
          send(
            res,
            200,
            await this.memo(`tree ${repo.dir} ${sha} ${recursive} ${repo.truncated}`, () =>
              this.tree(repo, sha as string, recursive),
            ),
          );
        },
      ],
      [
        "GET",
        /^\/git\/blobs\/([0-9a-f]+)$/,
        async (res, repo, [sha]) => {
          const blob = await this.memo(`blob ${repo.dir} ${sha}`, async () => {
            const { stdout } = await run(
              "git",
              ["-C", repo.dir, "cat-file", "blob", sha as string],
              {
                encoding: "buffer",
                maxBuffer: 64 * 1024 * 1024,
              },
            );
            return {
              sha,
              size: stdout.length,
              content: stdout.toString("base64"),
              encoding: "base64",
            };
          });
          send(res, 200, blob);
        },
      ],
      [
        "GET",
        /^\/tarball\/(.+)$/,
        async (res, repo, [ref]) => {
          const sha = await this.resolve(repo, ref as string);
          const custom = this.tarballs.get(sha);
          if (custom) {
            // Streamed with backpressure: a client that stops reading stops the sending.
            this.tarballBytesSent = 0;
            res.writeHead(200, { "content-type": "application/x-gzip" });
            for await (const chunk of custom()) {
              if (res.destroyed) return;
              this.tarballBytesSent += chunk.length;
              if (!res.write(chunk))
                await new Promise((r) => {
                  res.once("drain", r);
                  res.once("close", r);
                });
            }
            res.end();
            return;
          }
          const prefix = `${repo.fullName.replace("/", "-")}-${sha.slice(0, 7)}/`;
          const { stdout } = await run(
            "git",
            ["-C", repo.dir, "archive", "--format=tar.gz", `--prefix=${prefix}`, sha],
            { encoding: "buffer", maxBuffer: 256 * 1024 * 1024 },
          );
          res.writeHead(200, {
            "content-type": "application/x-gzip",
            "content-length": stdout.length,
          });
          res.end(stdout);
        },
      ],
      [
        "POST",
        /^\/check-runs$/,
        (res, repo, _a, body) => {
          const output = body.output as RecordedCheckRun["output"] | undefined;
          const checkRun = {
            ...(body as Partial<RecordedCheckRun>),
            id: this.#nextId++,
            repo: repo.fullName,
            annotations: [...(output?.annotations ?? [])],
            updates: 0,
          } as RecordedCheckRun;
          this.checkRuns.push(checkRun);
          send(res, 201, { id: checkRun.id, name: checkRun.name, head_sha: checkRun.head_sha });
        },
      ],
      [
        // checks.listForRef: the check runs on a commit, newest first, by name when asked.
        "GET",
        /^\/commits\/([^/]+)\/check-runs$/,
        async (res, repo, [ref], _body, url) => {
          const sha = await this.resolve(repo, ref as string);
          const name = url.searchParams.get("check_name");
          const runs = this.checkRuns
            .filter((c) => c.repo === repo.fullName && c.head_sha === sha)
            .filter((c) => name === null || c.name === name)
            .reverse()
            .map((c) => ({
              ...c,
              output: { ...c.output, annotations_count: c.annotations.length },
            }));
          send(res, 200, { total_count: runs.length, check_runs: runs });
        },
      ],
      [
        "PATCH",
        /^\/check-runs\/(\d+)$/,
        (res, _repo, [id], body) => {
          const checkRun = this.checkRuns.find((c) => c.id === Number(id));
          if (!checkRun) return send(res, 404, { message: "Not Found" });
          const output = body.output as RecordedCheckRun["output"] | undefined;
          Object.assign(checkRun, body, {
            annotations: [...checkRun.annotations, ...(output?.annotations ?? [])],
          });
          checkRun.updates++;
          send(res, 200, { id: checkRun.id, status: checkRun.status });
        },
      ],
      [
        "GET",
        /^\/pulls\/(\d+)$/,
        async (res, repo, [n]) => {
          const pr = repo.pulls[Number(n)];
          if (!pr) return send(res, 404, { message: "Not Found" });
          const head = await this.resolve(repo, pr.head);
          const base = await this.resolve(repo, pr.base);
          send(res, 200, {
            number: Number(n),
            head: { sha: head, ref: pr.head, repo: { full_name: pr.fork ?? repo.fullName } },
            base: { sha: base, ref: pr.base, repo: { full_name: repo.fullName } },
          });
        },
      ],
      [
        "GET",
        /^\/collaborators\/([^/]+)\/permission$/,
        (res, repo, [login]) =>
          send(res, 200, {
            permission: repo.permissions[login as string] ?? "read",
            user: { login },
          }),
      ],
      [
        "POST",
        /^\/issues\/(\d+)\/comments$/,
        (res, repo, [n], body) => {
          const c = {
            id: this.#nextId++,
            repo: repo.fullName,
            issue: Number(n),
            body: String(body.body),
          };
          this.comments.push(c);
          send(res, 201, c);
        },
      ],
      [
        "POST",
        /^\/issues\/comments\/(\d+)\/reactions$/,
        (res, repo, [id], body) => {
          this.reactions.push({
            repo: repo.fullName,
            commentId: Number(id),
            content: String(body.content),
          });
          send(res, 201, { id: this.#nextId++, content: body.content });
        },
      ],
    ];
  }

  private memo<T>(key: string, make: () => Promise<T>): Promise<T> {
    let p = this.#objects.get(key) as Promise<T> | undefined;
    if (!p) {
      p = make();
      this.#objects.set(key, p);
      p.catch(() => this.#objects.delete(key));
    }
    return p;
  }

  private async resolve(repo: FakeRepo, ref: string): Promise<string> {
    const { stdout } = await run("git", ["-C", repo.dir, "rev-parse", `${ref}^{commit}`]);
    return stdout.trim();
  }

  private async tree(repo: FakeRepo, sha: string, recursive: boolean) {
    const treeSha = (
      await run("git", ["-C", repo.dir, "rev-parse", `${sha}^{tree}`])
    ).stdout.trim();
    const args = [
      "-C",
      repo.dir,
      "ls-tree",
      "-l",
      "-z",
      ...(recursive ? ["-r", "-t"] : []),
      treeSha,
    ];
    const { stdout } = await run("git", args, { maxBuffer: 256 * 1024 * 1024 });
    let tree = stdout
      .split("\0")
      .filter((l) => l !== "")
      .map((l) => {
        const tab = l.indexOf("\t");
        const [mode = "", type = "", objSha = "", size = "-"] = l.slice(0, tab).split(/\s+/);
        return {
          path: l.slice(tab + 1),
          mode: mode === "40000" ? "040000" : mode,
          type,
          sha: objSha,
          ...(size === "-" ? {} : { size: Number(size) }),
        };
      });
    // GitHub truncates the listing of a big repository's root; a subtree's listing fits.
    const isCommit =
      (await run("git", ["-C", repo.dir, "cat-file", "-t", sha])).stdout.trim() === "commit";
    const truncated = recursive && isCommit && (this.truncateTrees || repo.truncated === true);
    if (truncated) tree = tree.filter((e) => !e.path.includes("/")).slice(0, 1);
    return { sha: treeSha, tree, truncated };
  }
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json; charset=utf-8" });
  res.end(text);
}
