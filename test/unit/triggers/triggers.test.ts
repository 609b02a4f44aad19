import { describe, expect, it } from "vitest";
import { triggerMatchesBranch } from "../../../core/triggers/branches.js";
import { cronMatches } from "../../../core/triggers/cron.js";

const at = (minute: number, hour: number, day: number, month: number, weekday: number) => ({
  minute,
  hour,
  day,
  month,
  weekday,
});

describe("automatic triggers", () => {
  it("match branches by glob, none set matching every branch, ! excluding", () => {
    const t = (branches: string[] | null) => ({ branches, inputs: {} });
    expect(triggerMatchesBranch(t(null), "anything/at-all")).toBe(true);
    expect(triggerMatchesBranch(t(["main"]), "main")).toBe(true);
    expect(triggerMatchesBranch(t(["main"]), "maint")).toBe(false);
    expect(triggerMatchesBranch(t(["release/*"]), "release/1.2")).toBe(true);
    expect(triggerMatchesBranch(t(["release/*"]), "release/1/2")).toBe(false);
    expect(triggerMatchesBranch(t(["release/**"]), "release/1/2")).toBe(true);
    expect(triggerMatchesBranch(t(["**", "!wip/**"]), "wip/x")).toBe(false);
    expect(triggerMatchesBranch(null, "main")).toBe(false);
  });

  it("match cron expressions minute by minute, day-of-month OR day-of-week as Vixie cron", () => {
    expect(cronMatches("0 3 * * *", at(0, 3, 10, 5, 2))).toBe(true);
    expect(cronMatches("0 3 * * *", at(1, 3, 10, 5, 2))).toBe(false);
    expect(cronMatches("*/15 * * * *", at(45, 7, 1, 1, 0))).toBe(true);
    expect(cronMatches("*/15 * * * *", at(46, 7, 1, 1, 0))).toBe(false);
    expect(cronMatches("0 9 * * mon-fri", at(0, 9, 6, 1, 6))).toBe(false);
    expect(cronMatches("0 9 * * mon-fri", at(0, 9, 5, 1, 1))).toBe(true);
    expect(cronMatches("0 0 1 * sun", at(0, 0, 15, 3, 0))).toBe(true);
    expect(cronMatches("0 0 * * 7", at(0, 0, 15, 3, 0))).toBe(true);
    expect(cronMatches("30 2 1,15 jan,jul *", at(30, 2, 15, 7, 3))).toBe(true);
  });
});
