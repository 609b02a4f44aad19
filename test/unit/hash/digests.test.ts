import fc from "fast-check";
import picomatch from "picomatch";
import { describe, expect, it } from "vitest";
import { digest, isDigest } from "../../../core/hash/digest.js";
import { sourcesDigest, type TreeEntry, TreeIndex } from "../../../core/hash/sources.js";
import { buildVersion, type VersionContent } from "../../../core/version/build-version.js";

const sha = (n: number) => n.toString(16).padStart(40, "0");
const TREE: TreeEntry[] = [
  { path: "README.md", mode: "100644", sha: sha(1) },
  { path: "lib/util.py", mode: "100644", sha: sha(2) },
  { path: "lib/deep/more.py", mode: "100644", sha: sha(3) },
  { path: "tasks/prepare.py", mode: "100755", sha: sha(4) },
  { path: "tasks/fit.py", mode: "100644", sha: sha(5) },
  { path: ".github/workflows/ci.yml", mode: "100644", sha: sha(6) },
];

const PINNED = `python:3.12@sha256:${"b".repeat(64)}`;
const SPEC = `version: 1
defaults: { image: ${PINNED} }
tasks:
  prepare:
    command: [python, tasks/prepare.py]
    env: { MODE: fast }
    sources: [tasks/prepare.py, lib/**]
    inputs: { dataset: string }
    outputs: { rows: integer }
    retries: 1
    timeout: 10m
    resources: { cpu: 500m }
    cache: true
  fit:
    command: [python, tasks/fit.py]
    sources: [tasks/fit.py]
    inputs: { rows: integer }
    outputs: { model: string }
workflows:
  train:
    inputs: { dataset: { type: string, default: d } }
    nodes:
      a: { task: prepare, inputs: { dataset: "\${{ inputs.dataset }}" } }
      c: { task: fit, inputs: { rows: "\${{ nodes.a.outputs.rows }}" } }
`;

function build(spec: string, tree: TreeEntry[] = TREE): VersionContent {
  const r = buildVersion(spec, tree);
  if (!r.ok) throw new Error(r.errors.map((e) => `${e.code} ${e.message}`).join("\n"));
  return r.version;
}

function taskDigestOf(spec: string, task = "prepare", tree = TREE): string {
  return build(spec, tree).tasks[task]?.digest as string;
}

const BASE = taskDigestOf(SPEC);

describe("digest", () => {
  it("is sha256 of RFC 8785 canonical JSON, whatever the key order", () => {
    expect(digest({ b: 1, a: [1, "x"] })).toBe(digest({ a: [1, "x"], b: 1 }));
    expect(isDigest(digest({}))).toBe(true);
    // RFC 8785 serializes 1.0 as 1 and sorts keys by UTF-16 code units.
    expect(digest({ x: 1.0 })).toBe(digest({ x: 1 }));
  });

  it("is stable under key permutation (property)", () => {
    fc.assert(
      fc.property(fc.dictionary(fc.string(), fc.jsonValue()), (obj) => {
        const reversed = Object.fromEntries(Object.entries(obj).reverse());
        expect(digest(reversed)).toBe(digest(obj));
      }),
    );
  });
});

describe("task digest: what changes it", () => {
  it.each([
    [
      "the image",
      SPEC.replace(`defaults: { image: ${PINNED} }`, "defaults: { image: python:3.13 }"),
    ],
    ["the command", SPEC.replace("[python, tasks/prepare.py]", "[python, -O, tasks/prepare.py]")],
    ["the env", SPEC.replace("MODE: fast", "MODE: slow")],
    [
      "the workdir",
      SPEC.replace("    env: { MODE: fast }", "    env: { MODE: fast }\n    workdir: lib"),
    ],
    ["an input's type", SPEC.replace("inputs: { dataset: string }", "inputs: { dataset: json }")],
    [
      "an input's default",
      SPEC.replace(
        "inputs: { dataset: string }",
        "inputs: { dataset: { type: string, default: x } }",
      ),
    ],
    [
      "an output",
      SPEC.replace("outputs: { rows: integer }", "outputs: { rows: integer, path: string }"),
    ],
    [
      "the sources globs' coverage",
      SPEC.replace("[tasks/prepare.py, lib/**]", "[tasks/prepare.py]"),
    ],
  ])("a change to %s changes it", (_, changed) => {
    expect(taskDigestOf(changed)).not.toBe(BASE);
  });

  it("a change to a file matched by sources changes it", () => {
    const tree = TREE.map((e) => (e.path === "lib/deep/more.py" ? { ...e, sha: sha(99) } : e));
    expect(taskDigestOf(SPEC, "prepare", tree)).not.toBe(BASE);
    const modeChange = TREE.map((e) =>
      e.path === "tasks/prepare.py" ? { ...e, mode: "100644" } : e,
    );
    expect(taskDigestOf(SPEC, "prepare", modeChange)).not.toBe(BASE);
  });
});

