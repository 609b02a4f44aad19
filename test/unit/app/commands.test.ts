import { describe, expect, it } from "vitest";
import { parseCommands } from "../../../app/commands.js";

describe("comment commands", () => {
  it("reads /relaunch with an id and flags, /run with inputs, /cancel", () => {
    expect(parseCommands("/relaunch e-123 --recover --no-cache")).toEqual([
      { kind: "relaunch", execution: "e-123", recover: true, noCache: true },
    ]);
    expect(parseCommands("Please:\n/run train dataset=s3://x seed=7\n/cancel")).toEqual([
      { kind: "run", workflow: "train", inputs: ["dataset=s3://x", "seed=7"] },
      { kind: "cancel", execution: null },
    ]);
  });

  it("ignores quoted lines, fenced and indented code, and slashes inside words", () => {
    const body = [
      "> /relaunch",
      "```sh",
      "/run train",
      "```",
      "    /cancel",
      "see /path/to/file and a/relaunch",
      "~~~",
      "/relaunch",
      "~~~",
    ].join("\n");
    expect(parseCommands(body)).toEqual([]);
  });

  it("reports unknown commands and bad arguments with what is wrong", () => {
    expect(parseCommands("/deploy prod")).toEqual([
      { kind: "unknown", name: "deploy", problem: "is not a Reprise command" },
    ]);
    expect(parseCommands("/relaunch --force")[0]).toMatchObject({
      kind: "unknown",
      problem: "unknown option --force",
    });
    expect(parseCommands("/run")[0]).toMatchObject({ kind: "unknown", name: "run" });
    expect(parseCommands("/run train seed")[0]).toMatchObject({
      problem: "inputs are name=value, got seed",
    });
  });
});
