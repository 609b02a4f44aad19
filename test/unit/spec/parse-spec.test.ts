import { describe, expect, it } from "vitest";
import { type Diagnostic, formatDiagnostic } from "../../../core/spec/diagnostics.js";
import { parseSpec } from "../../../core/spec/parse-spec.js";

const PINNED = `python:3.12-slim@sha256:${"a".repeat(64)}`;

/** The example of docs/design.md section 2, digest-pinned so that it has no warnings. */
const DESIGN_EXAMPLE = `version: 1
defaults:
  image: ${PINNED}
  retries: 0
  timeout: 1h
  resources: { cpu: 500m, memory: 512Mi }
tasks:
  prepare:
    image: ${PINNED}
    command: [python, tasks/prepare.py]
    env: { MODE: fast }
    workdir: .
    sources: [tasks/prepare.py, lib/**]
    inputs:  { dataset: string, seed: { type: integer, default: 42 } }
    outputs: { rows: integer, path: string }
    cache: { version: "2", ignore_inputs: [seed], ttl: 30d }
    retries: 2
    timeout: 10m
    resources: { cpu: "1", memory: 1Gi }
    secrets:
      - { env: AWS_ACCESS_KEY_ID, secret: aws-creds, key: access_key_id }
  featurize:
    command: [python, tasks/featurize.py]
    sources: [tasks/featurize.py]
    inputs: { path: string }
    outputs: { features: string }
  fit:
    command: [python, tasks/fit.py]
    sources: [tasks/fit.py]
    inputs: { rows: number }
    outputs: { model: string }
workflows:
  train:
    inputs: { dataset: { type: string, default: s3://bucket/sample } }
    nodes:
      a: { task: prepare, inputs: { dataset: "\${{ inputs.dataset }}" } }
      b: { task: featurize, inputs: { path: "\${{ nodes.a.outputs.path }}" } }
      c: { task: fit, inputs: { rows: "\${{ nodes.a.outputs.rows }}" }, after: [b] }
    outputs: { model: "\${{ nodes.c.outputs.model }}" }
    on:
      push: { branches: [main] }
      pull_request: { branches: [main] }
      schedule: [{ cron: "0 3 * * *", inputs: { dataset: s3://bucket/daily } }]
`;

function errorsOf(text: string | Uint8Array): Diagnostic[] {
  const r = parseSpec(text);
  if (r.ok) throw new Error("expected errors, got a valid spec");
  return r.errors;
}

function codes(text: string): string[] {
  return errorsOf(text).map((e) => e.code);
}

/** A one-task spec with `extra` lines appended to the task (indented four spaces). */
function oneTask(extra: string, head = "command: [run]"): string {
  return `version: 1\ndefaults: { image: ${PINNED} }\ntasks:\n  t:\n    ${head}\n${extra
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => `    ${l}`)
    .join("\n")}\n`;
}

