/** `reprise versions`, `diff`, `production` and `activate`: what is registered, and what is live. */
import { diffVersions, type NamedChanges } from "../../core/diff/diff-versions.js";
import { formatDiagnostic } from "../../core/spec/diagnostics.js";
import { localRepoKey } from "../../core/version/repo-key.js";
import type { Config } from "../config.js";
import { diffable, versionDocument } from "../documents.js";
import { openConfiguredStore } from "../open-store.js";
import { registerLocalCommit, registerLocalCommitIfValid } from "../registry.js";
import { activateVersion } from "../service.js";
import { gitUser, repoRoot } from "../sources/local-git.js";
import { EXIT, type Io, UsageError } from "./io.js";

const short = (sha: string | null | undefined) => (sha ? sha.slice(0, 12) : "-");

/**
 * `reprise register [--ref REF]`: registers a commit's version (what the GitHub App does on push).
 * An invalid spec is reported and, as for `run`, nothing is registered; exit 2.
 */
export async function registerCommand(
  config: Config,
  opts: { repo: string; ref: string; json: boolean },
  io: Io,
): Promise<number> {
  const root = await repoRoot(opts.repo);
  const open = await openConfiguredStore(config);
  try {
    const checked = await registerLocalCommitIfValid(open.store, root, opts.ref);
    if ("invalid" in checked) {
      if (opts.json)
        io.out(
          JSON.stringify(
            {
              sha: checked.sha,
              ok: false,
              errors: checked.invalid.errors,
              warnings: checked.invalid.warnings,
            },
            null,
            2,
          ),
        );
      for (const d of [...checked.invalid.errors, ...checked.invalid.warnings])
        io.err(formatDiagnostic(d));
      io.err(`reprise.yaml of ${opts.ref} (${short(checked.sha)}) is invalid: nothing registered`);
      return EXIT.invalid;
    }
    const { version, created, identicalTo } = checked;
    if (opts.json) {
      io.out(
        JSON.stringify(
          {
            ...versionDocument(version),
            ok: true,
            created,
            identicalTo,
            tasks: version.tasks,
            workflows: version.workflows,
          },
          null,
          2,
        ),
      );
      return EXIT.ok;
    }
    for (const w of version.warnings) io.err(`${formatDiagnostic(w)} (warning)`);
    const tasks = Object.keys(version.tasks).length;
    io.out(
      `${created ? "registered" : "already registered:"} ${short(version.sha)} (${tasks} task${tasks === 1 ? "" : "s"}, spec ${short(version.specDigest?.slice(7))})` +
        (identicalTo ? `, identical to ${short(identicalTo)}` : ""),
    );
    return EXIT.ok;
  } finally {
    await open.close();
  }
}

export async function versionsCommand(
  config: Config,
  opts: { repo: string; json: boolean; limit: number },
  io: Io,
): Promise<number> {
  const root = await repoRoot(opts.repo);
  const open = await openConfiguredStore(config);
  try {
    const repo = localRepoKey(root);
    const [list, current] = await Promise.all([
      open.store.versions.list(repo, { limit: opts.limit }),
      open.store.production.current(repo),
    ]);
    if (opts.json) {
      io.out(
        JSON.stringify(
          list.map((v) => ({ ...versionDocument(v), production: v.sha === current?.sha })),
          null,
          2,
        ),
      );
      return EXIT.ok;
    }
    if (list.length === 0)
      io.out(`no versions of ${repo} yet: \`reprise run\` or \`reprise activate\` registers one`);
    for (const v of list) {
      const mark = v.sha === current?.sha ? "*" : " ";
      const status =
        v.status === "registered"
          ? short(v.specDigest?.slice(7))
          : `INVALID (${v.errors.length} errors)`;
      io.out(
        `${mark} ${short(v.sha)}  ${(v.ref ?? "").padEnd(10)}  ${status.padEnd(14)}  ${v.message ?? ""}`,
      );
    }
    if (current) io.out("\n* production");
    return EXIT.ok;
  } finally {
    await open.close();
  }
}

