/**
 * The Reprise task I/O contract for Node.js scripts, and the data files the tasks share.
 *
 * Reprise hands a task the JSON object of its inputs (defaults applied) in the file named by
 * REPRISE_INPUTS and expects a JSON object with exactly the declared outputs in the file named by
 * REPRISE_OUTPUTS. Outputs are small values; the data itself goes to CSV files under `data_dir`
 * and only their paths travel from task to task.
 */
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

/** Reprise refuses larger outputs: the Kubernetes termination message holds 4,096 bytes. */
export const MAX_OUTPUT_BYTES = 4096;

const TYPE_CHECKS = {
  string: (v) => typeof v === "string",
  integer: (v) => Number.isSafeInteger(v),
  number: (v) => typeof v === "number" && Number.isFinite(v),
  boolean: (v) => typeof v === "boolean",
  json: (v) => v !== undefined,
};

/**
 * Runs one task. `iface` repeats the task's interface from reprise.yaml ({ name: type }), so a
 * script run by hand, or one whose outputs drifted from the spec, fails here with a message that
 * says what is wrong instead of later as "invalid outputs". Any error is printed to stderr as
 * "<task> failed: <message>" and the process exits 1, which Reprise records as a user failure.
 */
export function runTask(iface, body) {
  try {
    const inputs = checked(iface.inputs, readJsonObject("REPRISE_INPUTS"), "input");
    const outputs = checked(iface.outputs, body(inputs), "output");
    writeOutputs(outputs);
  } catch (err) {
    process.exitCode = 1;
    const message = err instanceof Error ? err.message : String(err);
    console.error(`${iface.name} failed: ${message}`);
    const frames = err instanceof Error ? (err.stack ?? "").split("\n").slice(1) : [];
    if (frames.length > 0) console.error(frames.join("\n"));
  }
}

function readJsonObject(variable) {
  const file = process.env[variable];
  if (!file)
    throw new Error(`${variable} is not set: run the task with reprise, or set it yourself`);
  const value = JSON.parse(readFileSync(file, "utf8"));
  if (value === null || typeof value !== "object" || Array.isArray(value))
    throw new Error(`${variable} (${file}) must hold a JSON object`);
  return value;
}

function checked(declared, values, kind) {
  if (values === null || typeof values !== "object" || Array.isArray(values))
    throw new Error(`the task must return an object of outputs, got ${JSON.stringify(values)}`);
  for (const [name, type] of Object.entries(declared)) {
    if (!(name in values)) throw new Error(`${kind} "${name}" is missing`);
    if (!TYPE_CHECKS[type](values[name]))
      throw new Error(`${kind} "${name}" must be ${type}, got ${JSON.stringify(values[name])}`);
  }
  const extra = Object.keys(values).filter((name) => !(name in declared));
  if (kind === "output" && extra.length > 0)
    throw new Error(`undeclared output(s) ${extra.join(", ")}: declare them in reprise.yaml`);
  return values;
}

function writeOutputs(outputs) {
  const file = process.env.REPRISE_OUTPUTS;
  if (!file) throw new Error("REPRISE_OUTPUTS is not set: run the task with reprise");
  // JSON.stringify would quietly turn NaN or Infinity into null, an ill-typed output.
  const text = JSON.stringify(outputs, (key, v) => {
    if (typeof v === "number" && !Number.isFinite(v))
      throw new Error(`output value ${key} is ${v}, which JSON cannot hold`);
    return v;
  });
  const size = Buffer.byteLength(text);
  if (size > MAX_OUTPUT_BYTES)
    throw new Error(
      `outputs are ${size} bytes; the limit is ${MAX_OUTPUT_BYTES}: write data to a file`,
    );
  writeFileSync(file, text);
}

/** The `data_dir` input, or a folder under the OS temporary directory when it is empty. */
export function dataDir(input) {
  return input ? resolve(input) : join(tmpdir(), "reprise-seed-pipeline");
}

/**
 * Writes rows as CSV to `<dir>/<stage>-<content hash>.csv` and returns the path. Naming the file
 * after its content gives the same data the same path on every run, so the inputs of the tasks
 * downstream, and with them their cache keys, stay the same when an upstream task re-runs.
 */
export function writeCsv(dir, stage, columns, rows) {
  const lines = [columns.join(","), ...rows.map((row) => columns.map((c) => row[c]).join(","))];
  const text = `${lines.join("\n")}\n`;
  const hash = createHash("sha256").update(text).digest("hex").slice(0, 16);
  mkdirSync(dir, { recursive: true });
  const path = join(dir, `${stage}-${hash}.csv`);
  // Write, then rename: a task reading the path concurrently never sees half a file.
  const partial = `${path}.${process.pid}.partial`;
  writeFileSync(partial, text);
  renameSync(partial, path);
  return path;
}

/** Reads a CSV written by writeCsv: cells that are numbers become numbers. */
export function readCsv(path) {
  const [header = "", ...lines] = readFileSync(path, "utf8").trimEnd().split("\n");
  const columns = header.split(",");
  const rows = lines.map((line, i) => {
    const cells = line.split(",");
    if (cells.length !== columns.length)
      throw new Error(`${path}:${i + 2}: ${cells.length} cells, expected ${columns.length}`);
    return Object.fromEntries(columns.map((c, j) => [c, cell(cells[j])]));
  });
  return { columns, rows };
}

function cell(text) {
  const n = Number(text);
  return text !== "" && Number.isFinite(n) ? n : text;
}

/** Rounds to `digits` decimals, so files stay small and identical across runs. */
export function round(x, digits) {
  const scale = 10 ** digits;
  return Math.round(x * scale) / scale;
}
