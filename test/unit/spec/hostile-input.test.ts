import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { ERROR_CODES, WARNING_CODES } from "../../../core/spec/diagnostics.js";
import { parseSpec } from "../../../core/spec/parse-spec.js";

function firstError(input: string | Uint8Array) {
  const r = parseSpec(input);
  if (r.ok) throw new Error("expected an error");
  return r.errors[0];
}

const VALID = `version: 1
defaults: { image: node:20 }
tasks:
  a: { command: [node, a.mjs], inputs: { n: { type: integer, default: 1 } }, outputs: { x: number }, cache: true, sources: [a.mjs] }
  b: { command: [node, b.mjs], inputs: { x: number }, outputs: { y: string } }
workflows:
  w:
    nodes:
      a: { task: a }
      b: { task: b, inputs: { x: "\${{ nodes.a.outputs.x }}" } }
    outputs: { y: "\${{ nodes.b.outputs.y }}" }
`;

describe("hostile input", () => {
  it("refuses a billion-laughs alias bomb", () => {
    const lines = ["version: 1", "a: &a [x, x, x, x, x, x, x, x, x]"];
    for (let i = 1; i < 9; i++) {
      const prev = String.fromCharCode(96 + i);
      const cur = String.fromCharCode(97 + i);
      lines.push(`${cur}: &${cur} [${Array(9).fill(`*${prev}`).join(", ")}]`);
    }
    expect(firstError(lines.join("\n"))).toMatchObject({ code: "E_LIMIT" });
  });

  it.each([
    ["flow sequences", (n: number) => `tasks: ${"[".repeat(n)}${"]".repeat(n)}`],
    ["flow mappings", (n: number) => `tasks: ${"{a: ".repeat(n)}1${"}".repeat(n)}`],
    [
      "block mappings",
      (n: number) => Array.from({ length: n }, (_, i) => `${" ".repeat(i)}k:`).join("\n"),
    ],
  ])("refuses deeply nested %s without crashing", (_, make) => {
    for (const depth of [65, 1_000, 10_000]) {
      const text = make(depth);
      if (text.length > 1024 * 1024) continue;
      expect(firstError(text)).toMatchObject({ code: "E_LIMIT" });
    }
  });

  it("reads a sequence of 200,000 items without overflowing the stack", () => {
    const items = Array(200_000).fill("1").join(",");
    // As an unknown key: an ordinary error, not a RangeError out of the parser.
    expect(firstError(`version: 1\ntasks: {}\nworkflows: {}\nx: [${items}]\n`)).toMatchObject({
      code: "E_UNKNOWN_KEY",
    });
    // As a json input's default: a spec that is valid, and keeps every item.
    const r = parseSpec(
      VALID.replace(
        "{ n: { type: integer, default: 1 } }",
        `{ big: { type: json, default: [${items}] } }`,
      ),
    );
    if (!r.ok) throw new Error(JSON.stringify(r.errors));
    expect(r.spec.tasks.a?.inputs.big?.default).toHaveLength(200_000);
  });

  it("accepts nesting up to the limit", () => {
    const r = parseSpec(
      `version: 1\ntasks:\n  t:\n    image: x\n    command: [x]\n    env: { A: "${"[".repeat(10)}" }\n`,
    );
    expect(r.ok).toBe(true);
  });

  it("reports bytes that are not UTF-8 with their position", () => {
    const bytes = new Uint8Array([
      ...new TextEncoder().encode("version: 1\ntasks:\n  a"),
      0xff,
      0x3a,
      0x0a,
    ]);
    expect(firstError(bytes)).toMatchObject({ code: "E_ENCODING", line: 3, col: 4 });
    for (const bad of [
      [0xc0, 0x80],
      [0xed, 0xa0, 0x80],
      [0xf4, 0x90, 0x80, 0x80],
      [0xe2, 0x82],
    ]) {
      expect(firstError(new Uint8Array([0x61, ...bad]))).toMatchObject({
        code: "E_ENCODING",
        col: 2,
      });
    }
  });

  it("reports duplicate keys at the second occurrence", () => {
    const e = firstError(
      "version: 1\ntasks:\n  a: { image: x, command: [x] }\n  a: { image: y, command: [y] }\n",
    );
    expect(e).toMatchObject({ code: "E_DUPLICATE_KEY", line: 4, col: 3 });
  });

  it("refuses several documents in one file", () => {
    expect(firstError("version: 1\n---\nversion: 1\n")).toMatchObject({ code: "E_YAML", line: 2 });
  });

  it("handles a huge scalar without trouble", () => {
    const e = firstError(`version: 1\ntasks: "${"x".repeat(1_000_000)}"\n`);
    expect(e).toMatchObject({ code: "E_TYPE", line: 2 });
  });

  it("refuses unknown tags and unresolvable aliases cleanly", () => {
    expect(firstError("version: 1\ntasks: !custom {}\n")?.code).toBe("E_YAML");
    expect(firstError("version: 1\ntasks: *nope\n")?.code).toBe("E_YAML");
  });

  it("keeps every diagnostic's position inside the file", () => {
    const text = "version: 1\ntasks:\n  t: { image: x, command: [x], inputs: { a: bad } }\n";
    const r = parseSpec(text);
    expect(r.ok).toBe(false);
    if (!r.ok) for (const e of r.errors) expect(e.line).toBeLessThanOrEqual(3);
  });
});

