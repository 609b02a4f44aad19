/**
 * Deterministic attempt names (docs/design.md section 6): DNS-1123 labels of at most 63 characters
 * derived from execution id, node id and attempt number, so a restarted runner finds what it
 * launched (a process directory, a Kubernetes Job) by name.
 */
import { createHash } from "node:crypto";

/** Kubernetes object names and labels: a DNS-1123 label is at most 63 characters. */
const MAX = 63;

export function attemptName(executionId: string, nodeId: string, attempt: number): string {
  const full = `${executionId}-${nodeId}-${attempt}`.toLowerCase().replace(/[^a-z0-9-]/g, "-");
  if (full.length <= MAX) return full;
  // Too long: keep what reads well and make it unique with a hash of the whole.
  const hash = createHash("sha256")
    .update(`${executionId}\n${nodeId}\n${attempt}`)
    .digest("hex")
    .slice(0, 8);
  const tail = `-${attempt}-${hash}`;
  const room = MAX - executionId.length - 1 - tail.length;
  return `${executionId}-${nodeId.slice(0, Math.max(0, room)).replace(/-+$/, "")}${tail}`.replace(
    /--+/g,
    "-",
  );
}
