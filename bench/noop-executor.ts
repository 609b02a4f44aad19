/**
 * An executor that runs nothing, for measuring the engine alone (DESIGN.md section 13): a launch
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
};

export class NoopExecutor implements Executor {
  readonly name = "noop";
  /** Every launch, by handle: a launch of a handle already here does nothing (idempotent). */
  readonly launched = new Map<string, LaunchSpec>();
  waits = 0;

  async launch(spec: LaunchSpec): Promise<void> {
    if (!this.launched.has(spec.handle)) this.launched.set(spec.handle, spec);
  }

  wait(spec: LaunchSpec): Promise<AttemptOutcome> {
    this.waits++;
    return new Promise((resolve) =>
      setImmediate(() =>
        resolve({ ok: true, outputs: outputsFor(spec.outputs), logRef: `noop:${spec.handle}` }),
      ),
    );
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
