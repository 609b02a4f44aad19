/**
 * DESIGN.md section 1: the Action talks to the service over HTTP only; of this repository it may
 * import core/ (for rendering) and client/ (the API client it shares with the CLI). client/ may
 * import only core/ and its own files.
 */
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { describe, expect, it } from "vitest";

const ROOT = join(import.meta.dirname, "../..");

/** The repository files `file` imports, relative to the root (packages and node: left out). */
function localImports(file: string): string[] {
  const text = readFileSync(file, "utf8");
  const out: string[] = [];
  for (const m of text.matchAll(/^\s*(?:import|export)\s[^;]*?from\s+"([^"]+)"/gms)) {
    const spec = m[1] as string;
    if (spec.startsWith(".")) out.push(relative(ROOT, resolve(dirname(file), spec)));
  }
  return out;
}

const layers = [
  { folder: "action/src", may: ["core/", "client/", "action/src/"], main: "main.ts" },
  { folder: "client", may: ["core/", "client/"], main: "client.ts" },
];

for (const { folder, may, main } of layers) {
  describe(`${folder}/ layering`, () => {
    const files = readdirSync(join(ROOT, folder)).filter((f) => f.endsWith(".ts"));

    it("has sources to check", () => {
      expect(files).toContain(main);
    });

    it.each(files)(`${folder}/%s imports only ${may.join(", ")} and packages`, (name) => {
      for (const target of localImports(join(ROOT, folder, name)))
        expect(
          may.some((p) => target.startsWith(p)),
          `${name} imports ${target}`,
        ).toBe(true);
    });
  });
}