describe("parseSpec on valid input", () => {
  it("accepts the example of docs/design.md and applies defaults", () => {
    const r = parseSpec(DESIGN_EXAMPLE);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.warnings).toEqual([]);
    const { prepare, fit } = r.spec.tasks;
    expect(prepare?.retries).toBe(2);
    expect(prepare?.timeoutSeconds).toBe(600);
    expect(prepare?.cache).toEqual({
      enabled: true,
      version: "2",
      ignoreInputs: ["seed"],
      ttlSeconds: 30 * 86_400,
    });
    expect(prepare?.inputs).toEqual({
      dataset: { type: "string" },
      seed: { type: "integer", default: 42 },
    });
    expect(prepare?.secrets).toEqual([
      { env: "AWS_ACCESS_KEY_ID", secret: "aws-creds", key: "access_key_id" },
    ]);
    expect(fit?.image).toBe(PINNED);
    expect(fit?.timeoutSeconds).toBe(3600);
    expect(fit?.resources).toEqual({ cpu: "500m", memory: "512Mi", disk: null });
    expect(fit?.cache.enabled).toBe(false);
    expect(fit?.workdir).toBe(".");
    const train = r.spec.workflows.train;
    expect(train?.nodes.c).toEqual({
      id: "c",
      task: "fit",
      inputs: { rows: { kind: "output", node: "a", output: "rows" } },
      after: ["b"],
    });
    expect(train?.outputs.model).toEqual({ kind: "output", node: "c", output: "model" });
    expect(train?.on.push).toEqual({ branches: ["main"], inputs: {} });
    expect(train?.on.schedule).toEqual([
      { cron: "0 3 * * *", inputs: { dataset: "s3://bucket/daily" } },
    ]);
  });

  it("treats short and long forms of a parameter alike", () => {
    const short = parseSpec(oneTask("inputs: { x: integer }"));
    const long = parseSpec(oneTask("inputs: { x: { type: integer } }"));
    expect(short.ok && long.ok).toBe(true);
    if (short.ok && long.ok) expect(short.spec).toEqual(long.spec);
  });

  it("defaults sources to the whole tree and normalizes paths", () => {
    const r = parseSpec(oneTask("workdir: ./jobs/\nsources: [./lib/**, b.py, b.py]"));
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.spec.tasks.t?.workdir).toBe("jobs");
    expect(r.spec.tasks.t?.sources).toEqual(["b.py", "lib/**"]);
    const d = parseSpec(oneTask(""));
    expect(d.ok && d.spec.tasks.t?.sources).toEqual(["**"]);
  });

  it("accepts bytes with a BOM and a literal-only binding", () => {
    const text = `version: 1
tasks:
  t: { image: ${PINNED}, command: [x], inputs: { n: number, j: json } }
workflows:
  w: { nodes: { a: { task: t, inputs: { n: 3, j: { any: [1, "two"] } } } } }
`;
    const r = parseSpec(new Uint8Array([0xef, 0xbb, 0xbf, ...new TextEncoder().encode(text)]));
    expect(r.ok).toBe(true);
    if (r.ok)
      expect(r.spec.workflows.w?.nodes.a?.inputs.j).toEqual({
        kind: "literal",
        value: { any: [1, "two"] },
      });
  });

  it("lets an integer output bind a number input, and anything bind json", () => {
    const text = `version: 1
defaults: { image: ${PINNED} }
tasks:
  p: { command: [x], outputs: { n: integer, s: string } }
  q: { command: [x], inputs: { f: number, j: json } }
workflows:
  w:
    nodes:
      a: { task: p }
      b: { task: q, inputs: { f: "\${{ nodes.a.outputs.n }}", j: "\${{ nodes.a.outputs.s }}" } }
`;
    expect(parseSpec(text).ok).toBe(true);
  });
});

describe("resources.disk", () => {
  const diskOf = (text: string) => {
    const r = parseSpec(text);
    if (!r.ok) throw new Error(r.errors.map((e) => formatDiagnostic(e)).join("\n"));
    return r.spec.tasks.t?.resources.disk;
  };

  it.each([
    ["10Gi", "10Gi"],
    ["500Mi", "500Mi"],
    ["1.5Gi", "1.5Gi"],
    ["2G", "2G"],
    ['"+1Ti"', "1Ti"],
    ["1073741824", "1073741824"],
  ])("takes the quantity %s", (written, disk) => {
    expect(diskOf(oneTask(`resources: { disk: ${written} }`))).toBe(disk);
  });

  it("defaults to none, comes from defaults, and a task's own replaces it alone", () => {
    expect(diskOf(oneTask("resources: { cpu: 1 }"))).toBeNull();
    const withDefault = (task: string) =>
      `version: 1\ndefaults: { image: ${PINNED}, resources: { memory: 1Gi, disk: 5Gi } }\ntasks:\n  t: { command: [run]${task} }\n`;
    expect(diskOf(withDefault(""))).toBe("5Gi");
    const r = parseSpec(withDefault(", resources: { disk: 50Gi }"));
    expect(r.ok && r.spec.tasks.t?.resources).toEqual({ cpu: null, memory: "1Gi", disk: "50Gi" });
  });

  it.each([
    [
      "lots",
      'reprise.yaml:6:24: E_QUANTITY task "t": resources.disk: the string "lots" is not a positive Kubernetes quantity (e.g. 10Gi or 500Mi)',
    ],
    [
      "0Gi",
      'reprise.yaml:6:24: E_QUANTITY task "t": resources.disk: the string "0Gi" is not a positive Kubernetes quantity (e.g. 10Gi or 500Mi)',
    ],
    [
      "-1Gi",
      'reprise.yaml:6:24: E_QUANTITY task "t": resources.disk: the string "-1Gi" is not a positive Kubernetes quantity (e.g. 10Gi or 500Mi)',
    ],
    [
      "10GB",
      'reprise.yaml:6:24: E_QUANTITY task "t": resources.disk: the string "10GB" is not a positive Kubernetes quantity (e.g. 10Gi or 500Mi)',
    ],
    [
      "500m",
      'reprise.yaml:6:24: E_QUANTITY task "t": resources.disk: 500m is 500 thousandths of a byte (m is milli); write Mi (mebibytes) or M (megabytes), e.g. 500Mi',
    ],
  ])("refuses %s at the value, saying what to write", (written, expected) => {
    const errors = errorsOf(oneTask(`resources: { disk: ${written} }`));
    expect(errors.map((e) => formatDiagnostic(e))).toEqual([expected]);
  });

  it("refuses a bad disk in defaults at its position, and an unknown resource key", () => {
    const text = `version: 1\ndefaults:\n  image: ${PINNED}\n  resources: { disk: [10Gi] }\ntasks:\n  t: { command: [run], resources: { disc: 1Gi } }\n`;
    expect(errorsOf(text).map((e) => [e.code, e.line, e.col])).toEqual([
      ["E_QUANTITY", 4, 22],
      ["E_UNKNOWN_KEY", 6, 37],
    ]);
    expect(errorsOf(text)[1]?.message).toContain('did you mean "disk"?');
  });
});