describe("task digest: what does not change it", () => {
  it.each([
    [
      "the name",
      SPEC.replace("  prepare:\n", "  prep:\n").replace("task: prepare", "task: prep"),
      "prep",
    ],
    ["retries", SPEC.replace("retries: 1", "retries: 5"), "prepare"],
    ["the timeout", SPEC.replace("timeout: 10m", "timeout: 2h"), "prepare"],
    [
      "resources",
      SPEC.replace("resources: { cpu: 500m }", "resources: { cpu: 2, memory: 1Gi }"),
      "prepare",
    ],
    [
      "the disk limit",
      SPEC.replace("resources: { cpu: 500m }", "resources: { cpu: 500m, disk: 10Gi }"),
      "prepare",
    ],
    ["cache settings", SPEC.replace("cache: true", "cache: { ttl: 1d }"), "prepare"],
    [
      "secrets",
      SPEC.replace(
        "    cache: true",
        "    cache: true\n    secrets: [{ env: TOKEN, secret: s, key: k }]",
      ),
      "prepare",
    ],
    ["key order and YAML style", reorder(SPEC), "prepare"],
    [
      "the short vs long form of a parameter",
      SPEC.replace("{ dataset: string }", "{ dataset: { type: string } }"),
      "prepare",
    ],
    [
      "the order of sources globs",
      SPEC.replace("[tasks/prepare.py, lib/**]", "[lib/**, ./tasks/prepare.py, lib/**]"),
      "prepare",
    ],
  ])("a change to %s leaves it alone", (_, changed, task) => {
    expect(taskDigestOf(changed, task)).toBe(BASE);
  });

  it("a change to a file outside sources leaves it alone", () => {
    const tree = TREE.map((e) =>
      e.path === "tasks/fit.py" || e.path === "README.md" ? { ...e, sha: sha(77) } : e,
    );
    expect(taskDigestOf(SPEC, "prepare", tree)).toBe(BASE);
    expect(taskDigestOf(SPEC, "fit", tree)).not.toBe(taskDigestOf(SPEC, "fit"));
  });

  it("a file added outside sources leaves it alone, inside changes it", () => {
    const outside = [...TREE, { path: "docs/new.md", mode: "100644", sha: sha(50) }];
    const inside = [...TREE, { path: "lib/new.py", mode: "100644", sha: sha(51) }];
    expect(taskDigestOf(SPEC, "prepare", outside)).toBe(BASE);
    expect(taskDigestOf(SPEC, "prepare", inside)).not.toBe(BASE);
  });

  it("the order of the tree listing does not matter", () => {
    expect(taskDigestOf(SPEC, "prepare", [...TREE].reverse())).toBe(BASE);
  });
});

/** The same spec in block style, keys in another order. */
function reorder(_spec: string): string {
  return `workflows:
  train:
    nodes:
      c:
        inputs:
          rows: "\${{ nodes.a.outputs.rows }}"
        task: fit
      a: { inputs: { dataset: "\${{ inputs.dataset }}" }, task: prepare }
    inputs:
      dataset: { default: d, type: string }
tasks:
  fit: { outputs: { model: string }, inputs: { rows: integer }, sources: [tasks/fit.py], command: [python, tasks/fit.py] }
  prepare:
    cache:    true
    outputs:
      rows: integer
    inputs: { dataset: string }
    sources:
      - lib/**
      - tasks/prepare.py
    env:
      MODE: "fast"
    command:
      - python
      - tasks/prepare.py
    retries: 1
    timeout: 10m
    resources: { cpu: 500m }
defaults: { image: "${PINNED}" }
version: 1
`;
}

