/**
 * Artifacts through the HTTP API (runner/server/artifacts-api.ts), on PGlite and on Postgres when
 * DATABASE_URL is set: uploads streamed and verified, directories from manifests, downloads and
 * their headers, bytes that went missing, and who may see what. A repository reads only the
 * artifacts it holds rows for: another repository's digest is a 404 like a digest nobody has.
 */
import { lstatSync, mkdtempSync, readFileSync, readlinkSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { serve } from "@hono/node-server";
import { eq } from "drizzle-orm";
import type { Hono } from "hono";
import * as tar from "tar";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ApiClient, ApiClientError } from "../../client/client.js";
import {
  buildManifest,
  type ManifestEntry,
  manifestBytes,
  manifestDigest,
} from "../../core/artifacts/manifest.js";
import { artifacts } from "../../db/schema.js";
import type { LocalBlobStore } from "../../runner/artifacts/local-store.js";
import { createApp } from "../../runner/server/app.js";
import { digestOf } from "../../runner/server/artifact-content.js";
import { Authenticator } from "../../runner/server/auth.js";
import { Metrics } from "../../runner/server/metrics.js";
import { type ArtifactStory, runArtifactStory } from "../fakes/artifact-story.js";
import { gitRegistration, sha, pipeline as spec } from "../fixtures/specs.js";
import { type Driver, openTestStore, POSTGRES_AVAILABLE, type TestStore } from "../setup/stores.js";

const ML = "github.com/acme/ml";
const OTHER = "github.com/acme/other";
const enc = encodeURIComponent;
// biome-ignore lint/suspicious/noExplicitAny: the tests read arbitrary JSON documents
type Body = Record<string, any>;

describe("artifacts API on PGlite", () => artifactsContract("pglite"));
// Skipped (and reported as skipped) only when DATABASE_URL is unset; .ci/run always sets it.
describe.skipIf(!POSTGRES_AVAILABLE)("artifacts API on Postgres", () =>
  artifactsContract("postgres"),
);

