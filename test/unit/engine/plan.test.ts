import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { afterFailure, type NodeView, type PlanInput, plan } from "../../../core/engine/plan.js";
import type { NodeState } from "../../../core/engine/vocabulary.js";
import { parseSpec } from "../../../core/spec/parse-spec.js";

/** a -> b -> d, a -> c -> d; e independent. */
const SPEC = `version: 1
defaults: { image: img }
tasks:
  t: { command: [x], inputs: { v: { type: integer, default: 0 } }, outputs: { v: integer } }
workflows:
  w:
    inputs: { start: { type: integer, default: 1 } }
    nodes:
      a: { task: t, inputs: { v: "\${{ inputs.start }}" } }
      b: { task: t, inputs: { v: "\${{ nodes.a.outputs.v }}" } }
      c: { task: t, inputs: { v: "\${{ nodes.a.outputs.v }}" } }
      d: { task: t, inputs: { v: "\${{ nodes.b.outputs.v }}" }, after: [c] }
      e: { task: t }
    outputs: { final: "\${{ nodes.d.outputs.v }}" }
`;
const parsed = parseSpec(SPEC);
if (!parsed.ok) throw new Error("fixture invalid");
const { spec } = parsed;

function input(
  state: PlanInput["state"],
  nodes: Record<string, Partial<NodeView> & { state: NodeState }>,
): PlanInput {
  const all: Record<string, NodeView> = {};
  for (const id of ["a", "b", "c", "d", "e"])
    all[id] = { outputs: null, ...(nodes[id] ?? { state: "PENDING" }) };
  return {
    state,
    workflow: spec.workflows.w as PlanInput["workflow"],
    tasks: spec.tasks,
    inputs: { start: 5 },
    nodes: all,
  };
}
const done = (v: number) => ({ state: "SUCCEEDED" as const, outputs: { v } });