describe("workflow and spec digests", () => {
  it("ignore key order, and triggers", () => {
    const a = build(SPEC);
    const b = build(reorder(SPEC));
    expect(b.workflows).toEqual(a.workflows);
    expect(b.specDigest).toBe(a.specDigest);
    const withTriggers = build(
      SPEC.replace("    nodes:\n", "    on: { push: { branches: [main] } }\n    nodes:\n"),
    );
    expect(withTriggers.specDigest).toBe(a.specDigest);
  });

  it("change when a binding, an edge, or a task under a node changes", () => {
    const a = build(SPEC);
    const after = build(SPEC.replace("task: fit, inputs", "task: fit, after: [a], inputs"));
    expect(after.workflows.train).toBe(a.workflows.train); // `after: [a]` duplicates the data edge...
    const edge = build(SPEC.replace('"${{ nodes.a.outputs.rows }}" }', "3 }, after: [a]"));
    expect(edge.workflows.train).not.toBe(a.workflows.train);
    const fit = build(SPEC.replace("[python, tasks/fit.py]", "[python3, tasks/fit.py]"));
    expect(fit.workflows.train).not.toBe(a.workflows.train);
    expect(fit.tasks.prepare?.digest).toBe(a.tasks.prepare?.digest);
  });
});

describe("sources matching", () => {
  const index = new TreeIndex(TREE);
  const paths = (globs: string[]) => index.match(globs).map((e) => e.path);

  it("matches plain files, directories, globs and dotfiles; excludes with !", () => {
    expect(paths(["tasks/fit.py"])).toEqual(["tasks/fit.py"]);
    expect(paths(["lib"])).toEqual(["lib/deep/more.py", "lib/util.py"]);
    expect(paths(["lib/*.py"])).toEqual(["lib/util.py"]);
    expect(paths(["**/*.py", "!lib/deep/**"])).toEqual([
      "lib/util.py",
      "tasks/fit.py",
      "tasks/prepare.py",
    ]);
    expect(paths(["**"])).toHaveLength(TREE.length);
    expect(paths([".github/**"])).toEqual([".github/workflows/ci.yml"]);
    expect(paths(["nothing/**", "tasks/nope.py"])).toEqual([]);
  });

  it("agrees with testing every path against picomatch (property)", () => {
    const segment = fc.constantFrom("a", "b", "lib", "x.py", "y.md", ".hidden");
    const path = fc.array(segment, { minLength: 1, maxLength: 4 }).map((s) => s.join("/"));
    const glob = fc
      .array(fc.constantFrom("a", "b", "lib", "*", "**", "*.py", "x.py", "{a,b}"), {
        minLength: 1,
        maxLength: 3,
      })
      .map((s) => s.join("/"));
    fc.assert(
      fc.property(fc.uniqueArray(path, { maxLength: 30 }), glob, (all, g) => {
        // A git tree cannot hold both a file "x" and a file "x/y".
        const ps = all.filter((p) => !all.some((q) => q.startsWith(`${p}/`)));
        const entries = ps.map((p, i) => ({ path: p, mode: "100644", sha: sha(i) }));
        const got = new TreeIndex(entries).match([g]).map((e) => e.path);
        const isMatch = picomatch(g, { dot: true });
        const scan = picomatch.scan(g);
        const expected = ps
          .filter((p) => isMatch(p) || (!scan.isGlob && p.startsWith(`${g}/`)))
          .sort();
        expect(got).toEqual(expected);
      }),
      { numRuns: 300 },
    );
  });

  it("digests path, mode and object id of the matched entries", () => {
    const one = sourcesDigest([{ path: "a", mode: "100644", sha: sha(1) }]);
    expect(sourcesDigest([{ path: "a", mode: "100755", sha: sha(1) }])).not.toBe(one);
    expect(sourcesDigest([{ path: "b", mode: "100644", sha: sha(1) }])).not.toBe(one);
    expect(sourcesDigest([{ path: "a", mode: "100644", sha: sha(2) }])).not.toBe(one);
  });
});
