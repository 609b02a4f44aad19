/**
 * Diagnostics of a reprise.yaml. Codes are a stable contract: tools and tests match on them,
 * so a code is never renamed or reused for another meaning.
 */

export const SPEC_FILE = "reprise.yaml";

export const ERROR_CODES = [
  "E_YAML", // not well-formed YAML, or YAML features Reprise refuses (several documents)
  "E_ENCODING", // not UTF-8
  "E_DUPLICATE_KEY",
  "E_UNKNOWN_KEY",
  "E_REQUIRED", // a required key is missing
  "E_TYPE", // a value of the wrong type, or a binding whose type does not fit
  "E_VALUE", // a value of the right type that is not allowed (range, syntax, version)
  "E_NAME", // a name that breaks the naming rules, or two names that collide
  "E_DURATION",
  "E_QUANTITY",
  "E_CRON",
  "E_EXPR", // a malformed ${{ }} expression
  "E_UNKNOWN_TASK",
  "E_UNKNOWN_NODE",
  "E_UNKNOWN_INPUT",
  "E_UNKNOWN_OUTPUT",
  "E_UNBOUND_INPUT",
  "E_CYCLE",
  "E_SOURCES_EMPTY",
  "E_PATH", // a path or glob that leaves the repository
  "E_LIMIT",
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

export const WARNING_CODES = [
  "W_IMAGE_DIGEST", // image not pinned by digest
  "W_CACHE_SOURCES", // cache enabled with whole-tree sources
  "W_SOURCES_UNMATCHED", // one sources glob matches no file of the commit
  "W_TRIGGER_INPUTS", // an automatic trigger leaves a required workflow input unset
] as const;
export type WarningCode = (typeof WARNING_CODES)[number];

export interface Diagnostic {
  severity: "error" | "warning";
  code: ErrorCode | WarningCode;
  message: string;
  /** 1-based. */
  line: number;
  /** 1-based. */
  col: number;
  /** Where in the document, e.g. "tasks.prepare.image". */
  path: string;
}

export function formatDiagnostic(d: Diagnostic, file = SPEC_FILE): string {
  return `${file}:${d.line}:${d.col}: ${d.code} ${d.message}`;
}

export function sortDiagnostics(ds: readonly Diagnostic[]): Diagnostic[] {
  return [...ds].sort((a, b) => a.line - b.line || a.col - b.col || a.code.localeCompare(b.code));
}
