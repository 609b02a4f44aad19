/**
 * Masking secret values in logs (DESIGN.md section 2): every occurrence of a value is replaced
 * by `***` in what an executor stores and serves. One implementation for every executor: the
 * Kubernetes executor masks a pod's log as it keeps it, the local executor rewrites an attempt's
 * log file when the attempt ends and masks what it serves while the attempt runs.
 *
 * It works on bytes (a log is whatever the task wrote, not necessarily UTF-8) and as a stream:
 * a chunk's last bytes are held back while they could still be the start of a value, so a value
 * split across two chunks is masked too. Where two values overlap, the one that starts first
 * wins, and of two that start at the same byte the longer.
 */

/** Values shorter than this are not masked: masking "a" would garble every log. */
export const MIN_MASKED_LENGTH = 3;
export const MASK = "***";

const MASK_BYTES = Buffer.from(MASK, "utf8");
const EMPTY = Buffer.alloc(0);

export class Masker {
  /** The values as bytes, longest first, without duplicates or too-short ones. */
  readonly #needles: Buffer[];
  /** A possible value's beginning: held back until the next chunk decides. */
  readonly #keep: number;
  #carry: Buffer = EMPTY;
  /** How many occurrences were masked so far. */
  masked = 0;

  constructor(values: Iterable<string>) {
    const unique = new Set<string>();
    for (const v of values) if (v.length >= MIN_MASKED_LENGTH) unique.add(v);
    this.#needles = [...unique]
      .map((v) => Buffer.from(v, "utf8"))
      .sort((a, b) => b.length - a.length);
    this.#keep = Math.max(0, (this.#needles[0]?.length ?? 0) - 1);
  }

  /** Whether there is anything to mask at all. */
  get active(): boolean {
    return this.#needles.length > 0;
  }

  /** The longest value's length in bytes (0 with none). */
  get longest(): number {
    return this.#needles[0]?.length ?? 0;
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
    // A value starting before `limit` fits entirely in `data`, so whether it is there is known.
    const limit = final ? data.length : Math.max(0, data.length - this.#keep);
    const pieces: Buffer[] = [];
    let pos = 0;
    while (pos < limit) {
      let at = -1;
      let length = 0;
      for (const needle of this.#needles) {
        const i = data.indexOf(needle, pos);
        if (i !== -1 && (at === -1 || i < at)) {
          at = i;
          length = needle.length;
        }
      }
      if (at === -1 || at >= limit) break;
      pieces.push(data.subarray(pos, at), MASK_BYTES);
      this.masked++;
      pos = at + length;
    }
    const cut = Math.max(pos, limit);
    if (cut > pos) pieces.push(data.subarray(pos, cut));
    return {
      out: pieces.length === 1 ? (pieces[0] as Buffer) : Buffer.concat(pieces),
      rest: data.subarray(cut),
    };
  }
}

/** `text` with every occurrence of each value (at least MIN_MASKED_LENGTH long) replaced by `***`. */
export function mask(text: string, values: Iterable<string>): string {
  const masker = new Masker(values);
  if (!masker.active) return text;
  const out = Buffer.concat([masker.push(Buffer.from(text, "utf8")), masker.end()]);
  return masker.masked === 0 ? text : out.toString("utf8");
}
