/**
 * Validation of what a task wrote to REPRISE_OUTPUTS (docs/design.md section 3), shared by every
 * executor: a JSON object with exactly the declared outputs, each of its declared type, at most
 * 4,096 bytes (the Kubernetes termination-message limit), and storable (storable.ts).
 */
import { typeMismatch } from "../spec/reader.js";
import type { JsonValue, OutputDecl } from "../spec/types.js";
import { UNSTORABLE_HINT, unstorable } from "./storable.js";

export const MAX_OUTPUTS_BYTES = 4_096;

export type OutputsCheck =
  | { ok: true; outputs: Record<string, JsonValue> }
  | { ok: false; reason: string };

/** Why outputs of `bytes` are refused; executors that check the size before reading say the same. */
export function outputsTooLarge(bytes: number): string {
  return `outputs are ${bytes} bytes, over the ${MAX_OUTPUTS_BYTES}-byte limit: write large data to storage and output its URI`;
}

export function checkOutputs(
  raw: Uint8Array | null,
  declared: Readonly<Record<string, OutputDecl>>,
): OutputsCheck {
  const names = Object.keys(declared);
  if (raw === null) {
    return names.length === 0
      ? { ok: true, outputs: {} }
      : {
          ok: false,
          reason: `no outputs written: write a JSON object with ${names.join(", ")} to $REPRISE_OUTPUTS`,
        };
  }
  if (raw.byteLength > MAX_OUTPUTS_BYTES)
    return { ok: false, reason: outputsTooLarge(raw.byteLength) };
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(raw));
  } catch (e) {
    return { ok: false, reason: `outputs are not valid UTF-8 JSON: ${(e as Error).message}` };
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return { ok: false, reason: "outputs must be a JSON object of the declared outputs" };
  }
  const obj = value as Record<string, unknown>;
  const problems: string[] = [];
  for (const name of names) {
    const decl = declared[name] as OutputDecl;
    if (!(name in obj)) problems.push(`missing output "${name}"`);
    else {
      const mismatch = typeMismatch(decl.type, obj[name]);
      const bad = mismatch ? null : unstorable(obj[name] as JsonValue, name);
      if (mismatch) problems.push(`output "${name}": ${mismatch}`);
      else if (bad) problems.push(`output "${name}": ${bad}, ${UNSTORABLE_HINT}`);
    }
  }
  // JSON.stringify: a name may hold characters the failure's message could not be stored with.
  for (const name of Object.keys(obj))
    if (!(name in declared)) problems.push(`undeclared output ${JSON.stringify(name)}`);
  if (problems.length > 0) return { ok: false, reason: problems.join("; ") };
  return { ok: true, outputs: obj as Record<string, JsonValue> };
}
