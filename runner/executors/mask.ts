/**
 * Masking secret values in logs (docs/design.md section 2): every occurrence of a value, and of its
 * usual encodings, is replaced by `***` in what an executor stores and serves. One
 * implementation for every executor: the Kubernetes executor masks a pod's log as it keeps it,
 * the local executor rewrites an attempt's log file when the attempt ends and masks what it
 * serves while the attempt runs.
 *
 * The forms of a value that are masked (`maskedForms`):
 * - the value itself, its URL encoding (`encodeURIComponent`, and `+` for spaces as a form
 *   encodes it): found as they are;
 * - its hex (lower and upper case) and its base64 (standard and URL-safe; the value alone as
 *   `base64` pads it, and the characters that only the value decides in each of the three
 *   alignments it can take inside a longer base64 string): found with whitespace ignored, so
 *   `base64` wrapping its output at 76 columns, `xxd -p` at 60, or `od -An -tx1`'s spaces
 *   between bytes do not hide them. An encoded form shorter than 6 characters is not masked
 *   (it would match by chance); the value itself, from 3 characters, is.
 * Not covered: dumps that interleave offsets or characters with the bytes (plain `xxd`, `od`
 * with offsets), other encodings (octal, gzip...), whitespace runs longer than the form itself
 * across a chunk boundary, and a task that transforms a value in any other way. Masking is a
 * safety net for accidents, not a barrier against a task that means to publish what it was given.
 *
 * Cost: one pass over the bytes in JavaScript to take whitespace out, then one native indexOf per
 * form (about 6 spaced and 1 to 3 literal forms per value): about 4 times the cost of looking
 * for the values alone (11 MB with 5 values: ~130 ms against ~30 ms on the 2-core machine).
 *
 * It works on bytes (a log is whatever the task wrote, not necessarily UTF-8) and as a stream:
 * a chunk's last bytes are held back while they could still be the start of a form, so a value
 * split across two chunks is masked too. Where two forms overlap, the one that starts first
 * wins, and of two that start at the same byte the longer.
 */

/** Values shorter than this are not masked: masking "a" would garble every log. */
export const MIN_MASKED_LENGTH = 3;
/** Encoded forms shorter than this are not masked: 4 base64 or hex characters match by chance. */
export const MIN_ENCODED_LENGTH = 6;
export const MASK = "***";

const MASK_BYTES = Buffer.from(MASK, "utf8");
const EMPTY = Buffer.alloc(0);
/**
 * How the text the spaced forms are looked for in is made from a log's bytes: whitespace (what
 * separates the characters of a form: line wraps, dump spacing) is left out (0), and URL-safe
 * base64's `-` and `_` read as `+` and `/`, so one needle finds both alphabets.
 */
const SPACED_VIEW = new Uint8Array(256).map((_, b) => b);
for (const b of [0x20, 0x09, 0x0d, 0x0a]) SPACED_VIEW[b] = 0;
SPACED_VIEW[0x2d] = 0x2b; // - as +
SPACED_VIEW[0x5f] = 0x2f; // _ as /

/** The forms of `value` that are masked: found as they are, and found with whitespace ignored. */
export function maskedForms(value: string): { literal: string[]; spaced: string[] } {
  const bytes = Buffer.from(value, "utf8");
  const literal = new Set([value]);
  try {
    literal.add(encodeURIComponent(value));
    literal.add(new URLSearchParams([["", value]]).toString().slice(1));
  } catch {
    // A lone surrogate has no URL encoding; the value itself is still masked.
  }
  // Base64 in the standard alphabet only: the view they are looked for in reads URL-safe
  // base64 as standard (SPACED_VIEW). The value alone, padded as `base64` ends it.
  const spaced = new Set<string>([
    bytes.toString("hex"),
    bytes.toString("hex").toUpperCase(),
    bytes.toString("base64"),
  ]);
  for (let k = 0; k < 3; k++) {
    // In a longer string the value may start at any byte of a 3-byte group: the characters
    // whose 6 bits all come from the value are the same whatever surrounds it.
    const around = Buffer.concat([Buffer.alloc(k), bytes, Buffer.alloc(2)]);
    const from = Math.ceil((8 * k) / 6);
    const to = Math.floor((8 * (k + bytes.length)) / 6);
    spaced.add(around.toString("base64").slice(from, to));
  }
  for (const form of spaced) if (form.length < MIN_ENCODED_LENGTH) spaced.delete(form);
  return { literal: [...literal], spaced: [...spaced] };
}

export class Masker {
  /** Forms found as they are, as bytes, longest first, without duplicates. */
  readonly #literals: Buffer[];
  /** Hex and base64 forms, found in the log's bytes seen through SPACED_VIEW. */
  readonly #spaced: Buffer[];
  /** A possible form's beginning: held back until the next chunk decides. */
  readonly #keep: number;
  #carry: Buffer = EMPTY;
  /** How many occurrences were masked so far. */
  masked = 0;

