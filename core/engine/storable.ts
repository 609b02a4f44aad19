/**
 * Values the database can store. JSON allows any string ("\u0000" and a lone "\ud800" are valid
 * escapes), but Postgres refuses U+0000 in text and jsonb, and jsonb refuses a lone UTF-16
 * surrogate: a value with either must be refused where it enters (a task's outputs, a workflow's
 * inputs), or every write that carries it fails, again and again.
 */
import type { JsonValue } from "../spec/types.js";

/** U+0000, a high surrogate not followed by a low one, or a low one not preceded by a high one. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: U+0000 is exactly what is looked for
const UNSTORABLE = /\u0000|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const UNSTORABLE_ALL = new RegExp(UNSTORABLE.source, "g");

/** What to do about it, for messages. */
export const UNSTORABLE_HINT =
  "which the database cannot store (U+0000 and lone UTF-16 surrogates): remove it, or encode binary data (base64) or write it to a file output";

function badChar(s: string): string | null {
  const i = s.search(UNSTORABLE);
  if (i < 0) return null;
  const c = s.charCodeAt(i);
  return c === 0 ? "U+0000 (NUL)" : `a lone surrogate U+${c.toString(16).toUpperCase()}`;
}

function child(path: string, key: string | number): string {
  if (typeof key === "number") return `${path}[${key}]`;
  return /^[A-Za-z_][A-Za-z0-9_-]*$/.test(key)
    ? `${path}.${key}`
    : `${path}[${JSON.stringify(key)}]`;
}

/**
 * Where `value` holds a character the database refuses, as words naming its path under `root`
 * (`the string at x.a[2] contains U+0000 (NUL)`), or null. Iterative: a value may nest deeply.
 */
export function unstorable(value: JsonValue, root: string): string | null {
  const stack: Array<[unknown, string]> = [[value, root]];
  for (let top = stack.pop(); top; top = stack.pop()) {
    const [v, path] = top;
    if (typeof v === "string") {
      const bad = badChar(v);
      if (bad) return `the string at ${path} contains ${bad}`;
    } else if (Array.isArray(v)) {
      for (let i = v.length - 1; i >= 0; i--) stack.push([v[i], child(path, i)]);
    } else if (typeof v === "object" && v !== null) {
      const entries = Object.entries(v);
      for (const [k] of entries) {
        const bad = badChar(k);
        if (bad) return `the key ${JSON.stringify(k)} in ${path} contains ${bad}`;
      }
      for (let i = entries.length - 1; i >= 0; i--) {
        const [k, x] = entries[i] as [string, unknown];
        stack.push([x, child(path, k)]);
      }
    }
  }
  return null;
}

/** Text the database can store: each refused character becomes U+FFFD (for messages and errors). */
export function storableText(s: string): string {
  return s.replace(UNSTORABLE_ALL, "\uFFFD");
}
