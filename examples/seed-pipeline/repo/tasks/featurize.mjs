/**
 * B: featurize. Splits the rows into train and test sets, standardizes every feature with the
 * mean and deviation of the train rows only (the test rows must not leak into training), and
 * writes `split, <features...>, target`.
 */
import { mean, std } from "../lib/math.mjs";
import { readCsv, round, runTask, writeCsv } from "../lib/task.mjs";

const TARGET = "price";

runTask(
  {
    name: "featurize",
    inputs: { data: "file", test_fraction: "number" },
    outputs: { data: "file", features: "json", train_rows: "integer", test_rows: "integer" },
  },
  ({ data, test_fraction }) => {
    if (!(test_fraction > 0 && test_fraction < 1))
      throw new Error(`test_fraction must be between 0 and 1, got ${test_fraction}`);
    const { columns, rows } = readCsv(data);
    if (!columns.includes(TARGET)) throw new Error(`${data} has no "${TARGET}" column`);
    const features = columns.filter((c) => c !== TARGET);
    // Every 1/test_fraction-th row is a test row: an even spread, the same on every run.
    const split = rows.map((_, i) =>
      Math.floor((i + 1) * test_fraction) > Math.floor(i * test_fraction) ? "test" : "train",
    );
    const train = rows.filter((_, i) => split[i] === "train");
    const scale = Object.fromEntries(
      features.map((f) => {
        const values = train.map((r) => r[f]);
        return [f, { mean: mean(values), std: std(values) || 1 }];
      }),
    );
    const out = rows.map((r, i) => {
      const row = { split: split[i], target: r[TARGET] };
      for (const f of features) row[f] = round((r[f] - scale[f].mean) / scale[f].std, 6);
      return row;
    });
    writeCsv("data", ["split", ...features, "target"], out);
    const testRows = split.filter((s) => s === "test").length;
    console.log(
      `featurize: ${features.length} features, ${train.length} train / ${testRows} test rows`,
    );
    return { features, train_rows: train.length, test_rows: testRows };
  },
);
