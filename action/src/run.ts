/** The action's entry point (action.yml `main`): reads the step's inputs, runs `main`, reports a failure. */
import * as core from "@actions/core";
import { coreDeps, main, readInputs } from "./main.js";

try {
  await main({ inputs: readInputs(core.getInput), env: process.env, deps: coreDeps() });
} catch (e) {
  core.setFailed((e as Error).message);
}
