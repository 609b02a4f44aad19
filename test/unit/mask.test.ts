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

  it("masks the base64 (standard, URL-safe, in any alignment), hex and URL forms of a value", () => {
    const v = "tok/with+special chars&=?-0123456789";
    const b = Buffer.from(v);
    for (const form of [
      b.toString("base64"),
      b.toString("base64url"),
      b.toString("hex"),
      b.toString("hex").toUpperCase(),
      encodeURIComponent(v),
      new URLSearchParams({ q: v }).toString().slice(2),
    ])
      expect(mask(`<${form}>`, [v])).toBe("<***>");
    // Inside a longer base64 string the value starts at any byte of a 3-byte group: at most the
    // characters it shares with its neighbours are left.
    for (const before of ["", "x", "xy", "xyz"]) {
      const enc = Buffer.from(`${before}${v}!!`).toString("base64");
      const out = mask(enc, [v]);
      expect(out).toContain("***");
      expect(enc.length - out.replace("***", "").length).toBeGreaterThanOrEqual(
        Math.floor((8 * v.length) / 6) - 1,
      );
    }
    // Whitespace between the characters of an encoded form (line wraps, dumps) does not hide it.
    const wrapped = b
      .toString("hex")
      .replace(/(..)/g, "$1 ")
      .replace(/(.{48})/g, "$1\n ");
    expect(mask(`dump:${wrapped}end`, [v])).toBe("dump:*** end");
    // Encoded forms under 6 characters are left alone (they would match by chance): "abc" is
    // masked, and its hex, but not its 4-character base64.
    expect(mask("616263 YWJj abc", ["abc"])).toBe("*** YWJj ***");
  });

  it("gives the same result whatever the chunks, for encoded forms split by whitespace too", () => {
    const values = ["s3cr3t-value", "hunter22!"];
    const forms = values.flatMap((v) => [
      Buffer.from(v).toString("base64"),
      Buffer.from(v).toString("hex").replace(/(..)/g, "$1 "),
      Buffer.from(`a${v}`).toString("base64url"),
    ]);
    fc.assert(
      fc.property(
        fc.array(fc.constantFrom(...forms, "x", " ", "\n", "QUJD", "0a"), { maxLength: 20 }),
        fc.array(fc.nat(300), { maxLength: 8 }),
        (parts, cuts) => {
          const text = parts.join("");
          expect(streamed(text, values, cuts)).toBe(mask(text, values));
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
