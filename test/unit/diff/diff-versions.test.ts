import { describe, expect, it } from "vitest";
import { diffVersions, isEmptyDiff } from "../../../core/diff/diff-versions.js";

const v = (
  specDigest: string,
  tasks: Record<string, string>,
  workflows: Record<string, string> = {},
) => ({
  specDigest,
  tasks,
  workflows,
});

describe("diffVersions", () => {
  it("sorts tasks into added, removed, changed, renamed and unchanged", () => {
    const before = v("s1", { a: "1", b: "2", c: "3", old: "9" }, { w: "x" });
    const after = v("s2", { a: "1", b: "22", d: "4", renamed: "9" }, { w: "y", w2: "z" });
    const d = diffVersions(before, after);
    expect(d.equivalent).toBe(false);
    expect(d.tasks).toEqual({
      added: ["d"],
      removed: ["c"],
      changed: ["b"],
      renamed: [{ from: "old", to: "renamed" }],
      unchanged: ["a"],
    });
    expect(d.workflows).toMatchObject({ added: ["w2"], changed: ["w"] });
    expect(isEmptyDiff(d)).toBe(false);
  });

  it("recognises an equivalent version (a revert) by its spec digest", () => {
    const d = diffVersions(v("s1", { a: "1" }), v("s1", { a: "1" }));
    expect(d.equivalent).toBe(true);
    expect(isEmptyDiff(d)).toBe(true);
  });

  it("treats a first version as all added", () => {
    const d = diffVersions(null, v("s", { a: "1" }, { w: "x" }));
    expect(d).toMatchObject({
      equivalent: false,
      tasks: { added: ["a"] },
      workflows: { added: ["w"] },
    });
  });
});