describe("plan", () => {
  it("starts a queued execution and readies the roots with resolved inputs (defaults applied)", () => {
    expect(plan(input("QUEUED", {}))).toEqual([
      { kind: "start" },
      { kind: "ready", node: "a", inputs: { v: 5 } },
      { kind: "ready", node: "e", inputs: { v: 0 } },
    ]);
  });

  it("readies a node once all its dependencies, data and `after`, succeeded", () => {
    const actions = plan(
      input("RUNNING", { a: done(7), b: done(8), c: { state: "RUNNING" }, e: done(0) }),
    );
    expect(actions).toEqual([]);
    const next = plan(input("RUNNING", { a: done(7), b: done(8), c: done(9), e: done(0) }));
    expect(next).toEqual([{ kind: "ready", node: "d", inputs: { v: 8 } }]);
  });

  it("skips everything downstream of a failure at once, and lets independent branches finish", () => {
    const actions = plan(
      input("RUNNING", {
        a: { state: "FAILED", error: { message: "boom" } },
        e: { state: "RUNNING" },
      }),
    );
    expect(actions).toEqual([
      { kind: "skip", node: "b", upstream: "a" },
      { kind: "skip", node: "c", upstream: "a" },
      { kind: "skip", node: "d", upstream: "b" },
    ]);
  });

  it("finishes FAILED naming the failed node once nothing can change", () => {
    const finished = plan(
      input("RUNNING", {
        a: { state: "FAILED", error: { message: "exit 1" } },
        b: { state: "SKIPPED" },
        c: { state: "SKIPPED" },
        d: { state: "SKIPPED" },
        e: done(0),
      }),
    );
    expect(finished).toEqual([
      {
        kind: "finish",
        state: "FAILED",
        outputs: null,
        error: { message: 'node "a" failed: exit 1', node: "a" },
      },
    ]);
  });

  it("finishes SUCCEEDED with the workflow outputs", () => {
    const all = { a: done(1), b: done(2), c: done(3), d: done(4), e: done(0) };
    expect(plan(input("RUNNING", all))).toEqual([
      { kind: "finish", state: "SUCCEEDED", outputs: { final: 4 }, error: null },
    ]);
  });

  it("offers queued nodes for launch in a stable order", () => {
    expect(
      plan(
        input("RUNNING", {
          a: done(1),
          b: { state: "QUEUED" },
          c: { state: "QUEUED" },
          e: { state: "RUNNING" },
        }),
      ),
    ).toEqual([{ kind: "launch", nodes: ["b", "c"] }]);
  });

  it("aborts every active node, then finishes ABORTED", () => {
    expect(
      plan(input("ABORTING", { a: done(1), b: { state: "RUNNING" }, c: { state: "QUEUED" } })),
    ).toEqual([{ kind: "abort", nodes: ["b", "c", "d", "e"] }]);
    const all = {
      a: done(1),
      b: { state: "ABORTED" as const },
      c: { state: "ABORTED" as const },
      d: { state: "ABORTED" as const },
      e: { state: "ABORTED" as const },
    };
    expect(plan(input("ABORTING", all))[0]).toMatchObject({ kind: "finish", state: "ABORTED" });
  });

  it("does nothing for a finished execution", () => {
    expect(plan(input("SUCCEEDED", {}))).toEqual([]);
  });

  it("drives any run to an end when its actions are applied (property)", () => {
    // Simulate: ready -> succeed or fail at random; the plan must always reach a finish.
    fc.assert(
      fc.property(fc.array(fc.boolean(), { minLength: 5, maxLength: 5 }), (outcomes) => {
        const nodes: Record<string, NodeView> = {};
        for (const id of ["a", "b", "c", "d", "e"]) nodes[id] = { state: "PENDING", outputs: null };
        let state: PlanInput["state"] = "QUEUED";
        for (let step = 0; step < 20; step++) {
          const actions = plan({ ...input(state, {}), nodes });
          const fin = actions.find((a) => a.kind === "finish");
          if (fin && fin.kind === "finish") {
            const failedAny = Object.values(nodes).some((n) => n.state !== "SUCCEEDED");
            expect(fin.state).toBe(failedAny ? "FAILED" : "SUCCEEDED");
            return;
          }
          for (const a of actions) {
            if (a.kind === "start") state = "RUNNING";
            if (a.kind === "skip") nodes[a.node] = { state: "SKIPPED", outputs: null };
            if (a.kind === "ready") {
              const ok = outcomes["abcde".indexOf(a.node)];
              nodes[a.node] = ok
                ? { state: "SUCCEEDED", outputs: { v: 1 } }
                : { state: "FAILED", outputs: null, error: { message: "x" } };
            }
          }
        }
        throw new Error("no finish after 20 steps");
      }),
    );
  });
});

describe("afterFailure", () => {
  it("retries user failures up to `retries`, system failures up to 3 times apart", () => {
    const task = { retries: 1 };
    expect(
      afterFailure(task, { userFailures: 0, systemFailures: 0 }, { kind: "user", reason: "exit" }),
    ).toEqual({ retry: true, userFailures: 1, systemFailures: 0 });
    expect(
      afterFailure(task, { userFailures: 1, systemFailures: 0 }, { kind: "user", reason: "exit" })
        .retry,
    ).toBe(false);
    expect(
      afterFailure(
        task,
        { userFailures: 1, systemFailures: 2 },
        { kind: "system", reason: "lost" },
      ),
    ).toEqual({ retry: true, userFailures: 1, systemFailures: 3 });
    expect(
      afterFailure(task, { userFailures: 0, systemFailures: 3 }, { kind: "system", reason: "lost" })
        .retry,
    ).toBe(false);
    expect(
      afterFailure(
        { retries: 5 },
        { userFailures: 0, systemFailures: 0 },
        { kind: "user", reason: "aborted" },
      ).retry,
    ).toBe(false);
  });

  it("does not retry a task whose secrets the runner lacks: every attempt would fail the same way", () => {
    expect(
      afterFailure(
        { retries: 3 },
        { userFailures: 0, systemFailures: 0 },
        { kind: "user", reason: "secrets" },
      ),
    ).toEqual({ retry: false, userFailures: 0, systemFailures: 0 });
  });
});
