/** The public surface of core: pure functions over plain data. */
export * from "./dag/graph.js";
export * from "./diff/diff-versions.js";
export * from "./hash/cache-key.js";
export * from "./hash/digest.js";
export * from "./hash/sources.js";
export * from "./hash/task-digest.js";
export * from "./spec/diagnostics.js";
export { type Locator, MAX_TASKS, type ParseResult, parseSpec } from "./spec/parse-spec.js";
export * from "./spec/types.js";
export { MAX_NODES } from "./spec/validate-workflow.js";
export { MAX_SPEC_BYTES } from "./spec/yaml-source.js";
export * from "./version/build-version.js";
export * from "./version/repo-key.js";
