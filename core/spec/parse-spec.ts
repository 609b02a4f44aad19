/**
 * parseSpec: reprise.yaml bytes in, a normalized Spec or every error out. Never throws on any
 * input (property-tested), never reads anything but its argument.
 */
import { type Diagnostic, sortDiagnostics } from "./diagnostics.js";
import { NAME, NAME_RULE } from "./names.js";
import { Collector, pathText, readMapping, readNamedMapping } from "./reader.js";
import type { Spec, TaskSpec, WorkflowSpec } from "./types.js";
import { isPinnedImage, type ReadTask, readDefaults, readTask } from "./validate-task.js";
import { readWorkflow } from "./validate-workflow.js";
import {
  type Anchor,
  loadYaml,
  locate,
  type PathSegment,
  type Position,
  type YamlSource,
} from "./yaml-source.js";

/** docs/design.md section 2. */
export const MAX_TASKS = 1_000;
const TOP_KEYS = ["version", "defaults", "tasks", "workflows"] as const;

/** Maps a document path to its line:col, for diagnostics found after parsing (registration). */
export type Locator = (path: readonly PathSegment[], anchor?: Anchor) => Position;

export type ParseResult =
  | {
      ok: true;
      spec: Spec;
      warnings: Diagnostic[];
      locate: Locator;
      sourcesDeclared: ReadonlySet<string>;
    }
  | { ok: false; errors: Diagnostic[]; warnings: Diagnostic[] };

export function parseSpec(input: string | Uint8Array): ParseResult {
  const loaded = loadYaml(input);
  if (!loaded.ok) {
    return {
      ok: false,
      warnings: [],
      errors: loaded.problems.map((p) => ({
        severity: "error",
        code: p.code,
        message: p.message,
        line: p.position.line,
        col: p.position.col,
        path: "(document)",
      })),
    };
  }
  const { source, value } = loaded;
  const c = new Collector();
  const { spec, sourcesDeclared } = readSpec(c, value);
  const diagnostics = resolve(source, c);
  const errors = diagnostics.filter((d) => d.severity === "error");
  const warnings = diagnostics.filter((d) => d.severity === "warning");
  if (errors.length > 0 || spec === null) return { ok: false, errors, warnings };
  const locator: Locator = (path, anchor = "value") => locate(source, path, anchor);
  return { ok: true, spec, warnings, locate: locator, sourcesDeclared };
}

function readSpec(
  c: Collector,
  value: unknown,
): { spec: Spec | null; sourcesDeclared: Set<string> } {
  const sourcesDeclared = new Set<string>();
  if (value === null || value === undefined) {
    c.error("E_YAML", [], "the file is empty; start it with `version: 1`");
    return { spec: null, sourcesDeclared };
  }
  const top = readMapping(c, value, [], "reprise.yaml", TOP_KEYS);
  if (!top) return { spec: null, sourcesDeclared };
  if (top.version === undefined) {
    c.error("E_REQUIRED", [], "missing `version: 1` at the top of the file", "key");
  } else if (top.version !== 1) {
    c.error(
      "E_VALUE",
      ["version"],
      `unsupported version ${JSON.stringify(top.version)}; this Reprise reads version 1`,
    );
  }

  const defaults = readDefaults(c, top.defaults);
  const rawTasks = readNamedMapping(c, top.tasks, ["tasks"], "tasks") ?? {};
  const taskNames = Object.keys(rawTasks);
  const read = new Map<string, ReadTask>();
  if (taskNames.length > MAX_TASKS) {
    c.error("E_LIMIT", ["tasks"], `${taskNames.length} tasks; the limit is ${MAX_TASKS}`, "key");
  } else {
    for (const name of taskNames) {
      if (!NAME.test(name)) {
        c.error(
          "E_NAME",
          ["tasks", name],
          `task name "${name}" is not valid (${NAME_RULE})`,
          "key",
        );
        continue;
      }
      const t = readTask(c, name, rawTasks[name], defaults);
      read.set(name, t);
      if (t.sourcesDeclared) sourcesDeclared.add(name);
    }
  }
  warnAboutTasks(c, read);

  const rawWorkflows = readNamedMapping(c, top.workflows, ["workflows"], "workflows") ?? {};
  const workflows: Record<string, WorkflowSpec> = {};
  for (const [name, raw] of Object.entries(rawWorkflows)) {
    if (!NAME.test(name)) {
      c.error(
        "E_NAME",
        ["workflows", name],
        `workflow name "${name}" is not valid (${NAME_RULE})`,
        "key",
      );
      continue;
    }
    workflows[name] = readWorkflow(c, name, raw, read);
  }

  const tasks: Record<string, TaskSpec> = {};
  for (const [name, t] of read) tasks[name] = t.task;
  return { spec: { version: 1, tasks, workflows }, sourcesDeclared };
}

function warnAboutTasks(c: Collector, tasks: ReadonlyMap<string, ReadTask>): void {
  const warnedImages = new Set<string>();
  for (const [name, t] of tasks) {
    if (t.imagePath && t.task.image && !isPinnedImage(t.task.image)) {
      const key = pathText(t.imagePath);
      if (!warnedImages.has(key)) {
        warnedImages.add(key);
        c.warn(
          "W_IMAGE_DIGEST",
          t.imagePath,
          `image "${t.task.image}" is not pinned by digest: the task digest cannot see the tag move; pin it as ${t.task.image.split("@")[0]}@sha256:<digest>`,
        );
      }
    }
    if (t.task.cache.enabled && t.task.cache.version === null && !t.sourcesDeclared) {
      c.warn(
        "W_CACHE_SOURCES",
        ["tasks", name, "cache"],
        `task "${name}" is cached with the default whole-tree sources: its cache is invalidated by any commit; declare \`sources\``,
      );
    }
  }
}

function resolve(source: YamlSource, c: Collector): Diagnostic[] {
  const out: Diagnostic[] = c.items.map((d) => {
    const pos = locate(source, d.path, d.anchor);
    return {
      severity: d.severity,
      code: d.code,
      message: d.message,
      line: pos.line,
      col: pos.col,
      path: pathText(d.path),
    };
  });
  return sortDiagnostics(out);
}