export async function diffCommand(
  config: Config,
  opts: { repo: string; a: string; b: string; json: boolean },
  io: Io,
): Promise<number> {
  const root = await repoRoot(opts.repo);
  const open = await openConfiguredStore(config);
  try {
    const [a, b] = [
      await registerLocalCommit(open.store, root, opts.a),
      await registerLocalCommit(open.store, root, opts.b),
    ];
    for (const [ref, r] of [
      [opts.a, a],
      [opts.b, b],
    ] as const) {
      if (r.version.status !== "registered") {
        for (const e of r.version.errors) io.err(formatDiagnostic(e));
        throw new UsageError(`reprise.yaml of ${ref} is invalid; nothing to compare`);
      }
    }
    const d = diffVersions(diffable(a.version), diffable(b.version));
    if (opts.json) {
      io.out(JSON.stringify({ from: a.version.sha, to: b.version.sha, ...d }, null, 2));
      return EXIT.ok;
    }
    io.out(
      `${short(a.version.sha)} -> ${short(b.version.sha)}${d.equivalent ? "  (equivalent: same spec digest)" : ""}`,
    );
    printChanges(io, "tasks", d.tasks);
    printChanges(io, "workflows", d.workflows);
    return EXIT.ok;
  } finally {
    await open.close();
  }
}

export async function productionCommand(
  config: Config,
  opts: { repo: string; json: boolean },
  io: Io,
): Promise<number> {
  const root = await repoRoot(opts.repo);
  const open = await openConfiguredStore(config);
  try {
    const history = await open.store.production.history(localRepoKey(root));
    if (opts.json) {
      io.out(JSON.stringify({ current: history[0] ?? null, history }, null, 2));
      return EXIT.ok;
    }
    if (history.length === 0) {
      io.out("no production version yet: `reprise activate REF` sets one");
      return EXIT.ok;
    }
    io.out(`production: ${short(history[0]?.sha)}`);
    for (const a of history) {
      io.out(
        `  ${a.activatedAt.toISOString()}  ${short(a.sha)}  from ${short(a.previousSha)}  by ${a.actor}: ${a.reason}`,
      );
    }
    return EXIT.ok;
  } finally {
    await open.close();
  }
}

export async function activateCommand(
  config: Config,
  opts: { repo: string; ref: string; reason: string | null; json: boolean },
  io: Io,
): Promise<number> {
  const root = await repoRoot(opts.repo);
  const open = await openConfiguredStore(config);
  try {
    const { version, identicalTo } = await registerLocalCommit(open.store, root, opts.ref);
    if (version.status !== "registered") {
      for (const e of version.errors) io.err(formatDiagnostic(e));
      throw new UsageError(`reprise.yaml of ${opts.ref} is invalid; it cannot be activated`);
    }
    // A revert's version is equivalent to an older one: the history says "rollback to <sha>".
    const { activation, changed } = await activateVersion(open.store, {
      repo: version.repo,
      sha: version.sha,
      actor: (await gitUser(root)) ?? config.user,
      reason: opts.reason,
      otherwise: identicalTo ? undefined : "activated by hand",
    });
    if (opts.json) io.out(JSON.stringify({ ...activation, changed }, null, 2));
    else if (!changed) io.out(`${short(version.sha)} is already production`);
    else
      io.out(
        `production: ${short(activation.previousSha)} -> ${short(activation.sha)} (${activation.reason})`,
      );
    return EXIT.ok;
  } finally {
    await open.close();
  }
}

function printChanges(io: Io, what: string, c: NamedChanges): void {
  const parts: string[] = [];
  if (c.added.length) parts.push(`added ${c.added.join(", ")}`);
  if (c.removed.length) parts.push(`removed ${c.removed.join(", ")}`);
  if (c.changed.length) parts.push(`changed ${c.changed.join(", ")}`);
  if (c.renamed.length)
    parts.push(`renamed ${c.renamed.map((r) => `${r.from} -> ${r.to}`).join(", ")}`);
  if (c.unchanged.length) parts.push(`unchanged ${c.unchanged.join(", ")}`);
  io.out(`  ${what}: ${parts.join("; ") || "none"}`);
}
