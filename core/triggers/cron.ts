/**
 * Five-field cron matching for `on.schedule` (the syntax is checked in spec/units.ts). A slot is
 * one minute given as its calendar fields, in UTC, so this stays free of the clock: the caller
 * says which minute it is asking about.
 */

export interface Minute {
  minute: number;
  hour: number;
  /** Day of the month, 1-31. */
  day: number;
  /** 1-12. */
  month: number;
  /** 0-6, Sunday 0. */
  weekday: number;
}

const FIELDS = [
  { min: 0, max: 59 },
  { min: 0, max: 23 },
  { min: 1, max: 31 },
  {
    min: 1,
    max: 12,
    names: ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"],
  },
  { min: 0, max: 7, names: ["sun", "mon", "tue", "wed", "thu", "fri", "sat"] },
] as const;

type Field = (typeof FIELDS)[number];

/**
 * True when `expr` fires at `m`. As in Vixie cron, when both day-of-month and day-of-week are
 * restricted, either one matching is enough; day-of-week 7 is Sunday too.
 */
export function cronMatches(expr: string, m: Minute): boolean {
  const parts = expr.trim().split(/\s+/);
  if (parts.length !== 5) return false;
  const sets = parts.map((p, i) => values(p, FIELDS[i] as Field));
  const [mins, hours, days, months, weekdays] = sets as [
    Set<number>,
    Set<number>,
    Set<number>,
    Set<number>,
    Set<number>,
  ];
  if (!mins.has(m.minute) || !hours.has(m.hour) || !months.has(m.month)) return false;
  const dayOk = days.has(m.day);
  const weekdayOk = weekdays.has(m.weekday) || (m.weekday === 0 && weekdays.has(7));
  const dayRestricted = parts[2] !== "*";
  const weekdayRestricted = parts[4] !== "*";
  if (dayRestricted && weekdayRestricted) return dayOk || weekdayOk;
  return dayOk && weekdayOk;
}

function values(field: string, f: Field): Set<number> {
  const out = new Set<number>();
  for (const part of field.toLowerCase().split(",")) {
    const [range = "*", stepText] = part.split("/");
    const step = stepText ? Number(stepText) : 1;
    let lo: number = f.min;
    let hi: number = f.max;
    if (range !== "*") {
      const [a = "", b] = range.split("-");
      lo = value(a, f);
      hi = b === undefined ? (stepText ? f.max : lo) : value(b, f);
    }
    for (let v = lo; v <= hi; v += step) out.add(v);
  }
  return out;
}

function value(text: string, f: Field): number {
  if (/^\d+$/.test(text)) return Number(text);
  const names: readonly string[] = "names" in f ? f.names : [];
  const i = names.indexOf(text);
  return i === -1 ? Number.NaN : i + (f.min === 1 ? 1 : 0);
}
