/**
 * The seed pipeline's story, end to end with real git and real processes: the repository that
 * examples/seed-pipeline/make-story-repo.sh builds registers at every commit, its digests move
 * exactly as the story says (a fix re-versions one task, a reshape only the graph), and its
 * tasks honour the I/O contract of docs/design.md section 3 when run the way an executor runs them.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { topologicalOrder } from "../../core/dag/graph.js";
import { type TreeEntry, TreeIndex } from "../../core/hash/sources.js";
import { formatDiagnostic } from "../../core/spec/diagnostics.js";
import { inputEnvName, outputEnvName } from "../../core/spec/names.js";
import { typeMismatch } from "../../core/spec/reader.js";
import type { Binding, JsonValue, WorkflowSpec } from "../../core/spec/types.js";
import { buildVersion, type VersionContent } from "../../core/version/build-version.js";

const EXAMPLE = fileURLToPath(new URL("../../examples/seed-pipeline/", import.meta.url));
const MAKE_STORY = join(EXAMPLE, "make-story-repo.sh");
const TAGS = ["broken", "fixed", "reshaped"] as const;
type Tag = (typeof TAGS)[number];
const WORKFLOW = "train";
/** docs/design.md section 3: outputs travel in the Kubernetes termination message. */
const MAX_OUTPUT_BYTES = 4096;

/**
 * The environment of every child process: the caller's, minus anything that would point git at
 * another repository (set when tests run from a git hook) or leak Reprise variables into a task.
 */
function childEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env))
    if (!k.startsWith("GIT_") && !k.startsWith("REPRISE_")) env[k] = v;
  return { ...env, ...extra };
}

function git(repo: string, ...args: string[]): string {
  return execFileSync("git", ["-C", repo, ...args], { encoding: "utf8", env: childEnv() });
}

/** `git ls-tree -r -z`: records `<mode> SP <type> SP <sha> TAB <path>`, NUL-terminated, unquoted. */
function treeEntries(repo: string, rev: string): TreeEntry[] {
  return git(repo, "ls-tree", "-r", "-z", rev)
    .split("\0")
    .filter((record) => record !== "")
    .map((record) => {
      const tab = record.indexOf("\t");
      const [mode = "", , sha = ""] = record.slice(0, tab).split(" ");
      return { mode, sha, path: record.slice(tab + 1) };
    });
}

/** What registration computes for a commit; throws with every diagnostic when the spec is invalid. */
function register(repo: string, rev: string) {
  const result = buildVersion(git(repo, "show", `${rev}:reprise.yaml`), treeEntries(repo, rev));
  if (!result.ok) {
    const lines = result.errors.map((d) => formatDiagnostic(d)).join("\n");
    throw new Error(`reprise.yaml at ${rev} does not register:\n${lines}`);
  }
  return result;
}

/** Node id -> the nodes it depends on: those its bindings reference, plus `after`. */
function dependencies(wf: WorkflowSpec): Map<string, string[]> {
  const deps = new Map<string, string[]>();
  for (const [id, node] of Object.entries(wf.nodes)) {
    const referenced = Object.values(node.inputs).flatMap((b) =>
      b.kind === "output" ? [b.node] : [],
    );
    deps.set(id, [...new Set([...referenced, ...node.after])].sort());
  }
  return deps;
}

interface NodeRun {
  id: string;
  task: string;
  inputs: Record<string, JsonValue>;
  status: number | null;
  stdout: string;
  stderr: string;
  outputsFile: string;
  /**
   * The parsed outputs file with each `file` output's value (what the executor would store), or
   * null when the node failed or wrote none.
   */
  outputs: Record<string, JsonValue> | null;
}

interface WorkflowRun {
  order: string[];
  nodes: NodeRun[];
  /** The workflow's outputs, or null when a node failed. */
  outputs: Record<string, JsonValue> | null;
}

/**
 * Runs a workflow the way an executor runs it, one node at a time in topological order: each
 * task's command in the checkout (then `workdir`), with its inputs resolved from literals,
 * workflow inputs (defaults applied) and upstream outputs. `file` values follow the artifact
 * contract: an output is written at REPRISE_OUTPUT_<NAME> and becomes `{ artifact: sha256 of
 * its bytes, type, size }`; an input is handed over as the path of those bytes. Stops at the
 * first failed node, as the engine does, so the nodes downstream of it never start.
 */
