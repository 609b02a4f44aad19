/**
 * Live progress on a terminal: one line per node as it finishes, ran / cached / failed. Fed by
 * the engine's events in-process, and by the changes between polled documents through
 * REPRISE_SERVER (remote.ts).
 */
import type { EngineEvent } from "../engine/engine.js";
import type { Io } from "./io.js";

export function progressPrinter(io: Io, enabled: boolean) {
  const started = new Map<string, number>();
  return {
    started(exec: { id: string; workflow: string; sha: string }) {
      if (enabled) io.out(`execution ${exec.id}  ${exec.workflow} @ ${exec.sha.slice(0, 12)}`);
    },
    onEvent(e: EngineEvent) {
      if (!enabled) return;
      if (e.type === "waiting") {
        io.out(`  … ${e.nodeId} waits for ${e.holder}, which is computing the same result`);
        return;
      }
      if (e.type !== "node") return;
      const key = `${e.executionId}/${e.nodeId}`;
      if (e.state === "RUNNING") {
        started.set(key, Date.now());
        io.out(`  ▶ ${e.nodeId}${e.attempt && e.attempt > 1 ? ` (attempt ${e.attempt})` : ""}`);
      } else if (e.state === "SUCCEEDED") {
        const took = started.has(key)
          ? ` ${((Date.now() - (started.get(key) ?? 0)) / 1000).toFixed(1)}s`
          : "";
        const how =
          e.cache === "HIT"
            ? `cached (from ${e.source?.execution}/${e.source?.node})`
            : e.cache === "RECOVERED"
              ? "recovered"
              : `ran${took}`;
        io.out(`  ✓ ${e.nodeId} ${how}`);
      } else if (e.state === "FAILED") {
        io.out(`  ✗ ${e.nodeId} failed: ${e.error?.message.split("\n")[0] ?? ""}`);
      } else if (e.state === "QUEUED" && e.error) {
        io.out(`  ↻ ${e.nodeId} will retry: ${e.error.message.split("\n")[0]}`);
      } else if (e.state === "SKIPPED") {
        io.out(`  - ${e.nodeId} skipped`);
      }
    },
  };
}