describe("parseSpec errors", () => {
  it("formats each error as reprise.yaml:LINE:COL: CODE message, at the offending node", () => {
    const errors = errorsOf(oneTask("retries: 11\ntimeout: soon"));
    expect(errors.map((e) => formatDiagnostic(e))).toEqual([
      'reprise.yaml:6:14: E_VALUE task "t": retries must be between 0 and 10, got 11',
      'reprise.yaml:7:14: E_DURATION task "t": timeout: the string "soon" is not a duration; write e.g. 90s, 10m, 1h30m, 7d, or whole seconds',
    ]);
  });

  it("collects every error rather than stopping at the first", () => {
    const text = `version: 1
tasks:
  a: { image: ${PINNED}, command: [x], bogus: 1 }
  b: { image: ${PINNED}, command: x y }
workflows:
  w: { nodes: { n: { task: nope } } }
`;
    expect(codes(text)).toEqual(["E_UNKNOWN_KEY", "E_TYPE", "E_UNKNOWN_TASK"]);
  });

  it("reports unknown keys at the key, with a suggestion", () => {
    const [e] = errorsOf(oneTask("comand: [y]"));
    expect(e).toMatchObject({ code: "E_UNKNOWN_KEY", line: 6, col: 5 });
    expect(e?.message).toContain('did you mean "command"?');
  });

  it.each([
    ["a missing version", "tasks: {}\n", "E_REQUIRED", 1],
    ["an unsupported version", "version: 2\n", "E_VALUE", 1],
    ["a top-level list", "- 1\n", "E_TYPE", 1],
    ["an empty document", "", "E_YAML", 1],
    [
      "a bad task name",
      "version: 1\ntasks:\n  Bad_Name: { image: x, command: [x] }\n",
      "E_NAME",
      3,
    ],
  ])("rejects %s", (_, text, code, line) => {
    const [e] = errorsOf(text);
    expect(e).toMatchObject({ code, line });
  });

  it.each([
    ["a task without image", "version: 1\ntasks:\n  t: { command: [x] }\n", "E_REQUIRED"],
    ["a task without command", `version: 1\ntasks:\n  t: { image: ${PINNED} }\n`, "E_REQUIRED"],
    ["a command given as a string", oneTask("", "command: python run.py"), "E_TYPE"],
    ["an empty command", oneTask("", "command: []"), "E_VALUE"],
    ["a number in command", oneTask("", "command: [sleep, 5]"), "E_TYPE"],
    ["a non-string env value", oneTask("env: { N: 5 }"), "E_TYPE"],
    ["a reserved env name", oneTask("env: { REPRISE_X: a }"), "E_NAME"],
    ["an unknown type", oneTask("inputs: { x: float }"), "E_TYPE"],
    [
      "a default of the wrong type",
      oneTask("inputs: { x: { type: integer, default: 1.5 } }"),
      "E_TYPE",
    ],
    ["an infinite default", oneTask("inputs: { x: { type: number, default: .inf } }"), "E_TYPE"],
    ["inputs colliding as env vars", oneTask("inputs: { a-b: string, a_b: string }"), "E_NAME"],
    ["an absolute workdir", oneTask("workdir: /etc"), "E_PATH"],
    ["a workdir climbing out", oneTask("workdir: a/../../b"), "E_PATH"],
    ["a sources glob climbing out", oneTask("sources: [../secrets/**]"), "E_PATH"],
    ["an absolute sources glob", oneTask("sources: [/etc/passwd]"), "E_PATH"],
    ["empty sources", oneTask("sources: []"), "E_SOURCES_EMPTY"],
    ["sources with only exclusions", oneTask('sources: ["!docs/**"]'), "E_SOURCES_EMPTY"],
    ["a bad duration", oneTask("timeout: 10 minutes"), "E_DURATION"],
    ["a zero duration", oneTask("timeout: 0s"), "E_DURATION"],
    ["a timeout over a week", oneTask("timeout: 8d"), "E_DURATION"],
    ["a bad cpu quantity", oneTask("resources: { cpu: lots }"), "E_QUANTITY"],
    ["a zero memory quantity", oneTask("resources: { memory: 0Mi }"), "E_QUANTITY"],
    ["retries out of range", oneTask("retries: -1"), "E_VALUE"],
    [
      "ignore_inputs naming no input",
      oneTask("inputs: { a: string }\ncache: { ignore_inputs: [b] }"),
      "E_UNKNOWN_INPUT",
    ],
    ["a bad cache ttl", oneTask("cache: { ttl: forever }"), "E_DURATION"],
    ["a secret without key", oneTask("secrets: [{ env: A, secret: s }]"), "E_REQUIRED"],
    [
      "a secret with a bad name",
      oneTask("secrets: [{ env: A, secret: Not_DNS, key: k }]"),
      "E_NAME",
    ],
    [
      "a secret shadowing env",
      oneTask("env: { A: x }\nsecrets: [{ env: A, secret: s, key: k }]"),
      "E_NAME",
    ],
  ])("rejects %s", (_, text, code) => {
    expect(codes(text)).toContain(code);
  });

  it("accepts the forms those checks allow", () => {
    const ok = oneTask(
      "timeout: 1h30m\nresources: { cpu: 1, memory: 4Gi }\nretries: 10\ncache: { version: 3, ttl: 86400 }\nsources: [src/**, '!src/**/*.md']",
    );
    const r = parseSpec(ok);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.spec.tasks.t).toMatchObject({
      timeoutSeconds: 5400,
      resources: { cpu: "1", memory: "4Gi" },
      retries: 10,
      cache: { enabled: true, version: "3", ttlSeconds: 86_400 },
      sources: ["!src/**/*.md", "src/**"],
    });
  });
});