function runWorkflow(
  checkout: string,
  sha: string,
  version: VersionContent,
  given: Record<string, JsonValue>,
  scratch: string,
): WorkflowRun {
  const wf = version.spec.workflows[WORKFLOW];
  if (!wf) throw new Error(`no workflow ${WORKFLOW}`);
  const values: Record<string, JsonValue> = {};
  for (const [name, decl] of Object.entries(wf.inputs)) {
    const value = given[name] ?? decl.default;
    if (value === undefined) throw new Error(`workflow input ${name} is required`);
    values[name] = value;
  }
  const order = topologicalOrder(dependencies(wf));
  if (!order) throw new Error(`workflow ${WORKFLOW} has a cycle`);

  const produced = new Map<string, Record<string, JsonValue>>();
  /** Where the bytes of each file value are, by digest. */
  const files = new Map<string, string>();
  const resolve = (b: Binding): JsonValue => {
    switch (b.kind) {
      case "literal":
        return b.value;
      case "input": {
        const value = values[b.input];
        if (value === undefined) throw new Error(`the workflow has no input ${b.input}`);
        return value;
      }
      case "output": {
        const value = produced.get(b.node)?.[b.output];
        if (value === undefined) throw new Error(`${b.node}.${b.output} was not produced`);
        return value;
      }
    }
  };

  mkdirSync(scratch, { recursive: true });
  const nodes: NodeRun[] = [];
  for (const id of order) {
    const node = wf.nodes[id];
    const task = node && version.spec.tasks[node.task];
    if (!node || !task) throw new Error(`node ${id} has no task`);
    const inputs: Record<string, JsonValue> = {};
    const inputEnv: Record<string, string> = {};
    const given: Record<string, JsonValue> = {};
    for (const [name, decl] of Object.entries(task.inputs)) {
      const binding = node.inputs[name];
      const value = binding ? resolve(binding) : decl.default;
      if (value === undefined) throw new Error(`node ${id}: input ${name} is unbound`);
      given[name] = value;
      if (decl.type === "file") {
        const digest = (value as { artifact: string }).artifact;
        const path = files.get(digest);
        if (!path) throw new Error(`node ${id}: no bytes for ${digest}`);
        inputs[name] = path;
        inputEnv[`${inputEnvName(name)}_DIGEST`] = digest;
      } else inputs[name] = value;
      inputEnv[inputEnvName(name)] =
        typeof inputs[name] === "string" ? inputs[name] : JSON.stringify(inputs[name]);
    }
    for (const [name, decl] of Object.entries(task.outputs))
      if (decl.type === "file") inputEnv[outputEnvName(name)] = join(scratch, `${id}.${name}.out`);
    const inputsFile = join(scratch, `${id}.inputs.json`);
    const outputsFile = join(scratch, `${id}.outputs.json`);
    writeFileSync(inputsFile, JSON.stringify(inputs));
    const [program = "", ...args] = task.command;
    const proc = spawnSync(program, args, {
      cwd: join(checkout, task.workdir),
      encoding: "utf8",
      timeout: 20_000,
      env: childEnv({
        ...inputEnv,
        REPRISE_INPUTS: inputsFile,
        REPRISE_OUTPUTS: outputsFile,
        REPRISE_EXECUTION_ID: "seed-story",
        REPRISE_NODE_ID: id,
        REPRISE_ATTEMPT: "1",
        REPRISE_GIT_SHA: sha,
        REPRISE_TASK_DIGEST: version.tasks[node.task]?.digest ?? "",
      }),
    });
    if (proc.error) throw proc.error;
    const ok = proc.status === 0 && existsSync(outputsFile);
    const outputs = ok
      ? (JSON.parse(readFileSync(outputsFile, "utf8")) as Record<string, JsonValue>)
      : null;
    for (const [name, decl] of Object.entries(task.outputs)) {
      if (decl.type !== "file" || !outputs) continue;
      const path = inputEnv[outputEnvName(name)] as string;
      const bytes = readFileSync(path);
      const digest = `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
      files.set(digest, path);
      outputs[name] = { artifact: digest, type: "file", size: bytes.length };
    }
    const { status, stdout, stderr } = proc;
    nodes.push({
      id,
      task: node.task,
      inputs: given,
      status,
      stdout,
      stderr,
      outputsFile,
      outputs,
    });
    if (!outputs) return { order, nodes, outputs: null };
    produced.set(id, outputs);
  }
  const outputs: Record<string, JsonValue> = {};
  for (const [name, binding] of Object.entries(wf.outputs)) outputs[name] = resolve(binding);
  return { order, nodes, outputs };
}

/** Asserts one node succeeded and wrote exactly its task's declared outputs, with their types. */
function expectContractHonoured(version: VersionContent, run: NodeRun): void {
  const why = `node ${run.id} (exit ${run.status}); stderr:\n${run.stderr}`;
  expect(run.status, why).toBe(0);
  expect(run.stdout.trim(), `node ${run.id} logs what it did`).not.toBe("");
  expect(existsSync(run.outputsFile), `node ${run.id} wrote ${run.outputsFile}`).toBe(true);
  const text = readFileSync(run.outputsFile, "utf8");
  expect(
    Object.keys(JSON.parse(text)).sort(),
    `node ${run.id}: $REPRISE_OUTPUTS holds the values`,
  ).toEqual(
    Object.entries(version.spec.tasks[run.task]?.outputs ?? {})
      .filter(([, d]) => d.type !== "file")
      .map(([n]) => n)
      .sort(),
  );
  expect(Buffer.byteLength(text), `node ${run.id} outputs size`).toBeLessThanOrEqual(
    MAX_OUTPUT_BYTES,
  );
  const declared = version.spec.tasks[run.task]?.outputs ?? {};
  expect(Object.keys(run.outputs ?? {}).sort(), `node ${run.id} output names`).toEqual(
    Object.keys(declared).sort(),
  );
  for (const [name, decl] of Object.entries(declared))
    expect(typeMismatch(decl.type, run.outputs?.[name]), `${run.id}.${name}`).toBeNull();
}

function nodeRun(run: WorkflowRun, id: string): NodeRun {
  const found = run.nodes.find((n) => n.id === id);
  if (!found) throw new Error(`node ${id} did not run (ran: ${run.nodes.map((n) => n.id)})`);
  return found;
}

describe("the seed pipeline story", () => {
  let root: string;
  let repo: string;
  let printed: string;
  const versions = new Map<Tag, ReturnType<typeof register>>();
  const checkouts = new Map<Tag, string>();

  const version = (tag: Tag): VersionContent => {
    const v = versions.get(tag);
    if (!v) throw new Error(`${tag} was not registered`);
    return v.version;
  };
  const sha = (tag: Tag): string => git(repo, "rev-parse", `${tag}^{commit}`).trim();
  /** The tree of a tag, extracted as an executor sees it: plain files, no .git. */
  const checkout = (tag: Tag): string => {
    let dir = checkouts.get(tag);
    if (!dir) {
      dir = join(root, "checkouts", tag);
      mkdirSync(dir, { recursive: true });
      const archive = execFileSync("git", ["-C", repo, "archive", "--format=tar", tag], {
        env: childEnv(),
      });
      execFileSync("tar", ["-x", "-C", dir], { input: archive });
      checkouts.set(tag, dir);
    }
    return dir;
  };

  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), "reprise-seed-story-"));
    repo = join(root, "story");
    printed = execFileSync("bash", [MAKE_STORY, repo], { encoding: "utf8", env: childEnv() });
    for (const tag of TAGS) versions.set(tag, register(repo, tag));
  });

  afterAll(() => {
    if (root) rmSync(root, { recursive: true, force: true });
  });

  describe("make-story-repo.sh", () => {
    it("prints the SHAs of three commits on main, tagged broken, fixed and reshaped in story order", () => {
      const lines = printed.trim().split("\n");
      expect(lines.map((line) => line.split(" ")[0])).toEqual([...TAGS]);
      expect(lines).toEqual(TAGS.map((tag) => `${tag} ${sha(tag)}`));
      expect(git(repo, "rev-list", "--reverse", "main").trim().split("\n")).toEqual(TAGS.map(sha));
      expect(git(repo, "log", "--reverse", "--format=%s", "main").trim().split("\n")).toEqual([
        "Add training pipeline",
        expect.stringMatching(/^Fix train: /),
        "Insert select step (B1)",
      ]);
      expect(git(repo, "status", "--porcelain")).toBe("");
    });

    it("produces the same SHAs again when run from another directory with a relative path", () => {
      const again = execFileSync("bash", [MAKE_STORY, "again"], {
        cwd: root,
        encoding: "utf8",
        env: childEnv(),
      });
      expect(again).toBe(printed);
      expect(git(join(root, "again"), "rev-parse", "HEAD").trim()).toBe(sha("reshaped"));
    });

    it("refuses to overwrite a non-empty directory and leaves it untouched", () => {
      const head = sha("reshaped");
      const proc = spawnSync("bash", [MAKE_STORY, repo], { encoding: "utf8", env: childEnv() });
      expect(proc.status).toBe(2);
      expect(proc.stderr).toMatch(/not empty/);
      expect(proc.stdout).toBe("");
      expect(git(repo, "rev-parse", "HEAD").trim()).toBe(head);
      expect(git(repo, "status", "--porcelain")).toBe("");
    });
  });

  describe("registration", () => {
    it("accepts reprise.yaml at every commit, warning only that node:20-slim is not pinned by digest", () => {
      for (const tag of TAGS) {
        const warnings = versions.get(tag)?.warnings ?? [];
        expect(warnings.length, tag).toBeGreaterThan(0);
        for (const w of warnings) {
          expect(w.code, formatDiagnostic(w)).toBe("W_IMAGE_DIGEST");
          expect(w.message).toContain('"node:20-slim"');
        }
      }
    });

    it("gives every task its own script under node:20-slim, cached, sourced from exactly that script and lib/", () => {
      for (const tag of TAGS) {
        const tree = treeEntries(repo, tag);
        const index = new TreeIndex(tree);
        const libFiles = tree.map((e) => e.path).filter((p) => p.startsWith("lib/"));
        expect(libFiles.length, `${tag} has a shared lib`).toBeGreaterThan(0);
        for (const [name, task] of Object.entries(version(tag).spec.tasks)) {
          const script = `tasks/${name}.mjs`;
          expect(task.image, `${tag} ${name}`).toBe("node:20-slim");
          expect(task.command, `${tag} ${name}`).toEqual(["node", script]);
          expect(task.cache.enabled, `${tag} ${name}`).toBe(true);
          expect(task.sources, `${tag} ${name}`).toEqual(["lib/**", script]);
          const matched = index.match(task.sources).map((e) => e.path);
          expect(matched, `${tag} ${name}`).toEqual([...libFiles, script].sort());
          expect(version(tag).tasks[name]?.sourceFiles).toBe(matched.length);
        }
      }
    });

    it("registers the train workflow as prepare -> featurize -> train -> evaluate, with featurize also feeding evaluate", () => {
      const wf = version("fixed").spec.workflows[WORKFLOW];
      expect(Object.keys(version("fixed").workflows)).toEqual([WORKFLOW]);
      expect(wf && Object.fromEntries(dependencies(wf))).toEqual({
        prepare: [],
        featurize: ["prepare"],
        train: ["featurize"],
        evaluate: ["featurize", "train"],
      });
      expect(wf?.inputs.dataset?.default, "runs without arguments").toBeTypeOf("string");
    });
  });

  describe("versions", () => {
    it("fixing train changes only tasks/train.mjs, so exactly the train task's digest and the workflow's change", () => {
      expect(git(repo, "diff", "--name-status", "broken", "fixed").trim()).toBe(
        "M\ttasks/train.mjs",
      );
      const before = version("broken");
      const after = version("fixed");
      expect(Object.keys(after.tasks).sort()).toEqual(Object.keys(before.tasks).sort());
      const changed = Object.keys(after.tasks).filter(
        (name) => after.tasks[name]?.digest !== before.tasks[name]?.digest,
      );
      expect(changed).toEqual(["train"]);
      expect(after.tasks.train?.sourcesDigest).not.toBe(before.tasks.train?.sourcesDigest);
      expect(after.workflows[WORKFLOW]).not.toBe(before.workflows[WORKFLOW]);
    });

    it("inserting select adds one task and rewires train and evaluate to it, leaving every existing task digest as it was", () => {
      expect(git(repo, "diff", "--name-status", "fixed", "reshaped").trim().split("\n")).toEqual([
        "M\treprise.yaml",
        "A\ttasks/select.mjs",
      ]);
      const before = version("fixed");
      const after = version("reshaped");
      expect(Object.keys(after.tasks).sort()).toEqual(
        [...Object.keys(before.tasks), "select"].sort(),
      );
      // A task digest covers image, command, env, workdir, interface and the sources digest. The
      // reshape edits reprise.yaml, which no task's sources match, adds tasks/select.mjs, which
      // only select's sources match, and leaves every existing task's declaration alone; the
      // rewiring lives in the node bindings, which only the workflow digest covers. (The engine
      // still re-runs train and evaluate: their `data` input is now the CSV select writes, so their
      // cache keys change even though their task digests do not.)
      for (const name of Object.keys(before.tasks))
        expect(after.tasks[name]?.digest, name).toBe(before.tasks[name]?.digest);
      expect(after.workflows[WORKFLOW]).not.toBe(before.workflows[WORKFLOW]);

      const wf = after.spec.workflows[WORKFLOW];
      expect(wf && Object.fromEntries(dependencies(wf))).toEqual({
        prepare: [],
        featurize: ["prepare"],
        select: ["featurize"],
        train: ["select"],
        evaluate: ["select", "train"],
      });
    });

    it("gives the three commits three different spec digests", () => {
      const digests = TAGS.map((tag) => version(tag).specDigest);
      expect(new Set(digests).size).toBe(TAGS.length);
    });
  });

  describe("running the train workflow under the task I/O contract", () => {
    const run = (tag: Tag, scratch: string): WorkflowRun =>
      runWorkflow(checkout(tag), sha(tag), version(tag), {}, scratch);

    it("at the fixed commit, runs every node to exit 0 with exactly its declared outputs, and the model passes its R² gate", () => {
      const result = run("fixed", join(root, "runs", "fixed"));
      for (const node of result.nodes) expectContractHonoured(version("fixed"), node);
      expect(result.order).toEqual(["prepare", "featurize", "train", "evaluate"]);
      expect(result.nodes.map((n) => n.id)).toEqual(result.order);

      const prepare = nodeRun(result, "prepare");
      expect(prepare.inputs).toMatchObject({ dataset: "housing", seed: 42 });
      expect(nodeRun(result, "featurize").inputs.data).toEqual(prepare.outputs?.data);
      for (const id of ["prepare", "featurize"])
        expect(nodeRun(result, id).outputs?.data, `${id} wrote its CSV`).toMatchObject({
          type: "file",
          size: expect.any(Number),
        });
      expect(nodeRun(result, "evaluate").inputs.model).toEqual(
        nodeRun(result, "train").outputs?.model,
      );
      expect(result.outputs?.passed).toBe(true);
      expect(result.outputs?.r2).toBeGreaterThan(0.8);
    });

    it("at the fixed commit, gives the same outputs on a second run, so cached results equal fresh ones", () => {
      const first = run("fixed", join(root, "runs", "fixed-1"));
      const second = run("fixed", join(root, "runs", "fixed-2"));
      expect(first.outputs).not.toBeNull();
      expect(second.nodes.map((n) => [n.id, n.outputs])).toEqual(
        first.nodes.map((n) => [n.id, n.outputs]),
      );
    });

    it("at the broken commit, fails train with its error on stderr and no outputs, and never starts evaluate", () => {
      const result = run("broken", join(root, "runs", "broken"));
      expect(result.nodes.map((n) => [n.id, n.status === 0])).toEqual([
        ["prepare", true],
        ["featurize", true],
        ["train", false],
      ]);
      const train = nodeRun(result, "train");
      expect(train.status).toBe(1);
      expect(train.stderr).toMatch(/^train failed: .*got 0 of \d+ rows/);
      expect(existsSync(train.outputsFile)).toBe(false);
      expect(result.outputs).toBeNull();
    });

    it("at the reshaped commit, runs select between featurize and {train, evaluate}, dropping the unrelated column", () => {
      const fixed = run("fixed", join(root, "runs", "before-reshape"));
      const result = run("reshaped", join(root, "runs", "reshaped"));
      for (const node of result.nodes) expectContractHonoured(version("reshaped"), node);
      expect(result.order).toEqual(["prepare", "featurize", "select", "train", "evaluate"]);
      expect(result.nodes.map((n) => n.id)).toEqual(result.order);

      // Same task digests and inputs upstream of the change: a memo cache serves these nodes.
      for (const id of ["prepare", "featurize"])
        expect(nodeRun(result, id).outputs, id).toEqual(nodeRun(fixed, id).outputs);
      const selected = nodeRun(result, "select").outputs;
      expect(selected?.dropped).toEqual(["weekday_listed"]);
      expect(nodeRun(result, "train").inputs.data).toEqual(selected?.data);
      expect(nodeRun(result, "evaluate").inputs.data).toEqual(selected?.data);
      expect(result.outputs?.passed).toBe(true);
    });
  });
});
