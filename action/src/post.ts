/** The post step (action.yml `post`, only when the job was cancelled): abort the execution it started. */
import * as core from "@actions/core";
import { abortStarted, coreDeps, readInputs } from "./main.js";

try {
  await abortStarted({ inputs: readInputs(core.getInput), env: process.env, deps: coreDeps() });
} catch (e) {
  core.warning(`could not abort the execution: ${(e as Error).message}`);
}
