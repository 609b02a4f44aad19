/**
 * The vocabulary (execution, node and attempt states, cache statuses, error kinds, trigger kinds,
 * the terminal and active lists, NodeError and Trigger) is declared once, in
 * core/engine/vocabulary.ts: every other source file takes it from there.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  ACTIVE_EXECUTION_STATES,
  ATTEMPT_STATES,
  CACHE_STATUSES,
  ERROR_KINDS,
  EXECUTION_MODES,
  EXECUTION_STATES,
  isTerminalExecutionState,
  isTerminalNodeState,
  NODE_STATES,
  TERMINAL_EXECUTION_STATES,
  TERMINAL_NODE_STATES,
  TRIGGER_KINDS,
} from "../../../core/engine/vocabulary.js";
import { attempts, executions, nodeExecutions } from "../../../db/schema.js";

const ROOT = join(import.meta.dirname, "../../..");
const HOME = "core/engine/vocabulary.ts";
const FOLDERS = ["core", "db", "runner", "client", "action/src", "app"];

const LISTS: Record<string, readonly string[]> = {
  EXECUTION_STATES,
  TERMINAL_EXECUTION_STATES,
  ACTIVE_EXECUTION_STATES,
  NODE_STATES,
  TERMINAL_NODE_STATES,
  ATTEMPT_STATES,
  CACHE_STATUSES,
  ERROR_KINDS,
  EXECUTION_MODES,
  TRIGGER_KINDS,
};
const TYPES = [
  "ExecutionState",
  "NodeState",
  "AttemptState",
  "CacheStatus",
  "ErrorKind",
  "ExecutionMode",
  "NodeError",
  "ExecutionError",
  "Trigger",
  "TriggerKind",
];

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(join(ROOT, dir), { withFileTypes: true })) {
    const path = join(dir, e.name);
    if (e.isDirectory()) {
      if (e.name !== "node_modules" && e.name !== "migrations") out.push(...sources(path));
    } else if (/\.tsx?$/.test(e.name) && !e.name.endsWith(".d.ts")) out.push(path);
  }
  return out;
}

const sameSet = (a: readonly string[], b: readonly string[]) =>
  a.length === b.length && a.every((x) => b.includes(x));

/**
 * Every list of double-quoted words written in `text`: array literals (`["A", "B"]`) and union
 * types (`"A" | "B"`), each as its words.
 */
function wordLists(text: string): string[][] {
  const lists: string[][] = [];
  for (const m of text.matchAll(/\[\s*"[\w-]+"(?:\s*,\s*"[\w-]+")+\s*,?\s*\]/g))
    lists.push([...m[0].matchAll(/"([\w-]+)"/g)].map((w) => w[1] as string));
  for (const m of text.matchAll(/"[\w-]+"(?:\s*\|\s*"[\w-]+")+/g))
    lists.push([...m[0].matchAll(/"([\w-]+)"/g)].map((w) => w[1] as string));
  return lists;
}

describe("the vocabulary", () => {
  const files = FOLDERS.flatMap(sources).filter((f) => f !== HOME);

  it("has sources to check", () => {
    expect(files.length).toBeGreaterThan(100);
    expect(files).toContain("runner/server/api.ts");
  });

  it("is listed nowhere but core/engine/vocabulary.ts", () => {
    const found: string[] = [];
    for (const file of files) {
      for (const words of wordLists(readFileSync(join(ROOT, file), "utf8")))
        for (const [name, list] of Object.entries(LISTS))
          if (sameSet(words, list)) found.push(`${file}: ${name} again (${words.join(", ")})`);
    }
    expect(found).toEqual([]);
  });

  it("has its types declared nowhere but core/engine/vocabulary.ts", () => {
    const declared = new RegExp(`\\b(?:interface|type)\\s+(${TYPES.join("|")})\\b(?!\\s*,)`);
    const found = files.filter((file) => {
      const text = readFileSync(join(ROOT, file), "utf8");
      // `import { type X }` and `export { type X }` name it; only a declaration has `=` or `{`.
      return text
        .split("\n")
        .some((l) => declared.test(l) && /^\s*(?:export\s+)?(?:interface|type)\s/.test(l));
    });
    expect(found).toEqual([]);
  });

  it("is what the store's columns take", () => {
    expect(executions.state.enumValues).toEqual([...EXECUTION_STATES]);
    expect(executions.mode.enumValues).toEqual([...EXECUTION_MODES]);
    expect(nodeExecutions.state.enumValues).toEqual([...NODE_STATES]);
    expect(nodeExecutions.cacheStatus.enumValues).toEqual([...CACHE_STATUSES]);
    expect(attempts.state.enumValues).toEqual([...ATTEMPT_STATES]);
    expect(attempts.errorKind.enumValues).toEqual([...ERROR_KINDS]);
  });

  it("splits the states into terminal and active, each one once", () => {
    expect([...TERMINAL_EXECUTION_STATES, ...ACTIVE_EXECUTION_STATES].sort()).toEqual(
      [...EXECUTION_STATES].sort(),
    );
    expect(EXECUTION_STATES.filter(isTerminalExecutionState)).toEqual([
      "SUCCEEDED",
      "FAILED",
      "ABORTED",
    ]);
    expect(NODE_STATES.filter(isTerminalNodeState)).toEqual(TERMINAL_NODE_STATES);
    expect(isTerminalExecutionState("ABORTING")).toBe(false);
    expect(isTerminalNodeState("PENDING")).toBe(false);
  });
});
