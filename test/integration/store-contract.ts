/**
 * The Store's contract, run on every driver (docs/design.md section 12): PGlite always, real Postgres
 * when DATABASE_URL is set. Each suite gets its own database copied from a migrated template.
 */
import { sql } from "drizzle-orm";
import { readMigrationFiles } from "drizzle-orm/migrator";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { digest } from "../../core/hash/digest.js";
import { parseSpec } from "../../core/spec/parse-spec.js";
import { connect, type Database } from "../../db/connect.js";
import { LeaseLostError, MigrationError, NotFoundError, pgCode } from "../../db/errors.js";
import { assertMigrated, migrate, migrationStatus, migrationsDir } from "../../db/migrate.js";
import { rows } from "../../db/query.js";
import { Store } from "../../db/store.js";
import type { Lease, Registrant } from "../../db/types.js";
import { built, pipeline, sha } from "../fixtures/specs.js";
import { createDatabase, databaseUrl, urlFor } from "../setup/postgres.js";
import { type Driver, openTestStore, type TestStore } from "../setup/stores.js";

const REPO = "github.com/acme/ml";
/** Registrants: a client posting through the API, and the GitHub App. */
const CLIENT: Registrant = { source: "client", actor: "token:t1" };
const APP: Registrant = { source: "app", actor: "app" };

/** A database with nothing in it, on `driver`. */
async function emptyDatabase(
  driver: Driver,
): Promise<{ database: Database; close(): Promise<void> }> {
  if (driver === "pglite") {
    const database = await connect({ memory: true });
    return { database, close: () => database.close() };
  }
  const url = databaseUrl() as string;
  const created = await createDatabase(url, null);
  const database = await connect({ databaseUrl: urlFor(url, created.name), poolSize: 2 });
  return {
    database,
    close: async () => {
      await database.close();
      await created.drop();
    },
  };
}