/** A workflow over two tasks p (outputs n: integer, s: string) and q (inputs f: number). */
function graph(nodes: string, extra = ""): string {
  return `version: 1
defaults: { image: ${PINNED} }
tasks:
  p: { command: [x], inputs: { k: { type: integer, default: 1 } }, outputs: { n: integer, s: string } }
  q: { command: [x], inputs: { f: number }, outputs: { r: boolean } }
workflows:
  w:
    inputs: { x: string, y: { type: integer, default: 2 } }
    nodes:
${nodes
  .split("\n")
  .filter((l) => l !== "")
  .map((l) => `      ${l}`)
  .join("\n")}
${extra}`;
}

describe("workflow checks", () => {
  it.each([
    ["an unknown task", "a: { task: pp }", "E_UNKNOWN_TASK"],
    [
      "an unknown node in a reference",
      'a: { task: q, inputs: { f: "${{ nodes.zz.outputs.n }}" } }',
      "E_UNKNOWN_NODE",
    ],
    ["an unknown node in after", "a: { task: p, after: [zz] }", "E_UNKNOWN_NODE"],
    [
      "an unknown output",
      'a: { task: p }\nb: { task: q, inputs: { f: "${{ nodes.a.outputs.nope }}" } }',
      "E_UNKNOWN_OUTPUT",
    ],
    [
      "an unknown workflow input",
      'a: { task: p, inputs: { k: "${{ inputs.nope }}" } }',
      "E_UNKNOWN_INPUT",
    ],
    [
      "a binding to an input the task lacks",
      "a: { task: p, inputs: { zz: 1 } }",
      "E_UNKNOWN_INPUT",
    ],
    ["an unbound required input", "a: { task: q }", "E_UNBOUND_INPUT"],
    [
      "a string output binding a number input",
      'a: { task: p }\nb: { task: q, inputs: { f: "${{ nodes.a.outputs.s }}" } }',
      "E_TYPE",
    ],
    [
      "a string workflow input binding an integer",
      'a: { task: p, inputs: { k: "${{ inputs.x }}" } }',
      "E_TYPE",
    ],
    ["a literal of the wrong type", 'a: { task: q, inputs: { f: "three" } }', "E_TYPE"],
    ["string interpolation", 'a: { task: q, inputs: { f: "1${{ inputs.y }}" } }', "E_EXPR"],
    [
      "two expressions in one binding",
      'a: { task: q, inputs: { f: "${{ inputs.y }}${{ inputs.y }}" } }',
      "E_EXPR",
    ],
    [
      "an expression that is no reference",
      'a: { task: q, inputs: { f: "${{ env.HOME }}" } }',
      "E_EXPR",
    ],
    ["a bad node id", "A1: { task: p }", "E_NAME"],
    ["a node without task", "a: { inputs: {} }", "E_REQUIRED"],
  ])("rejects %s", (_, nodes, code) => {
    expect(codes(graph(nodes))).toContain(code);
  });

  it("lets an integer workflow input bind a number input", () => {
    expect(parseSpec(graph('a: { task: q, inputs: { f: "${{ inputs.y }}" } }')).ok).toBe(true);
  });

  it("reports a cycle with its path, in the direction data flows", () => {
    const text = graph(
      'a: { task: p, after: [c] }\nb: { task: q, inputs: { f: "${{ nodes.a.outputs.n }}" } }\nc: { task: p, after: [b] }\nd: { task: p, after: [d] }',
    );
    const cycles = errorsOf(text).filter((e) => e.code === "E_CYCLE");
    expect(cycles.map((e) => e.message)).toEqual([
      'workflow "w": cycle a -> b -> c -> a',
      'workflow "w": cycle d -> d',
    ]);
    expect(cycles[0]).toMatchObject({ line: 10 });
  });

  it("requires schedule inputs and checks their types", () => {
    const text = graph(
      "a: { task: p }",
      '    on:\n      schedule:\n        - { cron: "*/5 * * * 1-5", inputs: { y: nope } }\n',
    );
    expect(codes(text)).toEqual(["E_UNBOUND_INPUT", "E_TYPE"]);
  });

  it.each(["61 * * * *", "* * *", "* * 0 * *", "5-1 * * * *", "*/0 * * * *"])(
    "rejects the cron %s",
    (cron) => {
      const text = graph(
        "a: { task: p }",
        `    on:\n      schedule: [{ cron: "${cron}", inputs: { x: a } }]\n`,
      );
      expect(codes(text)).toEqual(["E_CRON"]);
    },
  );

  it("warns, without failing, when push leaves a required input unset", () => {
    const r = parseSpec(graph("a: { task: p }", "    on: { push: { branches: [main] } }\n"));
    expect(r.ok).toBe(true);
    expect(r.warnings.map((w) => w.code)).toEqual(["W_TRIGGER_INPUTS"]);
    const set = parseSpec(graph("a: { task: p }", "    on: { push: { inputs: { x: hello } } }\n"));
    expect(set.ok && set.warnings).toEqual([]);
  });

  it("refuses more than 10,000 nodes in a workflow", () => {
    const nodes = Array.from({ length: 10_001 }, (_, i) => `n${i}: { task: p }`).join("\n");
    const [e] = errorsOf(graph(nodes));
    expect(e).toMatchObject({ code: "E_LIMIT" });
  });
});

