/** Artifact values (core/artifacts/ref.ts) and what the cache key sees of them. */
import { describe, expect, it } from "vitest";
import { artifactProblem, keyInputs } from "../../../core/artifacts/ref.js";
import { cachePlan } from "../../../core/engine/cache-plan.js";
import type { Digest } from "../../../core/hash/digest.js";
import type { TaskSpec } from "../../../core/spec/types.js";
import { buildVersion } from "../../../core/version/build-version.js";

const A = `sha256:${"a".repeat(64)}`;
const B = `sha256:${"b".repeat(64)}`;

describe("artifact values", () => {
  it("accept exactly the documented shape", () => {
    expect(artifactProblem("file", { artifact: A, type: "file", size: 3 })).toBeNull();
    expect(
      artifactProblem("directory", { artifact: A, type: "directory", size: 3, files: 2 }),
    ).toBeNull();
    expect(artifactProblem("file", A)).toMatch(/expected a file artifact/);
    expect(artifactProblem("file", { artifact: A, type: "directory", size: 3, files: 1 })).toMatch(
      /got a directory/,
    );
    expect(artifactProblem("file", { artifact: "sha256:A", type: "file", size: 3 })).toMatch(
      /sha256/,
    );
    expect(artifactProblem("directory", { artifact: A, type: "directory", size: 3 })).toMatch(
      /files/,
    );
    expect(artifactProblem("file", { artifact: A, type: "file", size: 3, path: "/tmp" })).toMatch(
      /unknown key "path"/,
    );
  });

  it("are seen by the cache key by digest alone", () => {
    const types = { data: { type: "file" as const }, n: { type: "integer" as const } };
    expect(keyInputs(types, { data: { artifact: A, type: "file", size: 1 }, n: 2 })).toEqual({
      data: { artifact: A },
      n: 2,
    });
  });
});

describe("a task's cache key with a file input", () => {
  const spec = `version: 1
defaults: { image: img }
tasks:
  fit:
    command: [fit]
    inputs: { data: file, l2: { type: number, default: 0.1 } }
    outputs: { model: file }
    cache: true
workflows:
  w:
    inputs: { data: file }
    nodes:
      f: { task: fit, inputs: { data: "\${{ inputs.data }}" } }
`;
  const built = buildVersion(spec, [{ path: "fit.py", mode: "100644", sha: "1".repeat(40) }]);
  if (!built.ok) throw new Error(built.errors.map((e) => e.message).join("\n"));
  const task = built.version.spec.tasks.fit as TaskSpec;
  const key = (inputs: Record<string, unknown>) => {
    const cp = cachePlan(
      "github.com/a/b",
      task,
      built.version.tasks.fit?.digest as Digest,
      inputs as never,
      false,
    );
    return cp.enabled ? cp.key : null;
  };

  it("is the same for the same bytes, whatever else the value says", () => {
    expect(key({ data: { artifact: A, type: "file", size: 1 }, l2: 0.1 })).toBe(
      key({ data: { artifact: A, type: "file", size: 1 }, l2: 0.1 }),
    );
    expect(key({ data: { artifact: A, type: "file", size: 1 }, l2: 0.1 })).not.toBe(
      key({ data: { artifact: B, type: "file", size: 1 }, l2: 0.1 }),
    );
  });
});

describe("file and directory types in reprise.yaml", () => {
  const errors = (spec: string) => {
    const r = buildVersion(spec, [{ path: "x", mode: "100644", sha: "1".repeat(40) }]);
    return r.ok ? [] : r.errors.map((e) => `${e.code} ${e.message}`);
  };

  it("refuse a default for a file input", () => {
    expect(
      errors(`version: 1
defaults: { image: img }
tasks:
  t: { command: [x], inputs: { data: { type: file, default: "sha256:${"a".repeat(64)}" } } }
`),
    ).toEqual([
      expect.stringMatching(/E_TYPE .*a file input cannot have a default.*-i data=@PATH/),
    ]);
  });

  it("refuse a literal bound to a directory input", () => {
    expect(
      errors(`version: 1
defaults: { image: img }
tasks:
  t: { command: [x], inputs: { d: directory } }
workflows:
  w:
    nodes:
      n: { task: t, inputs: { d: "some/path" } }
`),
    ).toEqual([
      expect.stringMatching(
        /E_TYPE .*a directory input takes a workflow input or a node's output, not a literal/,
      ),
    ]);
  });

  it("refuse binding a file output to a directory input, and a json output to a file input", () => {
    const es = errors(`version: 1
defaults: { image: img }
tasks:
  p: { command: [x], outputs: { f: file, j: json } }
  c: { command: [x], inputs: { d: directory, g: file } }
workflows:
  w:
    nodes:
      p: { task: p }
      c: { task: c, inputs: { d: "\${{ nodes.p.outputs.f }}", g: "\${{ nodes.p.outputs.j }}" } }
`);
    expect(es).toEqual([
      expect.stringMatching(/E_TYPE .*a file cannot bind an input of type directory/),
      expect.stringMatching(/E_TYPE .*a json cannot bind an input of type file/),
    ]);
  });
});