const CODES = new Set<string>([...ERROR_CODES, ...WARNING_CODES]);

function assertWellFormed(input: string | Uint8Array): void {
  const r = parseSpec(input);
  const all = r.ok ? r.warnings : [...r.errors, ...r.warnings];
  if (!r.ok) expect(r.errors.length).toBeGreaterThan(0);
  for (const d of all) {
    expect(CODES.has(d.code)).toBe(true);
    expect(d.line).toBeGreaterThanOrEqual(1);
    expect(d.col).toBeGreaterThanOrEqual(1);
    expect(d.message.length).toBeGreaterThan(0);
  }
}

describe("properties: any input yields a spec or errors, never an exception", () => {
  it("arbitrary strings", () => {
    fc.assert(fc.property(fc.string({ unit: "binary", maxLength: 400 }), assertWellFormed), {
      numRuns: 400,
    });
  });

  it("arbitrary bytes", () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 400 }), assertWellFormed), { numRuns: 400 });
  });

  it("arbitrary YAML-shaped documents", () => {
    const value = fc.letrec((tie) => ({
      node: fc.oneof(
        { depthSize: "small", withCrossShrink: true },
        fc.constantFrom(
          null,
          true,
          1,
          1.5,
          "x",
          "${{ inputs.a }}",
          "${{ nodes.a.outputs.x }}",
          "integer",
          "**",
        ),
        fc.string({ maxLength: 8 }),
        fc.array(tie("node"), { maxLength: 4 }),
        fc.dictionary(
          fc.constantFrom(
            "version",
            "tasks",
            "workflows",
            "nodes",
            "task",
            "inputs",
            "outputs",
            "image",
            "command",
            "a",
            "b",
            "cache",
            "after",
            "on",
            "type",
            "default",
          ),
          tie("node"),
          { maxKeys: 5 },
        ),
      ),
    })).node;
    fc.assert(
      fc.property(value, (v) =>
        assertWellFormed(
          stringify({
            version: 1,
            ...(typeof v === "object" && v && !Array.isArray(v) ? v : { tasks: v }),
          }),
        ),
      ),
      { numRuns: 500 },
    );
  });

  it("mutations of a valid spec", () => {
    const edit = fc.record({
      at: fc.nat({ max: VALID.length }),
      remove: fc.nat({ max: 12 }),
      insert: fc.string({
        maxLength: 6,
        unit: fc.constantFrom(
          ":",
          " ",
          "\n",
          "{",
          "}",
          "[",
          "]",
          "-",
          "&a",
          "*a",
          "$",
          "'",
          '"',
          "a",
          "1",
          "#",
          "!",
        ),
      }),
    });
    fc.assert(
      fc.property(fc.array(edit, { minLength: 1, maxLength: 3 }), (edits) => {
        let text = VALID;
        for (const e of edits) text = text.slice(0, e.at) + e.insert + text.slice(e.at + e.remove);
        assertWellFormed(text);
      }),
      { numRuns: 500 },
    );
  });
});
