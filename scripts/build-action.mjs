/**
 * `npm run build:action`: bundles the GitHub Action (action/src) into action/dist/index.js and
 * action/dist/post.js with esbuild. The bundle is committed (GitHub runs it as is); the output
 * is deterministic, so a test rebuilds it and fails when the committed one differs.
 * `--out DIR` writes elsewhere (the test's rebuild).
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { build } from "esbuild";

const root = join(import.meta.dirname, "..");
const i = process.argv.indexOf("--out");
const out = i > 0 ? process.argv[i + 1] : join(root, "action/dist");
mkdirSync(out, { recursive: true });
await build({
  entryPoints: {
    index: join(root, "action/src/run.ts"),
    post: join(root, "action/src/post.ts"),
  },
  outdir: out,
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  minify: true,
  legalComments: "none",
  logLevel: "warning",
  // Bundled CommonJS modules still call require: give them one.
  banner: {
    js: 'import { createRequire as __reprise_require } from "node:module"; const require = __reprise_require(import.meta.url);',
  },
});