  constructor(values: Iterable<string>) {
    const literals = new Set<string>();
    const spaced = new Set<string>();
    for (const v of values) {
      if (v.length < MIN_MASKED_LENGTH) continue;
      const forms = maskedForms(v);
      for (const f of forms.literal) literals.add(f);
      for (const f of forms.spaced) spaced.add(f);
    }
    this.#literals = [...literals]
      .map((v) => Buffer.from(v, "utf8"))
      .sort((a, b) => b.length - a.length);
    this.#spaced = [...spaced]
      .map((v) => Buffer.from(v, "latin1"))
      .sort((a, b) => b.length - a.length);
    // A spaced form may take up to twice its length with whitespace (od's "xx " per byte and a
    // line break every 16 is 1.5 times); longer spacing across a chunk boundary goes unseen.
    this.#keep = Math.max(
      0,
      (this.#literals[0]?.length ?? 0) - 1,
      2 * (this.#spaced[0]?.length ?? 0),
    );
  }

  /** Whether there is anything to mask at all. */
  get active(): boolean {
    return this.#literals.length > 0;
  }

  /** The most bytes one masked occurrence can span (0 with nothing to mask). */
  get longest(): number {
    return this.active ? this.#keep + 1 : 0;
  }

  /** The masked bytes that can be given out now; the rest waits for the next chunk or end(). */
  push(chunk: Uint8Array): Buffer {
    const bytes = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk);
    if (!this.active) return bytes;
    const data = this.#carry.length > 0 ? Buffer.concat([this.#carry, bytes]) : bytes;
    const { out, rest } = this.#scan(data, false);
    this.#carry = rest;
    return out;
  }

  /** What was held back, masked. */
  end(): Buffer {
    const { out } = this.#scan(this.#carry, true);
    this.#carry = EMPTY;
    return out;
  }

  #scan(data: Buffer, final: boolean): { out: Buffer; rest: Buffer } {
    // A form starting before `limit` fits entirely in `data`, so whether it is there is known.
    const limit = final ? data.length : Math.max(0, data.length - this.#keep);
    const hits: [number, number][] = [];
    for (const needle of this.#literals) {
      for (let i = data.indexOf(needle); i !== -1 && i < limit; ) {
        hits.push([i, i + needle.length]);
        i = data.indexOf(needle, i + needle.length);
      }
    }
    if (this.#spaced.length > 0 && limit > 0) this.#spacedHits(data, limit, hits);
    hits.sort((a, b) => a[0] - b[0] || b[1] - a[1]);
    const pieces: Buffer[] = [];
    let pos = 0;
    for (const [start, end] of hits) {
      if (start < pos) continue;
      pieces.push(data.subarray(pos, start), MASK_BYTES);
      this.masked++;
      pos = end;
    }
    const cut = Math.max(pos, limit);
    if (cut > pos) pieces.push(data.subarray(pos, cut));
    return {
      out: pieces.length === 1 ? (pieces[0] as Buffer) : Buffer.concat(pieces),
      rest: data.subarray(cut),
    };
  }

  /** The spaced forms in `data`, as byte ranges of `data`. */
  #spacedHits(data: Buffer, limit: number, hits: [number, number][]): void {
    const view = Buffer.allocUnsafe(data.length);
    let n = 0;
    for (let i = 0; i < data.length; i++) {
      const b = SPACED_VIEW[data[i] as number] as number;
      if (b !== 0) view[n++] = b;
    }
    const compact = view.subarray(0, n);
    // Built on the first hit only: where each byte of `compact` is in `data`.
    let at: Int32Array | null = null;
    const offset = (i: number): number => {
      if (n === data.length) return i;
      at ??= positions(data, n);
      return at[i] as number;
    };
    for (const needle of this.#spaced) {
      for (let i = compact.indexOf(needle); i !== -1; ) {
        const start = offset(i);
        if (start >= limit) break;
        hits.push([start, offset(i + needle.length - 1) + 1]);
        i = compact.indexOf(needle, i + needle.length);
      }
    }
  }
}

/** The offset in `data` of each byte SPACED_VIEW keeps, in order. */
function positions(data: Buffer, count: number): Int32Array {
  const at = new Int32Array(count);
  let n = 0;
  for (let i = 0; i < data.length; i++) if (SPACED_VIEW[data[i] as number] !== 0) at[n++] = i;
  return at;
}

/** `text` with every masked form of each value (at least MIN_MASKED_LENGTH long) replaced by `***`. */
export function mask(text: string, values: Iterable<string>): string {
  const masker = new Masker(values);
  if (!masker.active) return text;
  const out = Buffer.concat([masker.push(Buffer.from(text, "utf8")), masker.end()]);
  return masker.masked === 0 ? text : out.toString("utf8");
}
