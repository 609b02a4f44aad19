/**
 * What the kubelet's eviction manager needs for emptyDir `sizeLimit`: Kubernetes quantities and a
 * du-like walk of a volume's directory.
 */
import { lstat, readdir } from "node:fs/promises";
import { join } from "node:path";

const SUFFIXES: Record<string, number> = {
  "": 1,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  E: 1e18,
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  Pi: 2 ** 50,
  Ei: 2 ** 60,
};

/** Bytes in a quantity such as `1Gi`, `500M`, `1.5Ki` or `1048576`; throws on anything else. */
export function parseQuantity(quantity: string): number {
  const m = /^([0-9]+(?:\.[0-9]+)?)([kMGTPE]i?|)$/.exec(quantity.trim());
  const factor = m ? SUFFIXES[m[2] as string] : undefined;
  if (!m || factor === undefined) {
    throw new Error(
      `fake kubelet: cannot read the quantity ${JSON.stringify(quantity)}: write a number with an optional suffix (Ki, Mi, Gi, k, M, G...)`,
    );
  }
  return Math.ceil(Number(m[1]) * factor);
}

/** The disk space a directory's files take, as du counts it (allocated blocks), 0 when gone. */
export async function diskUsage(dir: string): Promise<number> {
  let total = 0;
  const walk = async (path: string): Promise<void> => {
    const stat = await lstat(path).catch(() => null);
    if (!stat) return;
    total += stat.blocks * 512;
    if (!stat.isDirectory()) return;
    const entries = await readdir(path).catch(() => [] as string[]);
    await Promise.all(entries.map((e) => walk(join(path, e))));
  };
  await walk(dir);
  return total;
}
