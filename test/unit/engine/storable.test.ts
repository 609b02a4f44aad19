import { describe, expect, it } from "vitest";
import {
  inputsEnvProblem,
  MAX_INPUT_ENV_BYTES,
  MAX_INPUTS_ENV_BYTES,
} from "../../../core/engine/input-env.js";
import { resolveWorkflowInputs } from "../../../core/engine/inputs.js";
import { checkOutputs } from "../../../core/engine/outputs.js";
import { storableText, unstorable } from "../../../core/engine/storable.js";

const bytes = (s: string) => new TextEncoder().encode(s);

describe("values the database cannot store", () => {
  it("finds U+0000 and lone surrogates in strings and keys, by path, and accepts paired surrogates", () => {
    expect(unstorable("a\u0000b", "x")).toBe("the string at x contains U+0000 (NUL)");
    expect(unstorable({ k: [1, "\udc00"] }, "x")).toBe(
      "the string at x.k[1] contains a lone surrogate U+DC00",
    );
    expect(unstorable({ "a b": { "\u0000": 1 } }, "x")).toBe(
      'the key "\\u0000" in x["a b"] contains U+0000 (NUL)',
    );
    expect(unstorable("\ud800x", "x")).toContain("U+D800");
    expect(unstorable({ emoji: "😀", text: "ok" }, "x")).toBeNull();
  });

  it("walks deep values without recursion", () => {
    let v: unknown = "\u0000";
    for (let i = 0; i < 100_000; i++) v = [v];
    expect(unstorable(v as never, "x")).toContain("U+0000");
  });

  it("makes any text storable, keeping paired surrogates", () => {
    expect(storableText("a\u0000b\ud800c😀")).toBe("a\uFFFDb\uFFFDc😀");
  });

  it("an output holding one fails the check, naming it; the raw name of an undeclared one is escaped", () => {
    const r = checkOutputs(bytes('{"x":"a\\u0000b"}'), { x: { type: "string" } });
    expect(r).toEqual({
      ok: false,
      reason: expect.stringContaining('output "x": the string at x contains U+0000 (NUL)'),
    });
    const u = checkOutputs(bytes('{"\\u0000":1}'), {});
    expect(u).toEqual({ ok: false, reason: 'undeclared output "\\u0000"' });
  });
});

describe("inputs in the task's environment", () => {
  it("refuses one value over the per-variable limit, naming the input and the file type", () => {
    expect(inputsEnvProblem({ s: "string" }, { s: "x".repeat(MAX_INPUT_ENV_BYTES) })).toBeNull();
    const p = inputsEnvProblem({ s: "string" }, { s: "x".repeat(MAX_INPUT_ENV_BYTES + 1) });
    expect(p).toContain(`input "s" is ${MAX_INPUT_ENV_BYTES + 1} bytes`);
    expect(p).toContain("pass large data as a file input");
  });

  it("counts UTF-8 bytes, JSON for other values, and the total of all inputs; artifacts are paths", () => {
    expect(
      inputsEnvProblem({ s: "string" }, { s: "é".repeat(MAX_INPUT_ENV_BYTES / 2 + 1) }),
    ).toContain('input "s"');
    const many = Object.fromEntries(
      Array.from({ length: 9 }, (_, i) => [`i${i}`, "x".repeat(MAX_INPUTS_ENV_BYTES / 8 - 1_000)]),
    );
    const types = Object.fromEntries(Object.keys(many).map((k) => [k, "string" as const]));
    expect(inputsEnvProblem(types, many)).toContain(`over the ${MAX_INPUTS_ENV_BYTES}-byte limit`);
    const big = { artifact: "sha256:x", pad: "x".repeat(MAX_INPUT_ENV_BYTES) };
    expect(inputsEnvProblem({ f: "file" }, { f: big })).toBeNull();
  });

  it("workflow inputs are refused at start for either reason, defaults included", () => {
    const r = resolveWorkflowInputs({ s: { type: "string", default: "x".repeat(200 * 1024) } }, {});
    expect(r.ok).toBe(false);
    const n = resolveWorkflowInputs({ j: { type: "json" } }, { j: { a: ["\u0000"] } });
    expect(n).toEqual({
      ok: false,
      reason: expect.stringContaining('input "j": the string at j.a[0] contains U+0000'),
    });
  });
});
