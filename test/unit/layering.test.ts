/**
 * DESIGN.md section 1: the Action talks to the service over HTTP only; of this repository it may
 * import only core/ (for rendering).
 */
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { describe, expect, it } from "vitest";

const ROOT = join(import.meta.dirname, "../..");
const ACTION = join(ROOT, "action/src");

describe("action/ layering", () => {
  const files = readdirSync(ACTION).filter((f) => f.endsWith(".ts"));

  it("has sources to check", () => {
    expect(files).toContain("main.ts");
  });

  it.each(files)("action/src/%s imports only core/, its own files and packages", (name) => {
    const file = join(ACTION, name);
    const text = readFileSync(file, "utf8");
    for (const m of text.matchAll(/^\s*(?:import|export)\s[^;]*?from\s+"([^"]+)"/gms)) {
      const spec = m[1] as string;
      if (!spec.startsWith(".")) continue;
      const target = relative(ROOT, resolve(dirname(file), spec));
      expect(
        target.startsWith("core/") || target.startsWith("action/src/"),
        `${name} imports ${target}`,
      ).toBe(true);
    }
  });
});
