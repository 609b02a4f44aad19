/** The end of a task's log, for both executors. */

/** The last `max` bytes of `text` as UTF-8, not starting in the middle of a character. */
export function lastBytes(text: Buffer | string, max: number): string {
  const bytes = typeof text === "string" ? Buffer.from(text, "utf8") : text;
  if (bytes.length <= max) return bytes.toString("utf8");
  let start = bytes.length - max;
  while (start < bytes.length && ((bytes[start] ?? 0) & 0xc0) === 0x80) start++;
  return bytes.subarray(start).toString("utf8");
}
