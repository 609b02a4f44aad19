import { describe, expect, it } from "vitest";
import { tailBytes, truncateBytes } from "../../../app/check-run-text.js";

describe("check-run text limits", () => {
  it("truncates to GitHub's 65,535 bytes on a character boundary and says so", () => {
    const text = "é".repeat(40_000); // 80,000 bytes
    const cut = truncateBytes(text);
    expect(Buffer.byteLength(cut)).toBeLessThanOrEqual(65_535);
    expect(cut).toMatch(/truncated to GitHub's 65,535-byte limit\)$/);
    expect(cut).not.toContain("\uFFFD");
    expect(truncateBytes("short")).toBe("short");
  });

  it("keeps the end of a log", () => {
    const log = `${"x".repeat(100)}€€€ the error`;
    const tail = tailBytes(log, 20);
    expect(Buffer.byteLength(tail)).toBeLessThanOrEqual(20 + 3);
    expect(tail.endsWith("the error")).toBe(true);
    expect(tail).not.toContain("\uFFFD");
  });
});
