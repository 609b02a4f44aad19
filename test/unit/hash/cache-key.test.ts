import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { cacheIdentity, cacheKey } from "../../../core/hash/cache-key.js";
import type { Digest } from "../../../core/hash/digest.js";
import type { TaskSpec } from "../../../core/spec/types.js";
import { buildVersion } from "../../../core/version/build-version.js";

const REPO = "github.com/acme/ml";
const tree = [
  { path: "prep.py", mode: "100644", sha: "1".repeat(40) },
  { path: "fit.py", mode: "100644", sha: "2".repeat(40) },
];

function version(spec: string) {
  const r = buildVersion(spec, tree);
  if (!r.ok) throw new Error(r.errors.map((e) => e.message).join("\n"));
  return r.version;
}

function keyOf(spec: string, task: string, inputs: Record<string, unknown>, repo = REPO) {
  const v = version(spec);
  const t = v.spec.tasks[task] as TaskSpec;
  const identity = cacheIdentity(repo, t, v.tasks[task]?.digest as Digest);
  return cacheKey(identity, inputs as never, t.cache.ignoreInputs);
}

const SPEC = `version: 1
defaults: { image: img }
tasks:
  prep:
    command: [python, prep.py]
    sources: [prep.py]
    inputs: { dataset: string, seed: { type: integer, default: 42 } }
    outputs: { rows: integer }
    cache: { ignore_inputs: [seed] }
  fit:
    command: [python, fit.py]
    sources: [fit.py]
    inputs: { rows: integer }
    outputs: { model: string }
    cache: true
workflows:
  w:
    nodes:
      a: { task: prep, inputs: { dataset: d } }
      b: { task: fit, inputs: { rows: "\${{ nodes.a.outputs.rows }}" } }
`;

describe("cache key", () => {
  it("is the same for the same inputs in any key order", () => {
    fc.assert(
      fc.property(fc.dictionary(fc.string(), fc.jsonValue()), (inputs) => {
        const reversed = Object.fromEntries(Object.entries(inputs).reverse());
        expect(keyOf(SPEC, "fit", reversed)).toBe(keyOf(SPEC, "fit", inputs));
      }),
      { numRuns: 50 },
    );
  });

  it("differs for different inputs", () => {
    expect(keyOf(SPEC, "fit", { rows: 1 })).not.toBe(keyOf(SPEC, "fit", { rows: 2 }));
  });

  it("leaves ignore_inputs out", () => {
    expect(keyOf(SPEC, "prep", { dataset: "d", seed: 1 })).toBe(
      keyOf(SPEC, "prep", { dataset: "d", seed: 2 }),
    );
    expect(keyOf(SPEC, "prep", { dataset: "d", seed: 1 })).not.toBe(
      keyOf(SPEC, "prep", { dataset: "e", seed: 1 }),
    );
  });

  it("is scoped to one repository", () => {
    expect(keyOf(SPEC, "fit", { rows: 1 }, "github.com/other/ml")).not.toBe(
      keyOf(SPEC, "fit", { rows: 1 }),
    );
  });

  it("does not move when the task moves within the graph or is renamed", () => {
    const moved = SPEC.replace(
      "      b: { task: fit",
      "      z: { task: prep, inputs: { dataset: e } }\n      b2: { task: fit, after: [z]",
    );
    expect(keyOf(moved, "fit", { rows: 3 })).toBe(keyOf(SPEC, "fit", { rows: 3 }));
    const renamed = SPEC.replace("  fit:\n", "  train:\n").replace("task: fit", "task: train");
    expect(keyOf(renamed, "train", { rows: 3 })).toBe(keyOf(SPEC, "fit", { rows: 3 }));
  });

  it("follows the task's content by default", () => {
    const changed = SPEC.replace("[python, fit.py]", "[python3, fit.py]");
    expect(keyOf(changed, "fit", { rows: 3 })).not.toBe(keyOf(SPEC, "fit", { rows: 3 }));
  });

  it("with cache.version, follows name, version and interface only (Flyte semantics)", () => {
    const v1 = SPEC.replace("    cache: true", '    cache: { version: "1" }');
    const commandChanged = v1.replace("[python, fit.py]", "[python3, fit.py]");
    expect(keyOf(commandChanged, "fit", { rows: 3 })).toBe(keyOf(v1, "fit", { rows: 3 }));
    const bumped = v1.replace('version: "1"', 'version: "2"');
    expect(keyOf(bumped, "fit", { rows: 3 })).not.toBe(keyOf(v1, "fit", { rows: 3 }));
    const iface = v1.replace("outputs: { model: string }", "outputs: { model: json }");
    expect(keyOf(iface, "fit", { rows: 3 })).not.toBe(keyOf(v1, "fit", { rows: 3 }));
  });
});
