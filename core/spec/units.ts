/** Durations, Kubernetes quantities and cron fields: syntax only, no clock. */

const DURATION = /^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/;

/** "1h30m" -> 5400; a bare integer is seconds. Returns null when not a duration. */
export function parseDuration(value: unknown): number | null {
  if (typeof value === "number") return Number.isSafeInteger(value) && value > 0 ? value : null;
  if (typeof value !== "string" || value === "") return null;
  const m = DURATION.exec(value);
  if (!m) return null;
  const [, d, h, min, s] = m;
  const total =
    Number(d ?? 0) * 86_400 + Number(h ?? 0) * 3_600 + Number(min ?? 0) * 60 + Number(s ?? 0);
  return Number.isSafeInteger(total) && total > 0 ? total : null;
}

// The Kubernetes resource.Quantity grammar (apimachinery/pkg/api/resource/quantity.go).
const QUANTITY =
  /^[+]?(?:\d+(?:\.\d*)?|\.\d+)(?:Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?\d+)?$/;

/** Normalizes a quantity (YAML may give a number: `cpu: 1`) to its string form, or null. */
export function parseQuantity(value: unknown): string | null {
  if (typeof value === "number") return Number.isFinite(value) && value > 0 ? String(value) : null;
  if (typeof value !== "string" || !QUANTITY.test(value)) return null;
  const normalized = value.replace(/^\+/, "");
  return Number.parseFloat(normalized) > 0 ? normalized : null;
}

const CRON_FIELDS: Array<{ name: string; min: number; max: number; names?: string[] }> = [
  { name: "minute", min: 0, max: 59 },
  { name: "hour", min: 0, max: 23 },
  { name: "day of month", min: 1, max: 31 },
  {
    name: "month",
    min: 1,
    max: 12,
    names: ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"],
  },
  { name: "day of week", min: 0, max: 7, names: ["sun", "mon", "tue", "wed", "thu", "fri", "sat"] },
];

/** Checks a five-field cron expression; returns the reason it is wrong, or null. */
export function cronProblem(expr: string): string | null {
  const fields = expr.trim().split(/\s+/);
  if (fields.length !== 5) {
    return `expected 5 fields (minute hour day-of-month month day-of-week), got ${fields.length}`;
  }
  for (let i = 0; i < 5; i++) {
    const f = CRON_FIELDS[i];
    const text = fields[i];
    if (!f || text === undefined) continue;
    for (const part of text.split(",")) {
      const problem = cronPartProblem(part.toLowerCase(), f);
      if (problem) return `${f.name} field "${text}": ${problem}`;
    }
  }
  return null;
}

function cronPartProblem(
  part: string,
  f: { min: number; max: number; names?: string[] },
): string | null {
  const [range, step, extra] = part.split("/");
  if (extra !== undefined || range === undefined || range === "") return `"${part}" is not a value`;
  if (step !== undefined && !/^[1-9]\d*$/.test(step))
    return `step "${step}" must be a positive integer`;
  if (range === "*") return null;
  const bounds = range.split("-");
  if (bounds.length > 2) return `"${range}" is not a range`;
  const values: number[] = [];
  for (const b of bounds) {
    const v = cronValue(b, f);
    if (v === null) return `"${b}" is not between ${f.min} and ${f.max}`;
    values.push(v);
  }
  if (values.length === 2 && (values[0] as number) > (values[1] as number)) {
    return `range "${range}" runs backwards`;
  }
  return null;
}

function cronValue(text: string, f: { min: number; max: number; names?: string[] }): number | null {
  if (/^\d+$/.test(text)) {
    const v = Number(text);
    return v >= f.min && v <= f.max ? v : null;
  }
  const i = f.names?.indexOf(text) ?? -1;
  return i === -1 ? null : i + (f.min === 1 ? 1 : 0);
}
