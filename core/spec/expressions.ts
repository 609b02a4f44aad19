/** `${{ inputs.X }}` and `${{ nodes.ID.outputs.Y }}`: the only two expressions a binding may hold. */
import type { Binding, JsonValue } from "./types.js";

const WHOLE = /^\$\{\{\s*(.*?)\s*\}\}$/s;
const INPUT_REF = /^inputs\.([A-Za-z_][A-Za-z0-9_-]*)$/;
const OUTPUT_REF = /^nodes\.([a-z][a-z0-9-]*)\.outputs\.([A-Za-z_][A-Za-z0-9_-]*)$/;

export type ParsedBinding = { ok: true; binding: Binding } | { ok: false; reason: string };

export function parseBinding(value: JsonValue): ParsedBinding {
  if (typeof value !== "string" || !value.includes("${{")) {
    return { ok: true, binding: { kind: "literal", value } };
  }
  const whole = WHOLE.exec(value);
  if (!whole || (value.match(/\$\{\{/g) ?? []).length > 1) {
    return {
      ok: false,
      reason:
        "a binding is a literal or exactly one ${{ inputs.NAME }} / ${{ nodes.ID.outputs.NAME }}; string interpolation is not supported",
    };
  }
  const expr = whole[1] ?? "";
  const input = INPUT_REF.exec(expr);
  if (input) return { ok: true, binding: { kind: "input", input: input[1] as string } };
  const output = OUTPUT_REF.exec(expr);
  if (output) {
    return {
      ok: true,
      binding: { kind: "output", node: output[1] as string, output: output[2] as string },
    };
  }
  return {
    ok: false,
    reason: `"${expr}" is not a reference; write inputs.NAME or nodes.ID.outputs.NAME`,
  };
}
