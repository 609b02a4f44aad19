/** Execution ids: lowercase, DNS-1123-safe, roughly time-ordered, unguessable. */
import { randomBytes } from "node:crypto";

const ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz";

/** "e" + 8 chars of milliseconds (base 36) + 10 random chars: 19 characters. */
export function newExecutionId(now = Date.now()): string {
  const time = now.toString(36).padStart(8, "0").slice(-8);
  const bytes = randomBytes(10);
  let rand = "";
  for (const b of bytes) rand += ALPHABET[b % 36];
  return `e${time}${rand}`;
}

export function newTokenId(): string {
  return `t${randomBytes(8).toString("hex")}`;
}
