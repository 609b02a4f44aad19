/**
 * What the check runs say (docs/design.md section 8), as data: `reprise/register` for a commit, and
 * `reprise/<workflow>` for an execution. Pure: the caller reads the store and posts. The GitHub
 * App and the Action both render with these, so a check run reads the same whoever posts it.
 */
import type { NamedChanges, VersionDiff } from "../diff/diff-versions.js";
import { type Diagnostic, SPEC_FILE } from "../spec/diagnostics.js";
import { duration, type ExecutionDocument } from "./document.js";

/** What the register check run needs of a version (db's VersionRecord has it). */
export interface RegisteredVersion {
  sha: string;
  status: "registered" | "invalid";
  specDigest: string | null;
  errors: Diagnostic[];
  warnings: Diagnostic[];
}

/** GitHub rejects check-run summary and text over 65,535 bytes (each). */
export const MAX_OUTPUT_BYTES = 65_535;
/** GitHub takes at most 50 annotations per create or update request. */
export const ANNOTATIONS_PER_REQUEST = 50;
/** GitHub rejects a check-run title over 255 characters (we keep well under). */
const MAX_TITLE = 200;

export interface CheckRunOutput {
  title: string;
  summary: string;
  text?: string;
  annotations?: Annotation[];
}

export interface Annotation {
  path: string;
  start_line: number;
  end_line: number;
  start_column?: number;
  end_column?: number;
  annotation_level: "failure" | "warning" | "notice";
  title: string;
  message: string;
}

export type Conclusion = "success" | "failure" | "neutral" | "cancelled";

/** Cuts `s` to at most `max` UTF-8 bytes, on a character boundary, saying it did. */
export function truncateBytes(s: string, max = MAX_OUTPUT_BYTES): string {
  const bytes = Buffer.from(s, "utf8");
  if (bytes.length <= max) return s;
  const note = "\n\n… (truncated to GitHub's 65,535-byte limit)";
  let end = max - Buffer.byteLength(note);
  // Back up to the start of a UTF-8 sequence: continuation bytes are 10xxxxxx.
  while (end > 0 && ((bytes[end] as number) & 0xc0) === 0x80) end--;
  return bytes.subarray(0, end).toString("utf8") + note;
}

/** Keeps the end of a log (the failure is at the end), within `max` bytes. */
export function tailBytes(s: string, max: number): string {
  const bytes = Buffer.from(s, "utf8");
  if (bytes.length <= max) return s;
  let start = bytes.length - max;
  while (start < bytes.length && ((bytes[start] as number) & 0xc0) === 0x80) start++;
  return `…${bytes.subarray(start).toString("utf8")}`;
}

export function registerOutput(
  version: RegisteredVersion,
  diff: VersionDiff | null,
  previous: string | null,
  identicalTo: string | null,
): { conclusion: Conclusion; output: CheckRunOutput } {
  if (version.status !== "registered") {
    const n = version.errors.length;
    return {
      conclusion: "failure",
      output: {
        title: `${SPEC_FILE} is invalid: ${n} error${n === 1 ? "" : "s"}`,
        summary: truncateBytes(
          [
            `The version of \`${version.sha.slice(0, 12)}\` is recorded as a failed registration: nothing from it can run. Fix the errors below (also annotated on ${SPEC_FILE}) and push again.`,
            "",
            ...version.errors.map(
              (d) => `- \`${SPEC_FILE}:${d.line}:${d.col}\` **${d.code}** ${d.message}`,
            ),
          ].join("\n"),
        ),
        annotations: annotations(version.errors, version.warnings),
      },
    };
  }
  const lines: string[] = [];
  let title: string;
  if (identicalTo) {
    title = `identical to ${identicalTo.slice(0, 12)}`;
    lines.push(
      `This version is identical to \`${identicalTo}\` (same spec digest): its executions hit that version's cache.`,
      "",
    );
  } else title = "registered";
  if (diff) {
    const t = diff.tasks;
    const w = diff.workflows;
    title += `: tasks ${counts(t)}`;
    lines.push(
      previous
        ? `Compared with \`${previous.slice(0, 12)}\` (the branch's previous head, or production for a new branch):`
        : "First version on this branch:",
      "",
      "| | added | changed | removed | renamed | unchanged |",
      "|---|---|---|---|---|---|",
      row("tasks", t),
      row("workflows", w),
    );
  }
  lines.push("", `Spec digest \`${version.specDigest}\`.`);
  if (version.warnings.length > 0)
    lines.push(
      "",
      "Warnings:",
      ...version.warnings.map(
        (d) => `- \`${SPEC_FILE}:${d.line}:${d.col}\` ${d.code} ${d.message}`,
      ),
    );
  return {
    conclusion: "success",
    output: {
      title: title.slice(0, MAX_TITLE),
      summary: truncateBytes(lines.join("\n")),
      annotations: annotations([], version.warnings),
    },
  };
}

