/**
 * Which automatic triggers fire for an event (docs/design.md section 2, `on.push` and
 * `on.pull_request`): branch globs as GitHub Actions reads them, `*` within one path segment,
 * `**` across segments, a leading `!` excluding.
 */
import picomatch from "picomatch";
import type { EventTrigger } from "../spec/types.js";

/** True when `trigger` is set and its branch globs (none: every branch) accept `branch`. */
export function triggerMatchesBranch(trigger: EventTrigger | null, branch: string): boolean {
  if (!trigger) return false;
  if (trigger.branches === null) return true;
  const include = trigger.branches.filter((g) => !g.startsWith("!"));
  const exclude = trigger.branches.filter((g) => g.startsWith("!")).map((g) => g.slice(1));
  const matches = (globs: string[]) =>
    globs.some((g) => picomatch(g, { dot: true, nobrace: false })(branch));
  return (include.length === 0 || matches(include)) && !matches(exclude);
}