export function storeContract(driver: Driver): void {
  let t: TestStore;
  let store: Store;
  beforeAll(async () => {
    t = await openTestStore(driver);
    store = t.store;
  });
  afterAll(async () => t?.dispose());

  async function registered(spec = pipeline(), at = sha()) {
    const { version } = await store.versions.register({
      repo: REPO,
      sha: at,
      parents: [],
      ref: "main",
      message: "m",
      result: built(spec),
      by: CLIENT,
    });
    return version;
  }

  async function queued(spec = pipeline()) {
    const v = await registered(spec);
    return store.executions.create({
      repo: REPO,
      sha: v.sha,
      workflow: "train",
      inputs: { dataset: "d1" },
      trigger: { kind: "cli", actor: "me" },
    });
  }

  async function leased(owner = "runner-1") {
    const e = await queued();
    const [lease] = await store.executions.claim(owner, { leaseMs: 30_000, ids: [e.id] });
    if (!lease) throw new Error("could not claim a fresh execution");
    return { e, lease };
  }

  describe(`migrations [${driver}]`, () => {
    it("are all applied, none pending or unknown", async () => {
      const status = await migrationStatus(store.db);
      expect(status.pending).toEqual([]);
      expect(status.unknown).toEqual([]);
      expect(status.applied).toEqual([
        "0000_init",
        "0001_immutable",
        "0002_artifacts",
        "0003_version_refs",
      ]);
      await expect(assertMigrated(store.db)).resolves.toBeUndefined();
    });

    it("0003 keeps the branches of versions stored before it, as claims of an unknown client", async () => {
      const fresh = await emptyDatabase(driver);
      try {
        const db = fresh.database.db;
        // The database as 0002 left it, recorded as migrate() records what it applied.
        const files = readMigrationFiles({ migrationsFolder: migrationsDir() });
        await db.execute(sql`create schema drizzle`);
        await db.execute(
          sql`create table drizzle.__drizzle_migrations (id serial primary key, hash text not null, created_at bigint)`,
        );
        for (const f of files.slice(0, 3)) {
          for (const statement of f.sql) if (statement.trim()) await db.execute(sql.raw(statement));
          await db.execute(
            sql`insert into drizzle.__drizzle_migrations (hash, created_at) values (${f.hash}, ${f.folderMillis})`,
          );
        }
        const [older, newer, none] = [sha(), sha(), sha()];
        await db.execute(sql`insert into repositories (key) values (${REPO})`);
        await db.execute(
          sql`insert into versions (repo, sha, ref, status, registered_at) values
              (${REPO}, ${older}, 'main', 'registered', now() - interval '2 minutes'),
              (${REPO}, ${newer}, 'main', 'registered', now() - interval '1 minute'),
              (${REPO}, ${none}, null, 'registered', now())`,
        );
        expect(await migrate(db)).toEqual(["0003_version_refs"]);
        const upgraded = new Store(db);
        expect(await upgraded.versions.get(REPO, older)).toMatchObject({
          registeredBy: "unknown",
          ref: "main",
          refs: [{ ref: "main", source: "client", recordedBy: "unknown" }],
        });
        expect((await upgraded.versions.get(REPO, none))?.refs).toEqual([]);
        expect((await upgraded.versions.latestOnBranch(REPO, "main"))?.sha).toBe(newer);
        // The App's next push of main is what main follows from then on.
        await upgraded.versions.recordRef(REPO, older, "main", APP);
        expect((await upgraded.versions.latestOnBranch(REPO, "main"))?.sha).toBe(older);
        // New registrations must say who they are: the column's default was only for the old rows.
        const error = await db
          .execute(
            sql`insert into versions (repo, sha, status) values (${REPO}, ${sha()}, 'registered')`,
          )
          .then(
            () => null,
            (e: unknown) => e,
          );
        expect(pgCode(error)).toBe("23502");
      } finally {
        await fresh.close();
      }
    });

    it("refuse a database that has a migration this code does not know, naming it", async () => {
      await store.db.execute(
        sql`insert into drizzle.__drizzle_migrations (hash, created_at) values ('f00dfeedbeef0000', 1)`,
      );
      try {
        await expect(assertMigrated(store.db)).rejects.toThrow(/does not know: f00dfeedbeef/);
        await expect(assertMigrated(store.db)).rejects.toBeInstanceOf(MigrationError);
      } finally {
        await store.db.execute(
          sql`delete from drizzle.__drizzle_migrations where hash = 'f00dfeedbeef0000'`,
        );
      }
    });
  });

  describe(`immutability [${driver}]`, () => {
    const statements: Array<[string, (s: string) => ReturnType<typeof sql>]> = [
      ["update versions", (s) => sql`update versions set message = 'x' where sha = ${s}`],
      ["delete versions", (s) => sql`delete from versions where sha = ${s}`],
      ["update version_tasks", (s) => sql`update version_tasks set name = 'x' where sha = ${s}`],
      ["delete version_workflows", (s) => sql`delete from version_workflows where sha = ${s}`],
      ["update tasks", () => sql`update tasks set definition = '{}'::jsonb`],
      ["delete workflows", () => sql`delete from workflows`],
      ["update activations", (s) => sql`update activations set reason = 'x' where sha = ${s}`],
      ["delete activations", (s) => sql`delete from activations where sha = ${s}`],
      ["truncate versions", () => sql`truncate versions cascade`],
      ["truncate activations", () => sql`truncate activations`],
      ["update version_refs", (s) => sql`update version_refs set ref = 'x' where sha = ${s}`],
      ["delete version_refs", (s) => sql`delete from version_refs where sha = ${s}`],
      ["truncate version_refs", () => sql`truncate version_refs`],
    ];

    it.each(statements)("the database refuses: %s", async (_, statement) => {
      const v = await registered();
      await store.production.activate({ repo: REPO, sha: v.sha, actor: "me", reason: "test" });
      const error = await store.db.execute(statement(v.sha)).then(
        () => null,
        (e: unknown) => e,
      );
      expect(pgCode(error)).toBe("RP001");
      expect((await store.versions.get(REPO, v.sha))?.message).toBe("m");
      expect((await store.production.current(REPO))?.reason).toBe("test");
      expect((await store.versions.get(REPO, v.sha))?.refs.map((r) => r.ref)).toEqual(["main"]);
    });
  });

  describe(`registration [${driver}]`, () => {
    it("stores a version with its tasks and workflows, content-addressed", async () => {
      const v = await registered();
      expect(v).toMatchObject({ repo: REPO, status: "registered", ref: "main", errors: [] });
      const result = built(pipeline());
      if (!result.ok) throw new Error("fixture invalid");
      expect(v.specDigest).toBe(result.version.specDigest);
      expect(v.tasks).toEqual({
        prep: result.version.tasks.prep?.digest,
        fit: result.version.tasks.fit?.digest,
      });
      const defs = await rows<{ digest: string; definition: unknown }>(
        store.db,
        sql`select digest, definition from tasks`,
      );
      for (const d of defs) expect(digest(d.definition)).toBe(d.digest);
    });

    it("rebuilds exactly the parsed workflow and tasks from the stored rows", async () => {
      const v = await registered();
      const wf = await store.versions.resolveWorkflow(REPO, v.sha, "train");
      const parsed = parseSpec(pipeline());
      if (!parsed.ok) throw new Error("fixture invalid");
      expect(wf.spec).toEqual(parsed.spec.workflows.train);
      expect(wf.tasks.prep?.spec).toEqual(parsed.spec.tasks.prep);
      expect(wf.tasks.fit?.spec).toEqual(parsed.spec.tasks.fit);
      expect(wf.digest).toBe(v.workflows.train);
    });

    it("stores a task once however many versions share it", async () => {
      const before = await rows<{ n: number }>(store.db, sql`select count(*)::int as n from tasks`);
      await registered(pipeline("fit.py --v=1"));
      await registered(pipeline("fit.py --v=1"));
      const after = await rows<{ n: number }>(store.db, sql`select count(*)::int as n from tasks`);
      expect((after[0]?.n ?? 0) - (before[0]?.n ?? 0)).toBeLessThanOrEqual(2);
      await registered(pipeline("fit.py --v=2"));
      const third = await rows<{ n: number }>(store.db, sql`select count(*)::int as n from tasks`);
      expect((third[0]?.n ?? 0) - (after[0]?.n ?? 0)).toBe(1);
    });

    it("is a no-op for a SHA registered twice", async () => {
      const at = sha();
      const first = await store.versions.register({
        repo: REPO,
        sha: at,
        parents: [],
        ref: "main",
        message: "m",
        result: built(pipeline()),
        by: CLIENT,
      });
      const second = await store.versions.register({
        repo: REPO,
        sha: at,
        parents: ["x"],
        ref: "other",
        message: "n",
        result: built(pipeline("other.py")),
        by: { source: "client", actor: "token:t2" },
      });
      expect(first.created).toBe(true);
      expect(second.created).toBe(false);
      // The content and who registered it stay the first's; the second's branch is recorded.
      expect({ ...second.version, refs: [] }).toEqual({ ...first.version, refs: [] });
      expect(second.version).toMatchObject({ registeredBy: "token:t1", ref: "main" });
      expect(second.version.refs.map((r) => [r.ref, r.source, r.recordedBy])).toEqual([
        ["main", "client", "token:t1"],
        ["other", "client", "token:t2"],
      ]);
    });

    it("records an invalid spec with its errors and stores nothing executable", async () => {
      const at = sha();
      const { version } = await store.versions.register({
        repo: REPO,
        sha: at,
        parents: [],
        ref: null,
        message: null,
        result: built("version: 1\ntasks: 3\n"),
        by: CLIENT,
      });
      expect(version.status).toBe("invalid");
      expect(version.errors[0]).toMatchObject({ code: "E_TYPE", line: 2 });
      expect(version.tasks).toEqual({});
      await expect(store.versions.resolveWorkflow(REPO, at, "train")).rejects.toThrow(
        /invalid reprise.yaml/,
      );
    });

    it("writes all of a registration or none of it", async () => {
      const at = sha();
      const result = built(pipeline("fit.py --atomic"));
      if (!result.ok) throw new Error("fixture invalid");
      // A workflow without its digest makes the registration fail after the version row and
      // the task rows were written in the transaction.
      const broken = { ...result, version: { ...result.version, workflows: {} } };
      await expect(
        store.versions.register({
          repo: REPO,
          sha: at,
          parents: [],
          ref: "main",
          message: null,
          result: broken,
          by: APP,
        }),
      ).rejects.toThrow();
      expect(await store.versions.get(REPO, at)).toBeNull();
      const fit = result.version.tasks.fit?.digest as string;
      expect(await rows(store.db, sql`select 1 from tasks where digest = ${fit}`)).toEqual([]);
      expect(await rows(store.db, sql`select 1 from version_refs where sha = ${at}`)).toEqual([]);
    });

    it("finds an earlier version with the same spec digest (a revert)", async () => {
      const spec = pipeline("fit.py --revert");
      const first = await registered(spec);
      await registered(pipeline("fit.py --changed"));
      const revert = await registered(spec);
      expect(
        await store.versions.findEquivalent(REPO, revert.specDigest as string, revert.sha),
      ).toBe(first.sha);
    });

    it("says what is wrong when a workflow or version is missing", async () => {
      const v = await registered();
      await expect(store.versions.resolveWorkflow(REPO, v.sha, "nope")).rejects.toThrow(
        /has no workflow "nope" \(it has: train\)/,
      );
      await expect(
        store.versions.resolveWorkflow(REPO, "f".repeat(40), "train"),
      ).rejects.toBeInstanceOf(NotFoundError);
    });
  });

  describe(`branches and who registered [${driver}]`, () => {
    let n = 0;
    const repoOf = () => `github.com/acme/refs-${driver}-${++n}`;
    const reg = async (repo: string, ref: string | null, by: Registrant, spec = pipeline()) =>
      store.versions.register({
        repo,
        sha: sha(),
        parents: [],
        ref,
        message: null,
        result: built(spec),
        by,
      });
    const latest = async (repo: string, branch: string) =>
      (await store.versions.latestOnBranch(repo, branch))?.sha ?? null;

    it("records who registered a version: the App, the CLI, or the API caller", async () => {
      const repo = repoOf();
      const app = await reg(repo, "main", APP);
      const cli = await reg(repo, "main", { source: "git", actor: "cli" });
      const client = await reg(repo, null, CLIENT);
      expect([app, cli, client].map((r) => r.version.registeredBy)).toEqual([
        "app",
        "cli",
        "token:t1",
      ]);
      expect(client.version.refs).toEqual([]);
      expect(app.version.refs).toMatchObject([{ ref: "main", source: "app", recordedBy: "app" }]);
    });

    it("follows the App's branch, never a client's claim on it, whichever came first", async () => {
      const repo = repoOf();
      // Before the App has seen main, a client's claim is all there is.
      const claimedFirst = await reg(repo, "main", CLIENT);
      expect(await latest(repo, "main")).toBe(claimedFirst.version.sha);
      const pushed = await reg(repo, "main", APP, pipeline("fit.py --pushed"));
      expect(await latest(repo, "main")).toBe(pushed.version.sha);
      // Claims made after the App recorded main do not move it either.
      const claimedLater = await reg(repo, "main", CLIENT, pipeline("fit.py --claimed"));
      expect(await latest(repo, "main")).toBe(pushed.version.sha);
      expect(claimedLater.version.ref).toBe("main");
      // A branch the App has not seen still follows the clients'.
      const feature = await reg(repo, "feature", CLIENT, pipeline("fit.py --feature"));
      expect(await latest(repo, "feature")).toBe(feature.version.sha);
    });

    it("records the App's branch for a version a client registered first, content untouched", async () => {
      const repo = repoOf();
      const { version: before } = await reg(repo, "release", CLIENT);
      const again = await store.versions.register({
        repo,
        sha: before.sha,
        parents: ["p"],
        ref: "hotfix",
        message: "the App's",
        // What the App read at that SHA: git object ids make it the same content.
        result: built(pipeline()),
        by: APP,
      });
      expect(again.created).toBe(false);
      expect(again.version).toMatchObject({
        registeredBy: "token:t1",
        ref: "hotfix",
        specDigest: before.specDigest,
        tasks: before.tasks,
        parents: [],
        message: null,
      });
      expect(again.version.refs.map((r) => [r.ref, r.source])).toEqual([
        ["release", "client"],
        ["hotfix", "app"],
      ]);
      expect(await latest(repo, "hotfix")).toBe(before.sha);
      // recordRef does the same without the content, as the App's push of a known SHA does.
      expect(await store.versions.recordRef(repo, before.sha, "main", APP)).toBe(true);
      expect(await latest(repo, "main")).toBe(before.sha);
      await expect(store.versions.recordRef(repo, "e".repeat(40), "main", APP)).rejects.toThrow(
        NotFoundError,
      );
    });

    it("adds nothing for a redelivered push, and records a branch moved back to a commit", async () => {
      const repo = repoOf();
      const a = (await reg(repo, "main", APP)).version.sha;
      expect(await store.versions.recordRef(repo, a, "main", APP)).toBe(false);
      const b = (await reg(repo, "main", APP, pipeline("fit.py --b"))).version.sha;
      expect(await latest(repo, "main")).toBe(b);
      // A force push of main back to a.
      expect(await store.versions.recordRef(repo, a, "main", APP)).toBe(true);
      expect(await latest(repo, "main")).toBe(a);
      expect((await store.versions.get(repo, a))?.refs.map((r) => r.ref)).toEqual(["main", "main"]);
    });

    it("skips an invalid head for the newest valid version on the branch", async () => {
      const repo = repoOf();
      const valid = (await reg(repo, "main", APP)).version.sha;
      await reg(repo, "main", APP, "version: 1\ntasks: 3\n");
      expect(await latest(repo, "main")).toBe(valid);
    });

    it("keeps the production branch the App reports, per repository", async () => {
      const repo = repoOf();
      expect(await store.production.branch(repo)).toBeNull();
      await reg(repo, "trunk", APP);
      expect(await store.production.branch(repo)).toBeNull();
      await store.production.setBranch(repo, "trunk");
      await store.production.setBranch(repo, "trunk");
      expect(await store.production.branch(repo)).toBe("trunk");
      await store.production.setBranch(repo, "release");
      expect(await store.production.branch(repo)).toBe("release");
      expect(await store.production.branch(repoOf())).toBeNull();
    });
  });

  describe(`executions and leases [${driver}]`, () => {
    it("creates an execution QUEUED with every node PENDING, pinned to the version", async () => {
      const e = await queued();
      expect(e).toMatchObject({
        state: "QUEUED",
        workflow: "train",
        mode: "normal",
        parentId: null,
        leaseOwner: null,
      });
      const nodes = await store.executions.nodes(e.id);
      expect(nodes.map((n) => [n.nodeId, n.taskName, n.state])).toEqual([
        ["a", "prep", "PENDING"],
        ["b", "fit", "PENDING"],
      ]);
      expect(e.id).toMatch(/^[a-z0-9]{19}$/);
    });

    it("gives a lease to one runner at a time, and takes it over after expiry with a new token", async () => {
      const e = await queued();
      const [mine] = await store.executions.claim("r1", { leaseMs: 200, ids: [e.id] });
      expect(mine).toBeDefined();
      expect(await store.executions.claim("r2", { leaseMs: 200, ids: [e.id] })).toEqual([]);
      await sleep(300);
      const [theirs] = await store.executions.claim("r2", { leaseMs: 30_000, ids: [e.id] });
      expect(theirs?.token).toBe((mine?.token ?? 0) + 1);
      // The first runner lost it: renewing and writing both fail, and nothing is written.
      expect(await store.executions.renew(mine as Lease, 30_000)).toBeNull();
      await expect(
        store.executions.withLease(mine as Lease, (tx) => tx.setState("FAILED")),
      ).rejects.toBeInstanceOf(LeaseLostError);
      expect((await store.executions.get(e.id))?.state).toBe("QUEUED");
      await store.executions.withLease(theirs as Lease, (tx) => tx.setState("RUNNING"));
      expect((await store.executions.get(e.id))?.state).toBe("RUNNING");
    });

    it("refuses writes under an expired lease even before anyone takes it over", async () => {
      const e = await queued();
      const [lease] = await store.executions.claim("slow", { leaseMs: 100, ids: [e.id] });
      await sleep(200);
      await expect(
        store.executions.withLease(lease as Lease, (tx) => tx.setState("RUNNING")),
      ).rejects.toBeInstanceOf(LeaseLostError);
      expect((await store.executions.get(e.id))?.state).toBe("QUEUED");
    });

    it("renews a held lease and frees a released one", async () => {
      const { e, lease } = await leased();
      const renewed = await store.executions.renew(lease, 60_000);
      expect(renewed?.expiresAt.getTime()).toBeGreaterThan(lease.expiresAt.getTime());
      expect(await store.executions.release(lease)).toBe(true);
      const [next] = await store.executions.claim("r9", { leaseMs: 1_000, ids: [e.id] });
      expect(next?.owner).toBe("r9");
    });

    it("does not claim finished executions", async () => {
      const { e, lease } = await leased();
      await store.executions.withLease(lease, (tx) => tx.setState("SUCCEEDED"));
      await store.executions.release(lease);
      expect(await store.executions.claim("r2", { leaseMs: 1_000, ids: [e.id] })).toEqual([]);
      expect((await store.executions.get(e.id))?.finishedAt).toBeInstanceOf(Date);
    });

    it("notifies listeners when an execution is created or asked to stop", async () => {
      const heard: string[] = [];
      const unlisten = await t.database.listen("reprise_executions", (id) => heard.push(id));
      try {
        const e = await queued();
        await store.executions.requestAbort(e.id);
        for (let i = 0; i < 100 && heard.length < 2; i++) await sleep(20);
        expect(heard).toEqual([e.id, e.id]);
      } finally {
        await unlisten();
      }
    });

    it("lists executions newest first, filtered", async () => {
      const a = await queued();
      const b = await queued();
      const listed = await store.executions.list({ repo: REPO, workflow: "train", limit: 2 });
      expect(listed.map((x) => x.id)).toEqual([b.id, a.id]);
      expect(await store.executions.list({ repo: "github.com/other/repo" })).toEqual([]);
    });
  });

  describe(`node completion and the cache [${driver}]`, () => {
    const cacheWrite = (key: string, overwrite = false) => ({
      key,
      repo: REPO,
      taskName: "prep",
      taskDigest: "sha256:t",
      identity: { t: 1 },
      overwrite,
    });

    it("commits node state, outputs, cache entry and reservation release together", async () => {
      const { e, lease } = await leased();
      const key = `sha256:${sha()}`;
      const owner = `${e.id}/a/1`;
      expect((await store.cache.reserve(key, REPO, owner, 10_000)).acquired).toBe(true);
      const { cached } = await store.executions.withLease(lease, async (tx) => {
        await tx.startAttempt("a", 1, "h-a-1");
        return tx.completeNode("a", {
          attempt: 1,
          outputs: { rows: 3 },
          cache: cacheWrite(key),
          reservationOwner: owner,
        });
      });
      expect(cached).toBe(true);
      const [a] = await store.executions.nodes(e.id);
      expect(a).toMatchObject({
        state: "SUCCEEDED",
        outputs: { rows: 3 },
        cacheStatus: "POPULATED",
        attempts: 1,
      });
      expect(await store.cache.lookup(key)).toMatchObject({
        outputs: { rows: 3 },
        source: { execution: e.id, node: "a" },
      });
      expect(await store.cache.reservation(key)).toBeNull();
      expect((await store.executions.attempts(e.id, "a"))[0]).toMatchObject({
        state: "SUCCEEDED",
        handle: "h-a-1",
      });
    });

    it("does the same in one fenced statement, and nothing once the lease is lost", async () => {
      const { e, lease } = await leased();
      const key = `sha256:${sha()}`;
      const owner = `${e.id}/a/1`;
      await store.cache.reserve(key, REPO, owner, 10_000);
      await store.executions.startAttempt(lease, "a", 1, "h-a-1");
      expect((await store.executions.nodes(e.id))[0]).toMatchObject({
        state: "RUNNING",
        attempts: 1,
      });
      const done = {
        attempt: 1,
        outputs: { rows: 4 },
        cache: cacheWrite(key),
        reservationOwner: owner,
      };
      const stale = { ...lease, token: lease.token - 1 };
      await expect(store.executions.completeNode(stale, "a", done)).rejects.toBeInstanceOf(
        LeaseLostError,
      );
      expect((await store.executions.nodes(e.id))[0]?.state).toBe("RUNNING");
      expect(await store.cache.lookup(key)).toBeNull();
      expect((await store.executions.completeNode(lease, "a", done)).cached).toBe(true);
      expect((await store.executions.nodes(e.id))[0]).toMatchObject({
        state: "SUCCEEDED",
        outputs: { rows: 4 },
        cacheStatus: "POPULATED",
      });
      expect(await store.cache.reservation(key)).toBeNull();
      expect((await store.executions.attempts(e.id, "a"))[0]?.state).toBe("SUCCEEDED");
      await expect(store.executions.startAttempt(stale, "b", 1, "h-b-1")).rejects.toBeInstanceOf(
        LeaseLostError,
      );
      expect(await store.executions.attempts(e.id, "b")).toEqual([]);
    });

    it("writes a pass's successes and launches in one fenced statement: a's entry, b RUNNING with its inputs", async () => {
      const { e, lease } = await leased();
      const key = `sha256:${sha()}`;
      const bKey = `sha256:${sha()}`;
      await store.executions.startAttempt(lease, "a", 1, "h-a-1");
      const written = await store.executions.writeNodes(lease, {
        completions: [{ nodeId: "a", attempt: 1, outputs: { rows: 6 }, cache: cacheWrite(key) }],
        starts: [
          {
            nodeId: "b",
            attempt: 1,
            handle: "h-b-1",
            node: { inputs: { rows: 6 }, cacheKey: bKey, cacheStatus: "MISS" },
          },
        ],
      });
      expect(written.cached).toBe(1);
      const [a, b] = await store.executions.nodes(e.id);
      expect(a).toMatchObject({
        state: "SUCCEEDED",
        outputs: { rows: 6 },
        cacheStatus: "POPULATED",
      });
      expect(b).toMatchObject({
        state: "RUNNING",
        attempts: 1,
        inputs: { rows: 6 },
        cacheKey: bKey,
        cacheStatus: "MISS",
      });
      expect((await store.executions.attempts(e.id)).map((x) => [x.nodeId, x.state])).toEqual([
        ["a", "SUCCEEDED"],
        ["b", "RUNNING"],
      ]);
      // Another execution's success with the same key: first writer wins, its node says MISS.
      const other = await leased();
      await store.executions.startAttempt(other.lease, "a", 1, "h-a-1");
      const again = await store.executions.writeNodes(other.lease, {
        completions: [{ nodeId: "a", attempt: 1, outputs: { rows: 9 }, cache: cacheWrite(key) }],
      });
      expect(again.cached).toBe(0);
      expect((await store.executions.nodes(other.e.id))[0]?.cacheStatus).toBe("MISS");
      expect((await store.cache.lookup(key))?.outputs).toEqual({ rows: 6 });
    });

    it("writes none of it when the transaction fails", async () => {
      const { e, lease } = await leased();
      const key = `sha256:${sha()}`;
      const owner = `${e.id}/a/1`;
      await store.cache.reserve(key, REPO, owner, 10_000);
      await expect(
        store.executions.withLease(lease, async (tx) => {
          await tx.startAttempt("a", 1, "h");
          await tx.completeNode("a", {
            attempt: 1,
            outputs: { rows: 3 },
            cache: cacheWrite(key),
            reservationOwner: owner,
          });
          throw new Error("crash before commit");
        }),
      ).rejects.toThrow("crash before commit");
      expect((await store.executions.nodes(e.id))[0]?.state).toBe("PENDING");
      expect(await store.cache.lookup(key)).toBeNull();
      expect((await store.cache.reservation(key))?.owner).toBe(owner);
    });

    it("keeps the first writer's entry; --overwrite-cache replaces it", async () => {
      const key = `sha256:${sha()}`;
      const one = await leased();
      const two = await leased();
      const three = await leased();
      const complete = (l: Lease, rowsOut: number, overwrite = false) =>
        store.executions.withLease(l, async (tx) => {
          await tx.startAttempt("a", 1, "h");
          return tx.completeNode("a", {
            attempt: 1,
            outputs: { rows: rowsOut },
            cache: cacheWrite(key, overwrite),
          });
        });
      expect((await complete(one.lease, 1)).cached).toBe(true);
      expect((await complete(two.lease, 2)).cached).toBe(false);
      expect((await store.cache.lookup(key))?.outputs).toEqual({ rows: 1 });
      expect((await store.executions.nodes(two.e.id))[0]?.cacheStatus).toBe("MISS");
      await complete(three.lease, 3, true);
      expect(await store.cache.lookup(key)).toMatchObject({
        outputs: { rows: 3 },
        source: { execution: three.e.id },
      });
      expect((await store.executions.nodes(three.e.id))[0]?.cacheStatus).toBe("SKIPPED");
    });

    it("records a hit with its lineage and counts it on the entry", async () => {
      const key = `sha256:${sha()}`;
      const source = await leased();
      await store.executions.withLease(source.lease, async (tx) => {
        await tx.startAttempt("a", 1, "h");
        await tx.completeNode("a", { attempt: 1, outputs: { rows: 5 }, cache: cacheWrite(key) });
      });
      const hit = await leased();
      const entry = await store.cache.lookup(key);
      await store.executions.withLease(hit.lease, (tx) =>
        tx.resolveNodeFrom("a", {
          status: "HIT",
          cacheKey: key,
          inputs: { dataset: "d1", seed: 7 },
          outputs: entry?.outputs ?? {},
          source: entry?.source ?? { execution: "", node: "" },
        }),
      );
      expect((await store.executions.nodes(hit.e.id))[0]).toMatchObject({
        state: "SUCCEEDED",
        cacheStatus: "HIT",
        outputs: { rows: 5 },
        source: { execution: source.e.id, node: "a" },
        attempts: 0,
      });
      expect(await store.cache.lookup(key)).toMatchObject({ hitCount: 1 });
    });

    it("ignores entries older than the ttl", async () => {
      const key = `sha256:${sha()}`;
      const { lease } = await leased();
      await store.executions.withLease(lease, async (tx) => {
        await tx.startAttempt("a", 1, "h");
        await tx.completeNode("a", { attempt: 1, outputs: { rows: 1 }, cache: cacheWrite(key) });
      });
      await store.db.execute(
        sql`update cache_entries set created_at = now() - interval '2 days' where key = ${key}`,
      );
      expect(await store.cache.lookup(key, 86_400)).toBeNull();
      expect(await store.cache.lookup(key, 3 * 86_400)).not.toBeNull();
      expect(await store.cache.lookup(key)).not.toBeNull();
    });

    it("evicts by key, task and source execution, within one repository", async () => {
      const keys = [`sha256:${sha()}`, `sha256:${sha()}`];
      const { e, lease } = await leased();
      await store.executions.withLease(lease, async (tx) => {
        await tx.startAttempt("a", 1, "h");
        await tx.completeNode("a", {
          attempt: 1,
          outputs: { rows: 1 },
          cache: cacheWrite(keys[0] as string),
        });
        await tx.startAttempt("b", 1, "h");
        await tx.completeNode("b", {
          attempt: 1,
          outputs: { model: "m" },
          cache: { ...cacheWrite(keys[1] as string), taskName: "fit" },
        });
      });
      expect(await store.cache.evict("github.com/other/repo", { sourceExecution: e.id })).toBe(0);
      expect(await store.cache.evict(REPO, { key: keys[0] as string })).toBe(1);
      expect(await store.cache.evict(REPO, { sourceExecution: e.id })).toBe(1);
      expect(await store.cache.lookup(keys[1] as string)).toBeNull();
      const stats = await store.cache.stats(REPO);
      expect(stats.every((s) => s.entries > 0)).toBe(true);
    });
  });

  describe(`reservations [${driver}]`, () => {
    it("has one holder; others are told who holds it", async () => {
      const key = `sha256:${sha()}`;
      expect(await store.cache.reserve(key, REPO, "e1/a/1", 10_000)).toMatchObject({
        acquired: true,
        owner: "e1/a/1",
      });
      expect(await store.cache.reserve(key, REPO, "e2/a/1", 10_000)).toMatchObject({
        acquired: false,
        owner: "e1/a/1",
      });
      expect(await store.cache.heartbeat(key, "e2/a/1", 10_000)).toBe(false);
      expect(await store.cache.release(key, "e2/a/1")).toBe(false);
      expect(await store.cache.heartbeat(key, "e1/a/1", 10_000)).toBe(true);
      expect(await store.cache.release(key, "e1/a/1")).toBe(true);
      expect((await store.cache.reserve(key, REPO, "e2/a/1", 10_000)).acquired).toBe(true);
    });

    it("is taken over after its holder's heartbeat expires", async () => {
      const key = `sha256:${sha()}`;
      await store.cache.reserve(key, REPO, "dead/a/1", 150);
      expect((await store.cache.reserve(key, REPO, "live/a/1", 10_000)).acquired).toBe(false);
      await sleep(250);
      expect(await store.cache.reserve(key, REPO, "live/a/1", 10_000)).toMatchObject({
        acquired: true,
        owner: "live/a/1",
      });
      expect(await store.cache.heartbeat(key, "dead/a/1", 10_000)).toBe(false);
    });
  });

  describe(`production [${driver}]`, () => {
    it("keeps an append-only history with who, why and the previous version", async () => {
      const repo = `github.com/acme/prod-${driver}`;
      const reg = async (spec: string) =>
        (
          await store.versions.register({
            repo,
            sha: sha(),
            parents: [],
            ref: "main",
            message: null,
            result: built(spec),
            by: APP,
          })
        ).version;
      const v1 = await reg(pipeline("fit.py --p1"));
      const v2 = await reg(pipeline("fit.py --p2"));
      await store.production.activate({
        repo,
        sha: v1.sha,
        actor: "alice",
        reason: "push to main",
      });
      const second = await store.production.activate({
        repo,
        sha: v2.sha,
        actor: "bob",
        reason: "push to main",
      });
      expect(second).toMatchObject({
        changed: true,
        activation: { sha: v2.sha, previousSha: v1.sha, actor: "bob" },
      });
      const again = await store.production.activate({
        repo,
        sha: v2.sha,
        actor: "bob",
        reason: "redelivery",
      });
      expect(again.changed).toBe(false);
      await store.production.activate({
        repo,
        sha: v1.sha,
        actor: "carol",
        reason: `rollback to ${v1.sha}`,
      });
      expect((await store.production.current(repo))?.sha).toBe(v1.sha);
      expect((await store.production.history(repo)).map((a) => [a.sha, a.reason])).toEqual([
        [v1.sha, `rollback to ${v1.sha}`],
        [v2.sha, "push to main"],
        [v1.sha, "push to main"],
      ]);
    });

    it("refuses to activate what is not a registered, valid version", async () => {
      const bad = sha();
      await store.versions.register({
        repo: REPO,
        sha: bad,
        parents: [],
        ref: null,
        message: null,
        result: built("version: 1\ntasks: 3\n"),
        by: CLIENT,
      });
      await expect(
        store.production.activate({ repo: REPO, sha: bad, actor: "a", reason: "r" }),
      ).rejects.toThrow(/invalid reprise.yaml/);
      await expect(
        store.production.activate({ repo: REPO, sha: "0".repeat(40), actor: "a", reason: "r" }),
      ).rejects.toThrow(/not registered/);
    });
  });

  describe(`deliveries and tokens [${driver}]`, () => {
    it("stores a delivery once, hands it to one processor, and re-offers an abandoned claim", async () => {
      const id = `d-${sha()}`;
      expect(
        await store.deliveries.record({
          id,
          event: "push",
          action: null,
          payload: { ref: "refs/heads/main" },
        }),
      ).toEqual({ stored: true });
      expect(
        await store.deliveries.record({
          id,
          event: "push",
          action: null,
          payload: { other: true },
        }),
      ).toEqual({ stored: false });
      const claimed = await store.deliveries.claimNext(150);
      expect(claimed).toMatchObject({ id, attempts: 1, payload: { ref: "refs/heads/main" } });
      expect(await store.deliveries.claimNext(150)).toBeNull();
      await sleep(250);
      expect((await store.deliveries.claimNext(10_000))?.attempts).toBe(2);
      await store.deliveries.finish(id, "registered");
      expect(await store.deliveries.get(id)).toMatchObject({ outcome: "registered" });
      expect(await store.deliveries.claimNext(10_000)).toBeNull();
    });

    it("keeps only a token's hash, verifies live tokens and refuses revoked or expired ones", async () => {
      const { token, record } = await store.tokens.create({
        repos: [REPO],
        readOnly: true,
        description: "ci",
      });
      expect(await store.tokens.verify(token)).toMatchObject({
        id: record.id,
        repos: [REPO],
        readOnly: true,
      });
      expect(await store.tokens.verify(`${token}x`)).toBeNull();
      const stored = await rows<{ token_hash: string }>(
        store.db,
        sql`select token_hash from api_tokens where id = ${record.id}`,
      );
      expect(stored[0]?.token_hash).not.toContain(token);
      await store.tokens.revoke(record.id);
      expect(await store.tokens.verify(token)).toBeNull();
      const expired = await store.tokens.create({
        repos: [REPO],
        readOnly: false,
        expiresAt: new Date(Date.now() - 1_000),
      });
      expect(await store.tokens.verify(expired.token)).toBeNull();
    });

    it("remembers the check run of an execution", async () => {
      const e = await queued();
      await store.checkRuns.save({
        executionId: e.id,
        repo: REPO,
        checkRunId: 42,
        name: "reprise/train",
      });
      await store.checkRuns.save({
        executionId: e.id,
        repo: REPO,
        checkRunId: 43,
        name: "reprise/train",
      });
      expect(await store.checkRuns.get(e.id)).toEqual({
        checkRunId: 43,
        name: "reprise/train",
        repo: REPO,
      });
    });
  });
}

function sleep(ms: number) {
  return new Promise((r) => setTimeout(r, ms));
}
