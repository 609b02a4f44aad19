import { describe, expect, it } from "vitest";
import { InputFlagError, parseInputFlags } from "../../../core/engine/input-flags.js";
import type { InputDecl } from "../../../core/spec/types.js";

const declared: Record<string, InputDecl> = {
  who: { type: "string" },
  rows: { type: "integer" },
  flags: { type: "json" },
  data: { type: "file" },
};

describe("parseInputFlags", () => {
  it("passes strings, artifacts and undeclared names as given, and reads other types as JSON", () => {
    expect(
      parseInputFlags(["who=a=b", "rows=3", 'flags={"a":1}', "data=@in.csv", "extra=7"], declared),
    ).toEqual({ who: "a=b", rows: 3, flags: { a: 1 }, data: "@in.csv", extra: "7" });
  });

  it("the last of two flags for one name wins", () => {
    expect(parseInputFlags(["rows=1", "rows=2"], declared)).toEqual({ rows: 2 });
  });

  it.each([
    ["rows", '-i takes name=value, got "rows"'],
    ["=3", '-i takes name=value, got "=3"'],
    ["rows=abc", "-i rows=abc: not a valid integer (values other than strings are JSON)"],
  ])("refuses %s with an InputFlagError saying what to fix", (flag, message) => {
    let thrown: unknown;
    try {
      parseInputFlags([flag], declared);
    } catch (e) {
      thrown = e;
    }
    expect(thrown).toBeInstanceOf(InputFlagError);
    expect((thrown as Error).message).toBe(message);
  });
});
