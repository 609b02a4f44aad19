import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { describe, expect, it } from "vitest";

const CORE = join(import.meta.dirname, "../../core");

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? sources(path) : path.endsWith(".ts") ? [path] : [];
  });
}

/** What core/ may import: pure libraries, and node:crypto for sha256. */
const ALLOWED_IMPORTS = new Set(["yaml", "canonicalize", "picomatch", "node:crypto"]);
const FORBIDDEN_USES: Array<[RegExp, string]> = [
  [/\bprocess\./, "process"],
  // Date.parse and Date.UTC are pure; the clock is Date.now() and new Date() without arguments.
  [/\bDate\.now\b|\bnew Date\(\s*\)/, "the clock (Date)"],
  [/\bperformance\./, "the clock (performance)"],
  [/\bset(?:Timeout|Interval|Immediate)\b/, "timers"],
  [/\bconsole\./, "logging"],
  [/\bfetch\(/, "the network"],
  [/\bMath\.random\b/, "randomness"],
];

describe("core/ is pure", () => {
  const files = sources(CORE);

  it("has source files to check", () => {
    expect(files.length).toBeGreaterThan(10);
  });

  it.each(files.map((f) => [relative(CORE, f), f]))(
    "%s imports only pure modules and uses no I/O",
    (_, file) => {
      const text = readFileSync(file as string, "utf8");
      const imports = [...text.matchAll(/^\s*(?:import|export)\s[^;]*?from\s+"([^"]+)"/gms)].map(
        (m) => m[1] as string,
      );
      for (const spec of imports) {
        if (spec.startsWith(".")) {
          const target = relative(CORE, resolve(dirname(file as string), spec));
          expect(target.startsWith(".."), `${spec} must stay inside core/`).toBe(false);
          continue;
        }
        expect(ALLOWED_IMPORTS.has(spec), `core must not import ${spec}`).toBe(true);
      }
      const code = text.replace(/\/\*[\s\S]*?\*\/|\/\/.*$/gm, "");
      for (const [pattern, what] of FORBIDDEN_USES)
        expect(pattern.test(code), `core must not use ${what}`).toBe(false);
    },
  );
});
