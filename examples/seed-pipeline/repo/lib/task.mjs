/**
 * The Reprise task I/O contract for Node.js scripts, and the data files the tasks share.
 *
 * Reprise hands a task the JSON object of its inputs (defaults applied) in the file named by
 * REPRISE_INPUTS, and expects a JSON object with exactly the declared outputs in the file named by
 * REPRISE_OUTPUTS. The data itself are `file` values (artifacts): a `file` input arrives as the
 * path of a read-only copy of its bytes, and a `file` output is written at the path
 * REPRISE_OUTPUT_<NAME> names. Reprise stores it by content (sha256) once the task has exited 0,
 * so a cache hit hands the next task the same bytes wherever and whenever they were computed.
 */
import { readFileSync, writeFileSync } from "node:fs";

/** Reprise refuses larger outputs: the Kubernetes termination message holds 4,096 bytes. */
export const MAX_OUTPUT_BYTES = 4096;

const TYPE_CHECKS = {
  string: (v) => typeof v === "string",
  integer: (v) => Number.isSafeInteger(v),
  number: (v) => typeof v === "number" && Number.isFinite(v),
  boolean: (v) => typeof v === "boolean",
  json: (v) => v !== undefined,
  // A file input is the path Reprise materialised it at.
  file: (v) => typeof v === "string" && v !== "",
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
    // File outputs are written at outputPath(name), not returned.
    if (kind === "output" && type === "file") continue;
    if (!(name in values)) throw new Error(`${kind} "${name}" is missing`);
    if (!TYPE_CHECKS[type](values[name]))
      throw new Error(`${kind} "${name}" must be ${type}, got ${JSON.stringify(values[name])}`);
  }
  const extra = Object.keys(values).filter(
    (name) => !(name in declared) || (kind === "output" && declared[name] === "file"),
  );
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

/** Where the task writes its `file` output `name`: REPRISE_OUTPUT_<NAME>. */
export function outputPath(name) {
  const variable = `REPRISE_OUTPUT_${name.toUpperCase().replaceAll("-", "_")}`;
  const path = process.env[variable];
  if (!path) throw new Error(`${variable} is not set: declare output "${name}" as a file`);
  return path;
}

/** Writes rows as CSV to the file output `name`; returns the number of bytes written. */
export function writeCsv(name, columns, rows) {
  const lines = [columns.join(","), ...rows.map((row) => columns.map((c) => row[c]).join(","))];
  const text = `${lines.join("\n")}\n`;
  writeFileSync(outputPath(name), text);
  return Buffer.byteLength(text);
}

/** Reads a CSV file (a `file` input's path): cells that are numbers become numbers. */
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