function counts(c: NamedChanges): string {
  return `${c.added.length} added, ${c.changed.length} changed, ${c.unchanged.length} unchanged`;
}

function row(label: string, c: NamedChanges): string {
  const names = (xs: string[]) => (xs.length === 0 ? "" : xs.map((x) => `\`${x}\``).join(", "));
  return `| ${label} | ${names(c.added)} | ${names(c.changed)} | ${names(c.removed)} | ${c.renamed.map((r) => `\`${r.from}\`→\`${r.to}\``).join(", ")} | ${c.unchanged.length} |`;
}

function annotations(errors: Diagnostic[], warnings: Diagnostic[]): Annotation[] {
  const one = (d: Diagnostic, level: Annotation["annotation_level"]): Annotation => ({
    path: SPEC_FILE,
    start_line: Math.max(1, d.line),
    end_line: Math.max(1, d.line),
    annotation_level: level,
    title: d.code,
    message: d.message,
  });
  return [...errors.map((d) => one(d, "failure")), ...warnings.map((d) => one(d, "warning"))];
}

export function executionUrl(publicUrl: string | null, id: string): string | null {
  return publicUrl ? `${publicUrl}/executions/${id}` : null;
}

/** The completed check run of an execution: node table, outputs, the failed node's log tail. */
export function executionOutput(
  doc: ExecutionDocument,
  failedLog: { node: string; log: string } | null,
  publicUrl: string | null,
): { conclusion: Conclusion; output: CheckRunOutput } {
  const conclusion: Conclusion =
    doc.status === "SUCCEEDED" ? "success" : doc.status === "ABORTED" ? "cancelled" : "failure";
  const failed = doc.nodes.filter((n) => n.status === "FAILED");
  const ran = doc.nodes.filter(
    (n) => n.status === "SUCCEEDED" && n.cache !== "HIT" && n.cache !== "RECOVERED",
  ).length;
  const cached = doc.nodes.filter((n) => n.cache === "HIT" || n.cache === "RECOVERED").length;
  const title =
    doc.status === "SUCCEEDED"
      ? `succeeded: ${ran} ran, ${cached} cached`
      : doc.status === "ABORTED"
        ? "cancelled"
        : failed.length > 0
          ? `failed at ${failed.map((n) => n.id).join(", ")}`
          : `failed: ${doc.error?.message ?? "see the details"}`;
  const link = (id: string) => {
    const url = executionUrl(publicUrl, id);
    return url ? `[${id}](${url})` : `\`${id}\``;
  };
  const lines = [
    `Execution ${link(doc.id)} of \`${doc.workflow}\` at \`${doc.sha.slice(0, 12)}\`${doc.parent ? `, relaunched from ${link(doc.parent)}` : ""}: **${doc.status}**.`,
    "",
    "| node | task | status | how | duration | attempts |",
    "|---|---|---|---|---|---|",
  ];
  for (const n of doc.nodes) {
    const how =
      (n.cache === "HIT" || n.cache === "RECOVERED") && n.source
        ? `${n.cache === "HIT" ? "cached" : "recovered"} from ${link(n.source.execution)} / \`${n.source.node}\``
        : n.status === "SUCCEEDED"
          ? "ran"
          : n.status === "FAILED"
            ? `failed: ${escapeCell(n.error?.message.split("\n")[0] ?? "")}`
            : n.status === "SKIPPED"
              ? "skipped (an upstream node failed)"
              : n.status.toLowerCase();
    lines.push(
      `| \`${n.id}\` | \`${n.task}\` | ${n.status} | ${how} | ${duration(n)} | ${n.attempts} |`,
    );
  }
  if (doc.status === "SUCCEEDED" && Object.keys(doc.outputs ?? {}).length > 0)
    lines.push("", "**Outputs**", "", "```json", JSON.stringify(doc.outputs, null, 2), "```");
  const summary = truncateBytes(lines.join("\n"));
  let text: string | undefined;
  if (failedLog) {
    const head = `Log of \`${failedLog.node}\` (the end):\n\n\`\`\`\n`;
    const tail = "\n```";
    const room = MAX_OUTPUT_BYTES - Buffer.byteLength(head) - Buffer.byteLength(tail) - 8;
    text = head + tailBytes(failedLog.log.replace(/```/g, "'''"), room) + tail;
  }
  return {
    conclusion,
    output: { title: title.slice(0, MAX_TITLE), summary, ...(text ? { text } : {}) },
  };
}

function escapeCell(s: string): string {
  return s.replace(/\|/g, "\\|").slice(0, 300);
}
