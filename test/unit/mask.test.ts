/** runner/executors/mask.ts: secret values become `***`, however a log is cut into chunks. */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { Masker, mask } from "../../runner/executors/mask.js";

function streamed(text: string, values: string[], cuts: number[]): string {
  const bytes = Buffer.from(text, "utf8");
  const masker = new Masker(values);
  const out: Buffer[] = [];
  let at = 0;
  for (const cut of [...cuts].sort((a, b) => a - b)) {
    const to = Math.min(bytes.length, Math.max(at, cut));
    out.push(masker.push(bytes.subarray(at, to)));
    at = to;
  }
  out.push(masker.push(bytes.subarray(at)), masker.end());
  return Buffer.concat(out).toString("utf8");
}

describe("mask", () => {
  it("replaces every occurrence, the longest value first where two start together", () => {
    expect(mask("token=abc123 again abc123.", ["abc123"])).toBe("token=*** again ***.");
    expect(mask("abc123456", ["abc123", "abc123456"])).toBe("***");
    expect(mask("xx abc yy", ["abc", "c y"])).toBe("xx *** yy");
  });

  it("leaves values shorter than 3 characters, and text without values, alone", () => {
    expect(mask("a b ab", ["a", "ab"])).toBe("a b ab");
    expect(mask("nothing here", ["s3cr3t"])).toBe("nothing here");
    expect(mask("", ["s3cr3t"])).toBe("");
  });

  it("masks multi-byte values", () => {
    expect(mask("clé: pässwörd!", ["pässwörd"])).toBe("clé: ***!");
  });

  it("gives the same result whatever the chunks (a value split across two is masked)", () => {
    fc.assert(
      fc.property(
        fc.array(fc.constantFrom("s3cr3t", "hunter22", "é-ü-ø", "x", "-", " ", "s3c", "\n"), {
          maxLength: 30,
        }),
        fc.array(fc.nat(200), { maxLength: 8 }),
        (parts, cuts) => {
          const text = parts.join("");
          const values = ["s3cr3t", "hunter22", "é-ü-ø"];
          const whole = mask(text, values);
          expect(streamed(text, values, cuts)).toBe(whole);
          for (const v of values) expect(whole).not.toContain(v);
        },
      ),
    );
  });

  it("counts what it masked", () => {
    const m = new Masker(["abc"]);
    Buffer.concat([m.push(Buffer.from("ab")), m.push(Buffer.from("c abc")), m.end()]);
    expect(m.masked).toBe(2);
  });
});
