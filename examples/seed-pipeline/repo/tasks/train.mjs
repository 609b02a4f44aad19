/** C: train. Fits a ridge linear regression of the target on every feature column. */

import { writeFileSync } from "node:fs";
import { fitLinear, scores } from "../lib/math.mjs";
import { outputPath, readCsv, runTask } from "../lib/task.mjs";

runTask(
  {
    name: "train",
    inputs: { data: "file", l2: "number" },
    outputs: { model: "file", loss: "number" },
  },
  ({ data, l2 }) => {
    const { columns, rows } = readCsv(data);
    const features = columns.filter((c) => c !== "split" && c !== "target");
    const train = rows.filter((row) => row.split === "train");
    if (train.length <= features.length)
      throw new Error(
        `${features.length} features need more than ${features.length} training rows; got ${train.length} of ${rows.length} rows in ${data}`,
      );
    const xs = train.map((row) => features.map((f) => row[f]));
    const ys = train.map((row) => row.target);
    const { weights, intercept } = fitLinear(xs, ys, l2);
    const predicted = xs.map((x) => x.reduce((sum, v, i) => sum + v * weights[i], intercept));
    const { mse } = scores(predicted, ys);
    const model = {
      kind: "linear",
      features,
      weights: Object.fromEntries(features.map((f, i) => [f, weights[i]])),
      intercept,
    };
    writeFileSync(outputPath("model"), `${JSON.stringify(model, null, 2)}\n`);
    console.log(
      `train: fitted ${features.length} weights on ${train.length} rows, train MSE ${mse.toFixed(3)}`,
    );
    return { loss: mse };
  },
);
