/**
 * From a commit's reprise.yaml and tree listing to everything a version is made of: the
 * normalized spec and its digests. This is the whole registration-side computation; the
 * store only persists what comes out.
 */
import type { Digest } from "../hash/digest.js";
import { sourcesDigest, type TreeEntry, TreeIndex } from "../hash/sources.js";
import { specDigest, taskDigest, workflowDigest } from "../hash/task-digest.js";
import { type Diagnostic, sortDiagnostics } from "../spec/diagnostics.js";
import { type ParseResult, parseSpec } from "../spec/parse-spec.js";
import type { Spec } from "../spec/types.js";

export interface TaskDigests {
  digest: Digest;
  sourcesDigest: Digest;
  /** How many files of the commit the task's sources matched. */
  sourceFiles: number;
}

export interface VersionContent {
  spec: Spec;
  tasks: Record<string, TaskDigests>;
  workflows: Record<string, Digest>;
  specDigest: Digest;
}

export type BuildResult =
  | { ok: true; version: VersionContent; warnings: Diagnostic[] }
  | { ok: false; errors: Diagnostic[]; warnings: Diagnostic[] };

export function buildVersion(
  specText: string | Uint8Array,
  tree: readonly TreeEntry[],
): BuildResult {
  const parsed = parseSpec(specText);
  return parsed.ok ? hashSpec(parsed, tree) : parsed;
}

/** The hashing half of buildVersion, for a spec that parsed. */
export function hashSpec(
  parsed: Extract<ParseResult, { ok: true }>,
  tree: readonly TreeEntry[],
): BuildResult {
  const { spec, locate } = parsed;
  const index = new TreeIndex(tree);
  const errors: Diagnostic[] = [];
  const warnings: Diagnostic[] = [...parsed.warnings];
  const at = (path: (string | number)[], severity: "error" | "warning") => {
    const pos = locate(path, "value");
    return { severity, line: pos.line, col: pos.col, path: path.join(".") } as const;
  };

  const bySources = new Map<string, { digest: Digest; files: number }>();
  const unmatchedWarned = new Set<string>();
  const tasks: Record<string, TaskDigests> = {};
  const taskDigests: Record<string, Digest> = {};
  for (const [name, task] of Object.entries(spec.tasks)) {
    const key = task.sources.join("\n");
    let sources = bySources.get(key);
    if (!sources) {
      const entries = index.match(task.sources);
      sources = { digest: sourcesDigest(entries), files: entries.length };
      bySources.set(key, sources);
    }
    if (sources.files === 0) {
      errors.push({
        ...at(["tasks", name, "sources"], "error"),
        code: "E_SOURCES_EMPTY",
        message: `task "${name}": sources ${JSON.stringify(task.sources)} match no file of this commit; fix the globs`,
      });
    } else if (parsed.sourcesDeclared.has(name)) {
      task.sources.forEach((glob, i) => {
        if (glob.startsWith("!") || index.matchGlob(glob).length > 0) return;
        const id = `${name}\n${glob}`;
        if (unmatchedWarned.has(id)) return;
        unmatchedWarned.add(id);
        warnings.push({
          ...at(["tasks", name, "sources", i], "warning"),
          code: "W_SOURCES_UNMATCHED",
          message: `task "${name}": sources glob "${glob}" matches no file of this commit`,
        });
      });
    }
    const d = taskDigest(task, sources.digest);
    tasks[name] = { digest: d, sourcesDigest: sources.digest, sourceFiles: sources.files };
    taskDigests[name] = d;
  }
  if (errors.length > 0)
    return { ok: false, errors: sortDiagnostics(errors), warnings: sortDiagnostics(warnings) };

  const workflows: Record<string, Digest> = {};
  for (const [name, wf] of Object.entries(spec.workflows))
    workflows[name] = workflowDigest(wf, taskDigests);
  return {
    ok: true,
    version: { spec, tasks, workflows, specDigest: specDigest(taskDigests, workflows) },
    warnings: sortDiagnostics(warnings),
  };
}
