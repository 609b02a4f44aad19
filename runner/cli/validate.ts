/** `reprise validate`: parse, validate and hash the spec of a commit or of the working tree. */
import { type Diagnostic, formatDiagnostic, SPEC_FILE } from "../../core/spec/diagnostics.js";
import { buildVersion } from "../../core/version/build-version.js";
import { localRepoKey } from "../../core/version/repo-key.js";
import { repoRoot, type Snapshot, snapshotAt, snapshotWorktree } from "../sources/local-git.js";
import { EXIT, type Io } from "./io.js";

export interface ValidateOptions {
  repo: string;
  /** A commit-ish, or null for the working tree. */
  ref: string | null;
  json: boolean;
}

export async function validate(opts: ValidateOptions, io: Io): Promise<number> {
  const root = await repoRoot(opts.repo);
  const snap: Snapshot =
    opts.ref === null ? await snapshotWorktree(root) : await snapshotAt(root, opts.ref);
  const where = opts.ref === null ? "the working tree" : `${opts.ref} (${snap.sha?.slice(0, 12)})`;
  const base = { repo: localRepoKey(root), ref: opts.ref, sha: snap.sha };

  if (snap.spec === null) {
    const message = `no ${SPEC_FILE} at the root of ${where}; create one (see examples/seed-pipeline)`;
    if (opts.json)
      io.out(
        JSON.stringify({
          ...base,
          ok: false,
          errors: [{ code: "E_REQUIRED", message }],
          warnings: [],
        }),
      );
    else io.err(`${SPEC_FILE}: E_REQUIRED ${message}`);
    return EXIT.invalid;
  }

  const result = buildVersion(snap.spec, snap.tree);
  if (opts.json) {
    const doc = result.ok
      ? {
          ...base,
          ok: true,
          specDigest: result.version.specDigest,
          tasks: result.version.tasks,
          workflows: result.version.workflows,
          errors: [],
          warnings: result.warnings,
        }
      : { ...base, ok: false, errors: result.errors, warnings: result.warnings };
    io.out(JSON.stringify(doc, null, 2));
    return result.ok ? EXIT.ok : EXIT.invalid;
  }

  const print = (d: Diagnostic) =>
    io.err(`${formatDiagnostic(d)}${d.severity === "warning" ? " (warning)" : ""}`);
  if (!result.ok) {
    for (const d of [...result.errors, ...result.warnings]) print(d);
    io.err(`\n${SPEC_FILE} of ${where} is invalid: ${count(result.errors.length, "error")}`);
    return EXIT.invalid;
  }
  for (const d of result.warnings) print(d);
  const { version } = result;
  const tasks = Object.entries(version.tasks);
  const width = Math.max(4, ...tasks.map(([n]) => n.length));
  io.out(
    `${SPEC_FILE} of ${where} is valid: ${count(tasks.length, "task")}, ${count(Object.keys(version.workflows).length, "workflow")}`,
  );
  io.out(`spec ${version.specDigest}`);
  io.out("");
  io.out(`${"task".padEnd(width)}  ${"digest".padEnd(19)}  source files`);
  for (const [name, t] of tasks)
    io.out(`${name.padEnd(width)}  ${t.digest.slice(0, 19)}  ${t.sourceFiles}`);
  for (const [name, d] of Object.entries(version.workflows))
    io.out(`workflow ${name}  ${d.slice(0, 19)}`);
  return EXIT.ok;
}

function count(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? "" : "s"}`;
}
