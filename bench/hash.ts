/**
 * Registration-side cost for a big repository: a 10,000-file tree listing and a 1,000-task spec.
 * The floor is JSON.parse of the same listing (what receiving it costs at the least).
 */
import { stringify } from "yaml";
import type { TreeEntry } from "../core/hash/sources.js";
import { parseSpec } from "../core/spec/parse-spec.js";
import { buildVersion, hashSpec } from "../core/version/build-version.js";
import { median, type Row } from "./lib.js";

const FILES = 10_000;
const TASKS = 1_000;

export function makeTree(): TreeEntry[] {
  const tree: TreeEntry[] = [];
  for (let i = 0; i < FILES; i++) {
    const dir = `pkg${i % 100}/${i % 7 === 0 ? "tests" : "src"}`;
    tree.push({
      path: `${dir}/file${i}.${i % 3 === 0 ? "py" : "ts"}`,
      mode: "100644",
      sha: (i * 2654435761).toString(16).padStart(40, "0").slice(-40),
    });
  }
  return tree;
}

/** A spec whose tasks use every kind of sources glob, and one workflow chaining them in tens. */
export function makeSpec(): string {
  const tasks: Record<string, unknown> = {};
  for (let i = 0; i < TASKS; i++) {
    const pkg = `pkg${i % 100}`;
    const sources = [
      [`${pkg}/src/**`],
      [`${pkg}/src/file${i}.ts`, "pkg0/src/**"],
      [`${pkg}/**/*.py`, `!${pkg}/tests/**`],
      [`${pkg}`],
      ["**/*.py"],
    ][i % 5];
    tasks[`task-${i}`] = {
      image: `registry.example.com/ml/trainer@sha256:${"c".repeat(64)}`,
      command: ["python", "-m", `pkg${i % 100}.main`, "--task", String(i)],
      env: { MODE: "fast", INDEX: String(i) },
      sources,
      inputs: { x: "number", seed: { type: "integer", default: i } },
      outputs: { x: "number", report: "string" },
      cache: { ttl: "30d" },
      timeout: "10m",
      resources: { cpu: "500m", memory: "1Gi" },
    };
  }
  const nodes: Record<string, unknown> = {};
  for (let i = 0; i < TASKS; i++) {
    nodes[`n${i}`] = {
      task: `task-${i}`,
      inputs: { x: i % 10 === 0 ? 1.5 : `\${{ nodes.n${i - 1}.outputs.x }}` },
    };
  }
  return stringify({ version: 1, tasks, workflows: { all: { nodes } } });
}

export function benchHash(): Row[] {
  const tree = makeTree();
  const spec = makeSpec();
  const listingJson = JSON.stringify(tree);
  const parsed = parseSpec(spec);
  if (!parsed.ok) throw new Error(`generated spec is invalid: ${parsed.errors[0]?.message}`);
  const check = buildVersion(spec, tree);
  if (!check.ok) throw new Error(`generated version is invalid: ${check.errors[0]?.message}`);

  const floor = median(() => JSON.parse(listingJson));
  const parse = median(() => parseSpec(spec), 7, 2);
  const hash = median(() => hashSpec(parsed, tree), 7, 2);
  const both = median(() => buildVersion(spec, tree), 5, 1);
  const kib = (n: number) => `${Math.round(n / 1024)} KiB`;
  const floorName = `JSON.parse of the listing (${kib(listingJson.length)})`;
  return [
    {
      figure: `hash ${TASKS} tasks over ${FILES} files`,
      value: hash,
      peer: floorName,
      peerValue: floor,
      target: "< 200 ms",
      met: hash < 200,
    },
    {
      figure: `parse+validate ${TASKS}-task spec (${kib(spec.length)})`,
      value: parse,
      peer: floorName,
      peerValue: floor,
      target: "reported",
      met: true,
    },
    {
      figure: "buildVersion (parse + hash)",
      value: both,
      peer: floorName,
      peerValue: floor,
      target: "reported",
      met: true,
    },
  ];
}
