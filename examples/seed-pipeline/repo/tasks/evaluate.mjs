/** D: evaluate. Scores the trained model on the test rows it never saw. */
import { readFileSync } from "node:fs";
import { scores } from "../lib/math.mjs";
import { readCsv, runTask } from "../lib/task.mjs";

runTask(
  {
    name: "evaluate",
    inputs: { data: "file", model: "file", min_r2: "number" },
    outputs: { rmse: "number", r2: "number", passed: "boolean" },
  },
  ({ data, model: modelFile, min_r2 }) => {
    const model = JSON.parse(readFileSync(modelFile, "utf8"));
    if (model?.kind !== "linear")
      throw new Error(`not a model from train: ${JSON.stringify(model)}`);
    const { columns, rows } = readCsv(data);
    const missing = model.features.filter((f) => !columns.includes(f));
    if (missing.length > 0)
      throw new Error(`${data} lacks the model's feature(s) ${missing.join(", ")}`);
    const test = rows.filter((row) => row.split === "test");
    if (test.length === 0) throw new Error(`${data} has no test rows`);
    const predicted = test.map((row) =>
      model.features.reduce((sum, f) => sum + row[f] * model.weights[f], model.intercept),
    );
    const { mse, r2 } = scores(
      predicted,
      test.map((row) => row.target),
    );
    const rmse = Math.sqrt(mse);
    const passed = r2 >= min_r2;
    console.log(
      `evaluate: ${test.length} test rows, RMSE ${rmse.toFixed(3)}, R^2 ${r2.toFixed(4)} (${passed ? "passed" : "below"} ${min_r2})`,
    );
    return { rmse, r2, passed };
  },
);