describe("warnings", () => {
  it("warns once about an unpinned default image, at defaults.image", () => {
    const text =
      "version: 1\ndefaults: { image: python:3.12 }\ntasks:\n  a: { command: [x] }\n  b: { command: [x] }\n";
    const r = parseSpec(text);
    expect(r.ok).toBe(true);
    expect(r.warnings).toMatchObject([{ code: "W_IMAGE_DIGEST", line: 2, col: 20 }]);
  });

  it("warns when a cached task keeps the whole-tree sources", () => {
    const r = parseSpec(oneTask("cache: true"));
    expect(r.warnings.map((w) => w.code)).toEqual(["W_CACHE_SOURCES"]);
    expect(r.warnings[0]?.message).toContain(
      "its cache is invalidated by any commit; declare `sources`",
    );
    expect(parseSpec(oneTask("cache: true\nsources: [a.py]")).warnings).toEqual([]);
    expect(parseSpec(oneTask('cache: { version: "1" }')).warnings).toEqual([]);
  });
});

describe("limits", () => {
  it("refuses more than 1,000 tasks", () => {
    const tasks = Array.from({ length: 1001 }, (_, i) => `  t${i}: { command: [x] }`).join("\n");
    const [e] = errorsOf(`version: 1\ndefaults: { image: ${PINNED} }\ntasks:\n${tasks}\n`);
    expect(e).toMatchObject({ code: "E_LIMIT", line: 3 });
  });

  it("refuses a file over 1 MiB, as text or bytes", () => {
    const big = `version: 1\n# ${"x".repeat(1024 * 1024)}\n`;
    expect(codes(big)).toEqual(["E_LIMIT"]);
    expect(errorsOf(new TextEncoder().encode(big)).map((e) => e.code)).toEqual(["E_LIMIT"]);
  });
});
