/** The store's retention plan (core/artifacts/retention.ts) and the sizes and ages gc is given. */
import { describe, expect, it } from "vitest";
import {
  parseAge,
  parseByteSize,
  planRetention,
  type StoredBlob,
} from "../../../core/artifacts/retention.js";

const NOW = new Date("2026-06-01T00:00:00Z");
const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const digest = (c: string) => `sha256:${c.repeat(64)}`;
const blob = (c: string, size: number, ageMs: number): StoredBlob => ({
  digest: digest(c),
  size,
  modified: new Date(NOW.getTime() - ageMs),
});
const none = { graceMs: HOUR, olderThanMs: null, maxBytes: null };
const names = (bs: readonly StoredBlob[]) => bs.map((b) => b.digest.slice(7, 8));

describe("planRetention", () => {
  // a: 40 days, b: 20 days, c: 10 days, d: 2 days old, all unreferenced; e: referenced; f: recent.
  const blobs = [
    blob("c", 300, 10 * DAY),
    blob("a", 100, 40 * DAY),
    blob("e", 1_000, 90 * DAY),
    blob("d", 400, 2 * DAY),
    blob("f", 50, HOUR / 2),
    blob("b", 200, 20 * DAY),
  ];
  const live = (d: string) => d === digest("e");

  it("removes every unreferenced blob past the grace period, oldest first, without limits", () => {
    const plan = planRetention(blobs, live, NOW, none);
    expect(names(plan.remove)).toEqual(["a", "b", "c", "d"]);
    expect(plan.kept.referenced).toEqual({ blobs: 1, bytes: 1_000 });
    expect(plan.kept.recent).toEqual({ blobs: 1, bytes: 50 });
    expect(plan.kept.unreferenced).toEqual({ blobs: 0, bytes: 0 });
    expect(plan.before).toEqual({ blobs: 6, bytes: 2_050 });
    expect(plan.after).toEqual({ blobs: 2, bytes: 1_050 });
  });

  it("never removes a referenced blob, however old, nor a recent one", () => {
    const plan = planRetention(blobs, live, NOW, { ...none, maxBytes: 0 });
    expect(names(plan.remove)).not.toContain("e");
    expect(names(plan.remove)).not.toContain("f");
    expect(plan.overMaxSize).toBe(true);
  });

  it("--older-than removes only the unreferenced blobs at least that old", () => {
    const plan = planRetention(blobs, live, NOW, { ...none, olderThanMs: 15 * DAY });
    expect(names(plan.remove)).toEqual(["a", "b"]);
    expect(plan.kept.unreferenced).toEqual({ blobs: 2, bytes: 700 });
  });

  it("--max-size removes the oldest unreferenced blobs until the whole store fits", () => {
    // 2,050 bytes in all: removing a (100) and b (200) leaves 1,750; c (300) more leaves 1,450.
    const plan = planRetention(blobs, live, NOW, { ...none, maxBytes: 1_500 });
    expect(names(plan.remove)).toEqual(["a", "b", "c"]);
    expect(plan.after.bytes).toBe(1_450);
    expect(plan.overMaxSize).toBe(false);
    expect(planRetention(blobs, live, NOW, { ...none, maxBytes: 5_000 }).remove).toEqual([]);
  });

  it("with both limits, removes a blob when either says so", () => {
    const byAge = { ...none, olderThanMs: 15 * DAY, maxBytes: 1_900 };
    // Age alone: a, b. Size alone: a, b (1,750 <= 1,900). Together: a, b.
    expect(names(planRetention(blobs, live, NOW, byAge).remove)).toEqual(["a", "b"]);
    const bySize = { ...none, olderThanMs: 30 * DAY, maxBytes: 1_200 };
    // Age alone: a. Size alone: a, b, c, d (1,050). Together: the longer, a to d.
    expect(names(planRetention(blobs, live, NOW, bySize).remove)).toEqual(["a", "b", "c", "d"]);
  });

  it("orders blobs stored at the same time by digest, so every run plans the same", () => {
    const same = [blob("9", 1, DAY), blob("1", 1, DAY), blob("5", 1, DAY)];
    expect(names(planRetention(same, () => false, NOW, none).remove)).toEqual(["1", "5", "9"]);
  });
});

describe("parseByteSize", () => {
  it("reads decimal and binary units, any case, a space allowed", () => {
    expect(parseByteSize("50GiB")).toBe(50 * 2 ** 30);
    expect(parseByteSize("500MB")).toBe(500_000_000);
    expect(parseByteSize("1.5 TiB")).toBe(1.5 * 2 ** 40);
    expect(parseByteSize("10kb")).toBe(10_000);
    expect(parseByteSize("4096")).toBe(4096);
    expect(parseByteSize("0")).toBe(0);
    expect(parseByteSize("12B")).toBe(12);
  });

  it("refuses what is not a size", () => {
    for (const bad of ["", "GiB", "-1GB", "5 parsecs", "1e3", "1,000", "50GiBs", "0x10"])
      expect(parseByteSize(bad), bad).toBeNull();
  });
});

describe("parseAge", () => {
  it("reads the durations of reprise.yaml (d, h, m, s, combined)", () => {
    expect(parseAge("30d")).toBe(30 * DAY);
    expect(parseAge("12h")).toBe(12 * HOUR);
    expect(parseAge("1h30m")).toBe(1.5 * HOUR);
    expect(parseAge("90s")).toBe(90_000);
  });

  it("refuses zero, negatives, other units and a bare number (seconds? days?)", () => {
    for (const bad of ["", "0", "0d", "-1d", "2w", "1 day", "d", "90"])
      expect(parseAge(bad), bad).toBeNull();
  });
});
