/**
 * A: prepare. Generates a synthetic housing data set (deterministic for a given dataset name and
 * seed) and writes it as CSV. Prices are in thousands; `weekday_listed` is deliberately unrelated
 * to the price, the kind of column feature selection should drop.
 */
import { normal, random } from "../lib/math.mjs";
import { round, runTask, writeCsv } from "../lib/task.mjs";

/** The data sets this task knows: each a size and the spread of the price noise. */
const DATASETS = {
  housing: { rows: 240, noise: 15 },
  "housing-noisy": { rows: 240, noise: 60 },
  "housing-small": { rows: 40, noise: 15 },
};

const COLUMNS = ["sqm", "rooms", "age", "distance_km", "weekday_listed", "price"];

runTask(
  {
    name: "prepare",
    inputs: { dataset: "string", seed: "integer" },
    outputs: { rows: "integer", data: "file" },
  },
  ({ dataset, seed }) => {
    const spec = DATASETS[dataset];
    if (!spec)
      throw new Error(`unknown dataset "${dataset}"; known: ${Object.keys(DATASETS).join(", ")}`);
    const rand = random(`${dataset}/${seed}`);
    const rows = [];
    for (let i = 0; i < spec.rows; i++) {
      const sqm = round(30 + 170 * rand(), 1);
      const rooms = Math.min(6, Math.max(1, Math.round(sqm / 35 + 0.7 * normal(rand))));
      const age = Math.floor(80 * rand());
      const distance = round(0.5 + 29.5 * rand(), 1);
      const weekday = Math.floor(7 * rand());
      const price =
        60 + 1.6 * sqm + 9 * rooms - 1.5 * age - 6 * distance + spec.noise * normal(rand);
      rows.push({
        sqm,
        rooms,
        age,
        distance_km: distance,
        weekday_listed: weekday,
        price: round(price, 1),
      });
    }
    const bytes = writeCsv("data", COLUMNS, rows);
    console.log(
      `prepare: ${rows.length} rows of "${dataset}" (seed ${seed}), ${bytes} bytes of CSV`,
    );
    return { rows: rows.length };
  },
);
