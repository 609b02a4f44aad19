/**
 * An executor that runs nothing, for measuring the engine alone (docs/design.md section 13): a launch
 * records its spec, a wait resolves on the next turn of the event loop with outputs that satisfy
 * the task's declared outputs. Whatever the engine then takes per node is its own cost.
 */
import type { JsonValue, OutputDecl, ValueType } from "../core/spec/types.js";
import type { AttemptOutcome, Executor, LaunchSpec } from "../runner/executors/types.js";

const VALUES: Record<ValueType, JsonValue> = {
  string: "noop",
  integer: 1,
  number: 0.5,
  boolean: true,
  json: {},
  // No bytes behind these: the engine benchmarks run tasks without artifacts.
  file: { artifact: `sha256:${"0".repeat(64)}`, type: "file", size: 0 },
  directory: { artifact: `sha256:${"0".repeat(64)}`, type: "directory", size: 0, files: 0 },
};

export class NoopExecutor implements Executor {
  readonly name = "noop";
  /** Every launch, by handle: a launch of a handle already here does nothing (idempotent). */
  readonly launched = new Map<string, LaunchSpec>();
  waits = 0;
  /** When each attempt finished ("EXECUTION/NODE" -> performance.now()), for scheduling latency. */
  readonly finishedAt = new Map<string, number>();

  async launch(spec: LaunchSpec): Promise<void> {
    if (!this.launched.has(spec.handle)) this.launched.set(spec.handle, spec);
  }

  /** While held, waits resolve only at `release()`: attempts stay running, as long tasks do. */
  private held: Array<() => void> | null = null;

  hold(): void {
    this.held ??= [];
  }

  /** Lets every held attempt finish, and the ones launched from now on finish at once. */
  release(): void {
    const held = this.held ?? [];
    this.held = null;
    for (const go of held) go();
  }

  wait(spec: LaunchSpec): Promise<AttemptOutcome> {
    this.waits++;
    return new Promise((resolve) => {
      const finish = () =>
        setImmediate(() => {
          this.finishedAt.set(`${spec.executionId}/${spec.nodeId}`, performance.now());
          resolve({ ok: true, outputs: outputsFor(spec.outputs), logRef: `noop:${spec.handle}` });
        });
      if (this.held) this.held.push(finish);
      else finish();
    });
  }

  async abort(_handle: string): Promise<void> {}

  async logTail(_logRef: string, _maxBytes: number): Promise<string | null> {
    return null;
  }

  async close(): Promise<void> {}
}

/** One value of the declared type for each declared output, nothing else. */
export function outputsFor(decls: Record<string, OutputDecl>): Record<string, JsonValue> {
  return Object.fromEntries(Object.entries(decls).map(([name, d]) => [name, VALUES[d.type]]));
}
