/**
 * Small readers over the plain value of a YAML document. Each reports what is wrong with a
 * stable code and the path it concerns; positions are resolved later, from the document.
 */
import { artifactProblem } from "../artifacts/ref.js";
import type { ErrorCode, WarningCode } from "./diagnostics.js";
import { suggest } from "./suggest.js";
import type { JsonValue, ValueType } from "./types.js";
import type { Anchor, PathSegment } from "./yaml-source.js";

export interface PendingDiagnostic {
  severity: "error" | "warning";
  code: ErrorCode | WarningCode;
  message: string;
  path: readonly PathSegment[];
  anchor: Anchor;
}

export class Collector {
  readonly items: PendingDiagnostic[] = [];

  error(
    code: ErrorCode,
    path: readonly PathSegment[],
    message: string,
    anchor: Anchor = "value",
  ): void {
    this.items.push({ severity: "error", code, message, path, anchor });
  }

  warn(
    code: WarningCode,
    path: readonly PathSegment[],
    message: string,
    anchor: Anchor = "value",
  ): void {
    this.items.push({ severity: "warning", code, message, path, anchor });
  }

  get errorCount(): number {
    return this.items.filter((d) => d.severity === "error").length;
  }
}

export function pathText(path: readonly PathSegment[]): string {
  let out = "";
  for (const seg of path)
    out += typeof seg === "number" ? `[${seg}]` : out === "" ? seg : `.${seg}`;
  return out === "" ? "(document)" : out;
}

export function describe(v: unknown): string {
  if (v === null || v === undefined) return "nothing";
  if (Array.isArray(v)) return "a list";
  if (typeof v === "object") return "a mapping";
  if (typeof v === "string") return `the string "${v.length > 40 ? `${v.slice(0, 40)}...` : v}"`;
  if (typeof v === "number") return Number.isInteger(v) ? `the integer ${v}` : `the number ${v}`;
  if (typeof v === "boolean") return `the boolean ${v}`;
  return typeof v;
}

export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/**
 * A mapping with a fixed vocabulary. Unknown keys are errors (with a suggestion); returns null
 * when the value is not a mapping at all.
 */
export function readMapping(
  c: Collector,
  v: unknown,
  path: readonly PathSegment[],
  what: string,
  allowed: readonly string[],
): Record<string, unknown> | null {
  if (!isRecord(v)) {
    c.error("E_TYPE", path, `${what} must be a mapping, got ${describe(v)}`);
    return null;
  }
  for (const key of Object.keys(v)) {
    if (allowed.includes(key)) continue;
    const hint = suggest(key, allowed);
    c.error(
      "E_UNKNOWN_KEY",
      [...path, key],
      `unknown key "${key}" in ${what}${hint ? `; did you mean "${hint}"?` : ""} (allowed: ${allowed.join(", ")})`,
      "key",
    );
  }
  return v;
}

/** A mapping whose keys are names chosen by the user (tasks, nodes, inputs...). */
export function readNamedMapping(
  c: Collector,
  v: unknown,
  path: readonly PathSegment[],
  what: string,
): Record<string, unknown> | null {
  if (v === null || v === undefined) return {};
  if (!isRecord(v)) {
    c.error("E_TYPE", path, `${what} must be a mapping of names, got ${describe(v)}`);
    return null;
  }
  return v;
}

export function readString(
  c: Collector,
  v: unknown,
  path: readonly PathSegment[],
  what: string,
): string | null {
  if (typeof v === "string" && v !== "") return v;
  if (typeof v === "number" || typeof v === "boolean") {
    c.error("E_TYPE", path, `${what} must be a string, got ${describe(v)}; quote it: "${v}"`);
  } else if (v === "") {
    c.error("E_VALUE", path, `${what} must not be empty`);
  } else {
    c.error("E_TYPE", path, `${what} must be a string, got ${describe(v)}`);
  }
  return null;
}

export function readStringList(
  c: Collector,
  v: unknown,
  path: readonly PathSegment[],
  what: string,
): string[] | null {
  if (!Array.isArray(v)) {
    c.error("E_TYPE", path, `${what} must be a list of strings, got ${describe(v)}`);
    return null;
  }
  const out: string[] = [];
  let ok = true;
  v.forEach((item, i) => {
    const s = readString(c, item, [...path, i], `${what}[${i}]`);
    if (s === null) ok = false;
    else out.push(s);
  });
  return ok ? out : null;
}

export function readInteger(
  c: Collector,
  v: unknown,
  path: readonly PathSegment[],
  what: string,
  min: number,
  max: number,
): number | null {
  if (typeof v !== "number" || !Number.isInteger(v)) {
    c.error("E_TYPE", path, `${what} must be an integer, got ${describe(v)}`);
    return null;
  }
  if (v < min || v > max) {
    c.error("E_VALUE", path, `${what} must be between ${min} and ${max}, got ${v}`);
    return null;
  }
  return v;
}

/** Why `v` is not a value of `type`, or null when it is. */
export function typeMismatch(type: ValueType, v: unknown): string | null {
  const problem = jsonProblem(v);
  if (problem) return problem;
  switch (type) {
    case "string":
      return typeof v === "string" ? null : `expected a string, got ${describe(v)}`;
    case "integer":
      return typeof v === "number" && Number.isSafeInteger(v)
        ? null
        : `expected an integer, got ${describe(v)}`;
    case "number":
      return typeof v === "number" ? null : `expected a number, got ${describe(v)}`;
    case "boolean":
      return typeof v === "boolean" ? null : `expected a boolean, got ${describe(v)}`;
    case "json":
      return null;
    case "file":
    case "directory":
      return artifactProblem(type, v);
  }
}

/** YAML can say `.inf` and `.nan`; JSON (and so every digest and task) cannot. */
export function jsonProblem(v: unknown): string | null {
  const stack: unknown[] = [v];
  while (stack.length > 0) {
    const x = stack.pop();
    if (typeof x === "number" && !Number.isFinite(x)) return `${x} cannot be represented in JSON`;
    if (x === undefined) return "a value is missing";
    if (Array.isArray(x)) for (const item of x) stack.push(item);
    else if (isRecord(x)) for (const item of Object.values(x)) stack.push(item);
  }
  return null;
}

export function asJson(v: unknown): JsonValue {
  return v as JsonValue;
}
