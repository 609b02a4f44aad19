/**
 * B1: select. Keeps the features whose correlation with the target, measured on the train rows,
 * is at least `min_corr` in absolute value, and writes `split, <kept features...>, target`.
 */
import { correlation } from "../lib/math.mjs";
import { readCsv, round, runTask, writeCsv } from "../lib/task.mjs";

runTask(
  {
    name: "select",
    inputs: { data: "file", min_corr: "number" },
    outputs: { data: "file", features: "json", dropped: "json" },
  },
  ({ data, min_corr }) => {
    const { columns, rows } = readCsv(data);
    const features = columns.filter((c) => c !== "split" && c !== "target");
    const train = rows.filter((row) => row.split === "train");
    const ys = train.map((row) => row.target);
    const strength = Object.fromEntries(
      features.map((f) => [
        f,
        Math.abs(
          correlation(
            train.map((row) => row[f]),
            ys,
          ),
        ),
      ]),
    );
    const kept = features.filter((f) => strength[f] >= min_corr);
    const dropped = features.filter((f) => strength[f] < min_corr);
    if (kept.length === 0)
      throw new Error(
        `min_corr ${min_corr} drops every feature (strongest: ${Math.max(...Object.values(strength))})`,
      );
    writeCsv("data", ["split", ...kept, "target"], rows);
    for (const f of features)
      console.log(
        `select: |r(${f}, target)| = ${round(strength[f], 4)} ${kept.includes(f) ? "kept" : "dropped"}`,
      );
    return { features: kept, dropped };
  },
);
