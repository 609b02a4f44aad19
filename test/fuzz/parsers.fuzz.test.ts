/**
 * Hostile input to the pure parsers (issue 9), generated with fast-check: whatever a task writes
 * to its outputs file, and whatever a pull-request comment says, yields a clean result or a clean
 * refusal; never an exception, never a hang. (The spec parser's own fuzzing is in
 * test/unit/spec/hostile-input.test.ts.)
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { parseCommands } from "../../app/commands.js";
import { checkOutputs, MAX_OUTPUTS_BYTES } from "../../core/engine/outputs.js";

const DECLARED = {
  model: { type: "string" as const },
  loss: { type: "number" as const },
  n: { type: "integer" as const },
  ok: { type: "boolean" as const },
  meta: { type: "json" as const },
};

/** JSON nested `depth` levels deep, as a hostile task might write. */
const deep = (depth: number) => `${"[".repeat(depth)}${"]".repeat(depth)}`;

describe("outputs files", () => {
  it("arbitrary bytes: a result, never a throw", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 6_000 }), (bytes) => {
        const r = checkOutputs(bytes, DECLARED);
        expect(typeof r.ok).toBe("boolean");
        if (!r.ok) expect(r.reason.length).toBeGreaterThan(0);
      }),
      { numRuns: 400 },
    );
  });

  it("arbitrary JSON values: accepted only when exactly the declared outputs, typed", () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 6 }), (value) => {
        const text = JSON.stringify(value) ?? "null";
        const r = checkOutputs(new TextEncoder().encode(text), DECLARED);
        if (r.ok) {
          expect(Object.keys(r.outputs).sort()).toEqual(Object.keys(DECLARED).sort());
          expect(typeof r.outputs.model).toBe("string");
          expect(Number.isInteger(r.outputs.n)).toBe(true);
        }
      }),
      { numRuns: 400 },
    );
  });

  it("huge and deeply nested files are refused by size before they are parsed", () => {
    for (const text of [
      deep(200_000),
      "1".repeat(10_000_000),
      `{"model":"${"x".repeat(5_000)}"}`,
    ]) {
      const r = checkOutputs(new TextEncoder().encode(text), DECLARED);
      expect(r.ok).toBe(false);
      if (!r.ok) expect(r.reason).toContain(`over the ${MAX_OUTPUTS_BYTES}-byte limit`);
    }
    // Deep but small: parsed, and refused as not an object of the declared outputs.
    const r = checkOutputs(new TextEncoder().encode(deep(1_000)), DECLARED);
    expect(r).toMatchObject({ ok: false });
  });
});

describe("comment commands", () => {
  const line = fc.oneof(
    fc.string({ maxLength: 80 }),
    fc.constantFrom(
      "/relaunch",
      "/run",
      "/cancel",
      "/nope",
      "```",
      "~~~",
      "> /relaunch",
      "    /run x",
    ),
    fc
      .tuple(
        fc.constantFrom("/relaunch", "/run", "/cancel"),
        fc.array(fc.string({ maxLength: 20 }), { maxLength: 5 }),
      )
      .map(([c, args]) => [c, ...args].join(" ")),
  );

  it("arbitrary comments: commands or nothing, never a throw", () => {
    fc.assert(
      fc.property(fc.array(line, { maxLength: 30 }), (lines) => {
        const body = lines.join("\n");
        const commands = parseCommands(body);
        expect(Array.isArray(commands)).toBe(true);
        // Never more commands than lines starting with "/" after trimming.
        const slashLines = body.split(/\r?\n/).filter((l) => l.trim().startsWith("/")).length;
        expect(commands.length).toBeLessThanOrEqual(slashLines);
        for (const c of commands)
          expect(["relaunch", "run", "cancel", "unknown"]).toContain(c.kind);
      }),
      { numRuns: 500 },
    );
  });

  it("reads nothing inside fenced code or quotes, whatever is there", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.string({ maxLength: 40 }).filter((s) => !/[`~]{3}/.test(s)),
          { maxLength: 10 },
        ),
        (inner) => {
          const fenced = ["```", "/relaunch", ...inner, "```"].join("\n");
          expect(parseCommands(fenced)).toEqual([]);
          const quoted = ["> /cancel", ...inner.map((l) => `> ${l}`)].join("\n");
          expect(parseCommands(quoted)).toEqual([]);
        },
      ),
      { numRuns: 300 },
    );
  });

  it("a megabyte comment is parsed in one pass", () => {
    const body = `${"word ".repeat(200_000)}\n/relaunch abc --recover`;
    expect(parseCommands(body)).toEqual([
      { kind: "relaunch", execution: "abc", recover: true, noCache: false },
    ]);
  });
});