function artifactsContract(driver: Driver): void {
  let store: TestStore;
  let blobs: LocalBlobStore;
  let work: string;
  let app: Hono;
  let story: ArtifactStory;
  const tok = { ml: "", mlRead: "", other: "", story: "" };
  const logged: string[] = [];

  const req = (
    method: string,
    path: string,
    opts: {
      token?: string | null;
      body?: Uint8Array | string | ReadableStream<Uint8Array>;
      headers?: Record<string, string>;
    } = {},
  ) => {
    const headers: Record<string, string> = { ...opts.headers };
    const token = opts.token === undefined ? tok.ml : opts.token;
    if (token) headers.authorization = `Bearer ${token}`;
    const init: RequestInit & { duplex?: "half" } = { method, headers };
    if (opts.body !== undefined) {
      init.body = opts.body as RequestInit["body"];
      if (opts.body instanceof ReadableStream) init.duplex = "half";
    }
    return app.request(path, init);
  };
  const json = async (r: Response | Promise<Response>) => {
    const res = await r;
    const text = await res.text();
    return {
      status: res.status,
      headers: res.headers,
      body: (text ? JSON.parse(text) : null) as Body,
    };
  };
  const art = (repo: string, digest: string, rest = "") =>
    `/api/v1/repos/${enc(repo)}/artifacts/${enc(digest)}${rest}`;
  const upload = (repo: string, bytes: Uint8Array | string, token?: string | null) => {
    const digest = digestOf(Buffer.from(bytes));
    return json(req("PUT", art(repo, digest), { token: token ?? tokenFor(repo), body: bytes }));
  };
  const tokenFor = (repo: string) => (repo === OTHER ? tok.other : tok.ml);

  beforeAll(async () => {
    store = await openTestStore(driver);
    work = mkdtempSync(join(tmpdir(), "reprise-api-artifacts-"));
    for (const [k, repos, readOnly] of [
      ["ml", [ML], false],
      ["mlRead", [ML], true],
      ["other", [OTHER], false],
    ] as const)
      tok[k] = (await store.store.tokens.create({ repos: [...repos], readOnly })).token;
    story = await runArtifactStory(store);
    blobs = story.blobs;
    tok.story = (await store.store.tokens.create({ repos: [story.repo], readOnly: true })).token;
    app = createApp({
      store: store.store,
      executor: { logTail: async () => null },
      // The story's blobs: its run and these uploads share one store, as on a server.
      artifacts: story.blobs,
      auth: new Authenticator({ store: store.store, open: false, oidc: null }),
      metrics: new Metrics(),
      publicUrl: null,
      log: (_level, message, extra) => logged.push(`${message} ${JSON.stringify(extra)}`),
    });
  }, 60_000);

  afterAll(async () => {
    await story?.close();
    await store?.dispose();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  describe(`files [${driver}]`, () => {
    it("uploads a file (201), then HEAD, metadata and content give it back; again is 200", async () => {
      const bytes = Buffer.from("hello, artifacts\n");
      const digest = digestOf(bytes);
      const put = await json(req("PUT", art(ML, digest), { body: bytes }));
      expect([put.status, logged]).toEqual([201, []]);
      expect(put.body).toMatchObject({
        artifact: digest,
        type: "file",
        size: bytes.length,
        producer: null,
        uploadedBy: expect.stringMatching(/^token:/),
        present: true,
        created: true,
      });
      expect(put.body.files).toBeUndefined();
      expect((await req("HEAD", art(ML, digest))).status).toBe(200);
      const meta = await json(req("GET", art(ML, digest)));
      expect(meta).toMatchObject({ status: 200, body: { artifact: digest, present: true } });
      expect(Date.parse(meta.body.createdAt)).not.toBeNaN();
      const content = await req("GET", art(ML, digest, "/content"));
      expect(content.status).toBe(200);
      expect(Buffer.from(await content.arrayBuffer())).toEqual(bytes);
      expect(content.headers.get("content-length")).toBe(String(bytes.length));
      const again = await json(req("PUT", art(ML, digest), { body: bytes }));
      expect(again).toMatchObject({ status: 200, body: { artifact: digest, created: false } });
    });

    it("sends every download as a sandboxed attachment, and only images inline", async () => {
      const bytes = Buffer.from("<html><script>alert(1)</script></html>");
      const { body } = await upload(ML, bytes);
      for (const query of ["", "?inline=1"]) {
        const res = await req("GET", art(ML, body.artifact, `/content${query}`));
        expect(res.status).toBe(200);
        expect(res.headers.get("content-security-policy")).toBe("default-src 'none'; sandbox");
        expect(res.headers.get("x-content-type-options")).toBe("nosniff");
        expect(res.headers.get("content-type")).toBe("application/octet-stream");
        expect(res.headers.get("content-disposition")).toMatch(/^attachment; filename="[^"]+"$/);
        await res.arrayBuffer();
      }
      const named = await req("GET", art(ML, body.artifact, `/content?name=${enc('../x"y.html')}`));
      expect(named.headers.get("content-disposition")).toBe('attachment; filename="_x_y.html"');
      await named.arrayBuffer();

      const svg = await upload(
        ML,
        `<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>`,
      );
      const png = await upload(ML, Buffer.from("89504e470d0a1a0a0000000d49484452", "hex"));
      const jpeg = await upload(ML, Buffer.from("ffd8ffe000104a464946", "hex"));
      for (const [u, type] of [
        [svg, "image/svg+xml"],
        [png, "image/png"],
        [jpeg, "image/jpeg"],
      ] as const) {
        const res = await req("GET", art(ML, u.body.artifact, "/content?inline=1"));
        expect([res.status, res.headers.get("content-type")]).toEqual([200, type]);
        expect(res.headers.get("content-disposition")).toMatch(/^inline;/);
        expect(res.headers.get("content-security-policy")).toBe("default-src 'none'; sandbox");
        expect(res.headers.get("x-content-type-options")).toBe("nosniff");
        await res.arrayBuffer();
        // Without ?inline=1 an image downloads like anything else.
        const plain = await req("GET", art(ML, u.body.artifact, "/content"));
        expect(plain.headers.get("content-disposition")).toMatch(/^attachment;/);
        await plain.arrayBuffer();
      }
    });

    it("refuses bytes that do not hash to the digest with 400 naming both, and stores nothing", async () => {
      const claimed = digestOf(Buffer.from("what I said"));
      const sent = Buffer.from("what I sent");
      const r = await json(req("PUT", art(ML, claimed), { body: sent }));
      expect(r).toMatchObject({ status: 400, body: { error: { code: "digest_mismatch" } } });
      expect(r.body.error.message).toContain(claimed);
      expect(r.body.error.message).toContain(digestOf(sent));
      expect(await blobs.has(claimed)).toBe(false);
      expect(await blobs.has(digestOf(sent))).toBe(false);
      expect(await store.store.artifacts.get(ML, claimed)).toBeNull();
      expect((await req("HEAD", art(ML, claimed))).status).toBe(404);
    });

    it("streams a chunked upload far over the API's 1 MiB body limit into the store", async () => {
      const chunk = Buffer.alloc(1024 * 1024, 7);
      const chunks = 5;
      const whole = Buffer.concat(Array.from({ length: chunks }, () => chunk));
      let sent = 0;
      const body = new ReadableStream<Uint8Array>({
        pull(c) {
          if (sent++ < chunks) c.enqueue(new Uint8Array(chunk));
          else c.close();
        },
      });
      const r = await json(req("PUT", art(ML, digestOf(whole)), { body }));
      expect(r).toMatchObject({ status: 201, body: { size: whole.length } });
      const content = await req("GET", art(ML, digestOf(whole), "/content"));
      expect(digestOf(Buffer.from(await content.arrayBuffer()))).toBe(digestOf(whole));
    });

    it("answers a declared Content-Length over the cap with 413 before reading, and a bad one with 400", async () => {
      const digest = digestOf(Buffer.from("x"));
      const big = await json(
        req("PUT", art(ML, digest), {
          body: "x",
          headers: { "content-length": String(65 * 1024 ** 3) },
        }),
      );
      expect(big).toMatchObject({ status: 413, body: { error: { code: "payload_too_large" } } });
      expect(big.headers.get("connection")).toBe("close");
      const bad = await json(
        req("PUT", art(ML, digest), { body: "x", headers: { "content-length": "lots" } }),
      );
      expect(bad.status).toBe(400);
    });

    it("says the bytes are gone (404) when the store lost them, and a new upload restores them", async () => {
      const bytes = Buffer.from("soon gone\n");
      const { body } = await upload(ML, bytes);
      await blobs.delete(body.artifact);
      expect((await req("HEAD", art(ML, body.artifact))).status).toBe(404);
      expect((await json(req("GET", art(ML, body.artifact)))).body.present).toBe(false);
      const content = await json(req("GET", art(ML, body.artifact, "/content")));
      expect(content).toMatchObject({ status: 404, body: { error: { code: "artifact_gone" } } });
      expect(content.body.error.message).toMatch(/gone.*relaunch/);
      const again = await upload(ML, bytes);
      expect(again).toMatchObject({ status: 200, body: { present: true, created: false } });
      expect((await req("HEAD", art(ML, body.artifact))).status).toBe(200);
    });
  });

  describe(`directories [${driver}]`, () => {
    /** Uploads `files` to `repo` and returns the manifest of them, with `links`. */
    async function tree(
      repo: string,
      files: Record<string, { text: string; exec?: boolean }>,
      links: Record<string, string> = {},
    ) {
      const entries: ManifestEntry[] = [];
      for (const [path, f] of Object.entries(files)) {
        const u = await upload(repo, f.text);
        expect(u.status).toBeLessThan(300);
        entries.push({
          path,
          kind: f.exec ? "executable" : "file",
          digest: u.body.artifact,
          size: Buffer.byteLength(f.text),
        });
      }
      for (const [path, target] of Object.entries(links))
        entries.push({ path, kind: "symlink", target });
      const checked = buildManifest(entries);
      if (!checked.ok) throw new Error(checked.reason);
      return { bytes: manifestBytes(checked.manifest), digest: manifestDigest(checked.manifest) };
    }
    const putDir = (repo: string, m: { bytes: Buffer; digest: string }, token?: string) =>
      json(
        req("PUT", art(repo, m.digest, "?type=directory"), {
          token: token ?? tokenFor(repo),
          body: m.bytes,
          headers: { "content-type": "application/json" },
        }),
      );

    it("records a directory from its manifest, and downloads it as a tar that extracts to the same tree", async () => {
      const long = `${"deep/".repeat(30)}name-über.txt`;
      const m = await tree(
        ML,
        {
          "a.txt": { text: "alpha\n" },
          "sub/b.csv": { text: "x,y\n1,2\n" },
          "bin/run.sh": { text: "#!/bin/sh\necho hi\n", exec: true },
          [long]: { text: "far down\n" },
          "empty.txt": { text: "" },
        },
        { "sub/link": "../a.txt" },
      );
      const put = await putDir(ML, m);
      expect([put.status, logged]).toEqual([201, []]);
      expect(put.body).toMatchObject({
        artifact: m.digest,
        type: "directory",
        files: 5,
        size: 6 + 8 + 18 + 9,
      });
      expect((await req("HEAD", art(ML, m.digest))).status).toBe(200);
      expect((await putDir(ML, m)).status).toBe(200);

      const res = await req("GET", art(ML, m.digest, "/content"));
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toBe("application/x-tar");
      expect(res.headers.get("content-disposition")).toMatch(/^attachment; filename="[^"]+\.tar"$/);
      expect(res.headers.get("content-security-policy")).toBe("default-src 'none'; sandbox");
      const out = mkdtempSync(join(work, "x-"));
      await pipeline(
        Readable.fromWeb(res.body as import("node:stream/web").ReadableStream),
        tar.x({ cwd: out }),
      );
      expect(readFileSync(join(out, "a.txt"), "utf8")).toBe("alpha\n");
      expect(readFileSync(join(out, "sub/b.csv"), "utf8")).toBe("x,y\n1,2\n");
      expect(readFileSync(join(out, long), "utf8")).toBe("far down\n");
      expect(readFileSync(join(out, "empty.txt"), "utf8")).toBe("");
      expect(lstatSync(join(out, "bin/run.sh")).mode & 0o111).not.toBe(0);
      expect(lstatSync(join(out, "a.txt")).mode & 0o111).toBe(0);
      expect(readlinkSync(join(out, "sub/link"))).toBe("../a.txt");
      // The same directory gives the same bytes: times and owners are fixed.
      const again = Buffer.from(
        await (await req("GET", art(ML, m.digest, "/content"))).arrayBuffer(),
      );
      const first = Buffer.from(
        await (await req("GET", art(ML, m.digest, "/content"))).arrayBuffer(),
      );
      expect(again.equals(first)).toBe(true);
    });

    it("refuses a manifest naming a file this repository does not hold (422), even one another repository holds", async () => {
      const theirs = await upload(OTHER, "only the other repository has this\n");
      expect(theirs.status).toBe(201);
      const checked = buildManifest([
        { path: "mine.txt", kind: "file", digest: theirs.body.artifact, size: theirs.body.size },
      ]);
      if (!checked.ok) throw new Error(checked.reason);
      const m = {
        bytes: manifestBytes(checked.manifest),
        digest: manifestDigest(checked.manifest),
      };
      const r = await putDir(ML, m);
      expect(r).toMatchObject({ status: 422, body: { error: { code: "missing_artifact" } } });
      expect(r.body.error.message).toContain('"mine.txt"');
      expect(r.body.error.message).toContain(theirs.body.artifact);
      expect(await store.store.artifacts.get(ML, m.digest)).toBeNull();
      expect(await blobs.has(m.digest)).toBe(false);
      // The repository that holds the file may record it.
      expect((await putDir(OTHER, m)).status).toBe(201);
    });

    it("refuses a manifest whose bytes do not match the digest (400), are not canonical or not a manifest (422)", async () => {
      const m = await tree(ML, { "f.txt": { text: "f\n" } });
      const wrong = await putDir(ML, { bytes: m.bytes, digest: digestOf(Buffer.from("nope")) });
      expect(wrong).toMatchObject({ status: 400, body: { error: { code: "digest_mismatch" } } });
      const pretty = Buffer.from(JSON.stringify(JSON.parse(m.bytes.toString()), null, 2));
      const notCanonical = await putDir(ML, { bytes: pretty, digest: digestOf(pretty) });
      expect(notCanonical).toMatchObject({
        status: 422,
        body: { error: { code: "invalid_manifest" } },
      });
      expect(notCanonical.body.error.message).toContain(m.digest);
      for (const bad of [
        "{}",
        "[1,2]",
        '{"entries":[{"path":"../up","kind":"file","digest":"x","size":1}]}',
        '{"entries":[{"path":"l","kind":"symlink","target":"/etc/passwd"}]}',
        "not json",
      ]) {
        const bytes = Buffer.from(bad);
        const r = await putDir(ML, { bytes, digest: digestOf(bytes) });
        expect([bad, r.status, r.body.error.code]).toEqual([bad, 422, "invalid_manifest"]);
      }
      // A file entry whose size is not the artifact's.
      const [entry] = JSON.parse(m.bytes.toString()).entries;
      const lying = buildManifest([{ ...entry, size: entry.size + 1 }]);
      if (!lying.ok) throw new Error(lying.reason);
      const lie = await putDir(ML, {
        bytes: manifestBytes(lying.manifest),
        digest: manifestDigest(lying.manifest),
      });
      expect(lie).toMatchObject({ status: 422, body: { error: { code: "invalid_manifest" } } });
    });

    it("refuses a manifest over its cap with 413 while reading it", async () => {
      const mib = Buffer.alloc(1024 * 1024, 0x20);
      let sent = 0;
      const body = new ReadableStream<Uint8Array>({
        pull(c) {
          if (sent++ < 65) c.enqueue(new Uint8Array(mib));
          else c.close();
        },
      });
      const r = await json(
        req("PUT", art(ML, digestOf(Buffer.from("any")), "?type=directory"), { body }),
      );
      expect(r).toMatchObject({ status: 413, body: { error: { code: "payload_too_large" } } });
    });

    it("answers 404 for a directory whose file blob is gone, naming the file", async () => {
      const m = await tree(ML, {
        "keep.txt": { text: "keep\n" },
        "lose.txt": { text: "lose me\n" },
      });
      expect((await putDir(ML, m)).status).toBe(201);
      await blobs.delete(digestOf(Buffer.from("lose me\n")));
      const r = await json(req("GET", art(ML, m.digest, "/content")));
      expect(r).toMatchObject({ status: 404, body: { error: { code: "artifact_gone" } } });
      expect(r.body.error.message).toContain('"lose.txt"');
      // Nor may a new manifest list it until it is uploaded again.
      const m2 = await tree(ML, { "keep.txt": { text: "keep\n" } });
      const entries = [
        ...JSON.parse(m2.bytes.toString()).entries,
        { path: "z.txt", kind: "file", digest: digestOf(Buffer.from("lose me\n")), size: 8 },
      ];
      const both = buildManifest(entries);
      if (!both.ok) throw new Error(both.reason);
      const refused = await putDir(ML, {
        bytes: manifestBytes(both.manifest),
        digest: manifestDigest(both.manifest),
      });
      expect(refused).toMatchObject({ status: 422, body: { error: { code: "missing_artifact" } } });
      expect(refused.body.error.message).toContain('"z.txt"');
    });
  });

  describe(`an execution's artifacts [${driver}]`, () => {
    it("lists what each node read and wrote, with the producer, and serves the produced bytes", async () => {
      const path = `/api/v1/repos/${enc(story.repo)}/executions/${story.execution.id}/artifacts`;
      const r = await json(req("GET", path, { token: tok.story }));
      expect([r.status, logged]).toEqual([200, []]);
      expect(r.body).toMatchObject({ execution: story.execution.id, repo: story.repo });
      const rows = r.body.artifacts as Body[];
      const key = (a: Body) => `${a.node} ${a.direction} ${a.name}`;
      expect(rows.map(key).sort()).toEqual(
        [
          "make input seed",
          "make output blob",
          "make output logo",
          "make output page",
          "make output plot",
          "make output table",
          "make output tree",
          "use input table",
        ].sort(),
      );
      const seed = rows.find((a) => a.name === "seed");
      expect(seed).toMatchObject({ producer: null, uploadedBy: "token:story" });
      const table = rows.find((a) => key(a) === "use input table");
      expect(table?.producer).toMatchObject({ execution: story.execution.id, node: "make" });
      expect(table?.ref).toMatchObject({ type: "file", artifact: story.outputs.table });
      const tree = rows.find((a) => a.name === "tree");
      expect(tree?.ref).toMatchObject({ type: "directory", files: 2 });
      const content = await req(
        "GET",
        `/api/v1/repos/${enc(story.repo)}/artifacts/${enc(story.outputs.table as string)}/content`,
        { token: tok.story },
      );
      expect((await content.text()).split("\n")[0]).toBe("id,label");
    });
  });

  describe(`authorization [${driver}]`, () => {
    /** Every artifact route of `repo` for a digest it holds, with a body where it takes one. */
    async function routes(repo: string) {
      const bytes = Buffer.from(`held by ${repo} ${sha()}\n`);
      const up = await upload(repo, bytes);
      expect(up.status).toBe(201);
      const d = up.body.artifact as string;
      const exec = await store.store.executions.create({
        repo,
        sha: await registered(repo),
        workflow: "train",
        inputs: { dataset: "d" },
        trigger: { kind: "cli", actor: "t" },
      });
      return {
        digest: d,
        bytes,
        execution: exec.id,
        list: [
          ["HEAD", art(repo, d)],
          ["GET", art(repo, d)],
          ["GET", art(repo, d, "/content")],
          ["GET", `/api/v1/repos/${enc(repo)}/executions/${exec.id}/artifacts`],
          ["PUT", art(repo, d), bytes],
          ["PUT", art(repo, d, "?type=directory"), bytes],
        ] as Array<[string, string, Buffer?]>,
      };
    }
    const shas = new Map<string, string>();
    async function registered(repo: string): Promise<string> {
      const known = shas.get(repo);
      if (known) return known;
      const reg = gitRegistration(spec());
      const s = reg.sha;
      const r = await json(
        req("POST", `/api/v1/repos/${enc(repo)}/versions`, {
          token: tokenFor(repo),
          headers: { "content-type": "application/json" },
          body: JSON.stringify(reg),
        }),
      );
      expect(r.status).toBe(201);
      shas.set(repo, s);
      return s;
    }
    const rowsOf = async (repo: string) =>
      (await store.store.db.select().from(artifacts).where(eq(artifacts.repo, repo)))
        .map((r) => r.digest)
        .sort();

    it("refuses every artifact route without a credential (401)", async () => {
      const { list } = await routes(ML);
      for (const [method, path, body] of list) {
        const r = await req(method, path, { token: null, ...(body ? { body } : {}) });
        expect([method, path, r.status]).toEqual([method, path, 401]);
        await r.arrayBuffer();
      }
    });

    it("forbids another repository's token every artifact route of this one (403), changing nothing", async () => {
      const { list } = await routes(ML);
      const before = await rowsOf(ML);
      for (const [method, path, body] of list) {
        const r = await req(method, path, { token: tok.other, ...(body ? { body } : {}) });
        expect([method, path, r.status]).toEqual([method, path, 403]);
        await r.arrayBuffer();
      }
      expect(await rowsOf(ML)).toEqual(before);
    });

    it("answers 404 to another repository asking its own routes for a digest only this one holds, as for one nobody has", async () => {
      const { digest, execution } = await routes(ML);
      const nobody = digestOf(Buffer.from(`nobody ${sha()}`));
      for (const d of [digest, nobody]) {
        for (const [method, path] of [
          ["HEAD", art(OTHER, d)],
          ["GET", art(OTHER, d)],
          ["GET", art(OTHER, d, "/content")],
          ["GET", art(OTHER, d, "/content?inline=1")],
        ] as const) {
          const r = await json(req(method, path, { token: tok.other }));
          expect([method, path, r.status]).toEqual([method, path, 404]);
          if (method === "GET")
            expect(r.body.error.message).toBe(`${d} is not an artifact of ${OTHER}`);
        }
      }
      // Nor does another repository's execution show under this one.
      const listed = await json(
        req("GET", `/api/v1/repos/${enc(OTHER)}/executions/${execution}/artifacts`, {
          token: tok.other,
        }),
      );
      expect(listed.status).toBe(404);
    });

    it("makes another repository send and verify the bytes of a digest the store has already", async () => {
      const { digest, bytes } = await routes(ML);
      // Without the bytes it learns nothing: the same refusal as for bytes nobody stored.
      const empty = await json(req("PUT", art(OTHER, digest), { token: tok.other, body: "" }));
      expect(empty).toMatchObject({ status: 400, body: { error: { code: "digest_mismatch" } } });
      expect(await store.store.artifacts.get(OTHER, digest)).toBeNull();
      // With them it gets its own row: 201, as for any first upload.
      const sent = await json(req("PUT", art(OTHER, digest), { token: tok.other, body: bytes }));
      expect(sent).toMatchObject({ status: 201, body: { created: true } });
      expect((await req("HEAD", art(OTHER, digest), { token: tok.other })).status).toBe(200);
    });

    it("lets a read-only token read every artifact route and forbids it uploads (403), storing nothing", async () => {
      const { list } = await routes(ML);
      const fresh = Buffer.from(`read-only ${sha()}`);
      const before = await rowsOf(ML);
      for (const [method, path, body] of list) {
        const r = await req(method, path, { token: tok.mlRead, ...(body ? { body } : {}) });
        expect([method, path, r.status]).toEqual([method, path, method === "PUT" ? 403 : 200]);
        await r.arrayBuffer();
      }
      const put = await json(
        req("PUT", art(ML, digestOf(fresh)), { token: tok.mlRead, body: fresh }),
      );
      expect(put).toMatchObject({ status: 403, body: { error: { code: "forbidden" } } });
      expect(await blobs.has(digestOf(fresh))).toBe(false);
      expect(await rowsOf(ML)).toEqual(before);
    });
  });

  describe(`the document and the client [${driver}]`, () => {
    it("names every artifact route in the OpenAPI document", async () => {
      const { body } = await json(req("GET", "/api/v1/openapi.json", { token: null }));
      expect(body.paths["/repos/{repo}/artifacts/{digest}"]).toHaveProperty("put");
      expect(body.paths["/repos/{repo}/artifacts/{digest}"]).toHaveProperty("head");
      expect(body.paths["/repos/{repo}/artifacts/{digest}"]).toHaveProperty("get");
      expect(body.paths["/repos/{repo}/artifacts/{digest}/content"]).toHaveProperty("get");
      expect(body.paths["/repos/{repo}/executions/{id}/artifacts"]).toHaveProperty("get");
    });

    it("uploads, checks, describes and downloads through ApiClient over a real socket", async () => {
      const server = serve({ fetch: app.fetch, hostname: "127.0.0.1", port: 0 });
      await new Promise<void>((resolve) => server.once("listening", () => resolve()));
      const { port } = server.address() as { port: number };
      const client = new ApiClient({
        server: `http://127.0.0.1:${port}`,
        token: tok.ml,
        attempts: 1,
      });
      try {
        const bytes = Buffer.alloc(3 * 1024 * 1024 + 17, 3);
        const digest = digestOf(bytes);
        expect(await client.headArtifact(ML, digest)).toBe(false);
        expect(await client.artifactMetadata(ML, digest)).toBeNull();
        const stream = Readable.toWeb(
          Readable.from([bytes.subarray(0, 1000), bytes.subarray(1000)]),
        );
        const up = await client.uploadFile(ML, digest, stream as ReadableStream<Uint8Array>);
        expect(up).toMatchObject({ artifact: digest, size: bytes.length, created: true });
        expect((await client.uploadFile(ML, digest, bytes)).created).toBe(false);
        expect(await client.headArtifact(ML, digest)).toBe(true);
        expect(await client.artifactMetadata(ML, digest)).toMatchObject({ present: true });
        const got = await client.artifactContent(ML, digest);
        const chunks: Uint8Array[] = [];
        for await (const c of got as unknown as AsyncIterable<Uint8Array>) chunks.push(c);
        expect(digestOf(Buffer.concat(chunks))).toBe(digest);

        const checked = buildManifest([
          { path: "big.bin", kind: "file", digest, size: bytes.length },
        ]);
        if (!checked.ok) throw new Error(checked.reason);
        const dir = await client.putManifest(
          ML,
          manifestDigest(checked.manifest),
          manifestBytes(checked.manifest),
        );
        expect(dir).toMatchObject({ type: "directory", files: 1, size: bytes.length });
        const wrong = await client
          .uploadFile(ML, digestOf(Buffer.from("x")), bytes)
          .catch((e) => e);
        expect(wrong).toBeInstanceOf(ApiClientError);
        expect((wrong as ApiClientError).code).toBe("digest_mismatch");

        const storyClient = new ApiClient({
          server: `http://127.0.0.1:${port}`,
          token: tok.story,
          attempts: 1,
        });
        const listed = await storyClient.executionArtifacts(story.repo, story.execution.id);
        expect(listed.artifacts.length).toBe(8);
      } finally {
        await new Promise<void>((resolve) => server.close(() => resolve()));
      }
    });
  });
}
