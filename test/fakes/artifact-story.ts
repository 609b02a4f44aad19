/**
 * A small run with artifacts, for the API's and the UI's artifact tests: a temporary git
 * repository whose task `make` writes one file of each kind the execution page previews or
 * refuses to (CSV text with markup in it, a PNG, an SVG with a script, an HTML page, binary
 * bytes) and a directory, and whose task `use` reads the CSV. An uploaded file is the workflow's
 * input. It runs through the engine and the local executor with a local blob store, so every row
 * and blob is what a real run leaves.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ExecutionRecord } from "../../db/types.js";
import { LocalBlobStore } from "../../runner/artifacts/local-store.js";
import { Engine } from "../../runner/engine/engine.js";
import { createLocalExecutor, type LocalExecutor } from "../../runner/executors/local/index.js";
import { registerLocalCommit } from "../../runner/registry.js";
import { startExecution } from "../../runner/service.js";
import type { TestStore } from "../setup/stores.js";
import { NODE, type TaskProject, taskProject } from "./task-project.js";

/** A 1x1 transparent PNG. */
export const PNG = Buffer.from(
  "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII=",
  "base64",
);
export const SVG = `<?xml version="1.0"?>\n<!-- a drawing -->\n<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4"><script>alert("svg")</script><rect width="4" height="4"/></svg>\n`;
export const HTML = `<!DOCTYPE html><html><body><script>alert("html")</script></body></html>\n`;
/** 30 lines: a header and 29 rows, one with markup that must show as text. */
export const CSV = [
  "id,label",
  ...Array.from({ length: 29 }, (_, i) => (i === 0 ? `0,<b>bold</b>` : `${i},row ${i}`)),
].join("\n");
export const SEED = "seed bytes\n";

const MAKE = `import { mkdirSync, writeFileSync, symlinkSync } from "node:fs";
import { join } from "node:path";
const out = (name) => process.env["REPRISE_OUTPUT_" + name.toUpperCase()];
writeFileSync(out("table"), ${JSON.stringify(`${CSV}\n`)});
writeFileSync(out("plot"), Buffer.from(${JSON.stringify(PNG.toString("base64"))}, "base64"));
writeFileSync(out("logo"), ${JSON.stringify(SVG)});
writeFileSync(out("page"), ${JSON.stringify(HTML)});
writeFileSync(out("blob"), Buffer.from([0, 1, 2, 3, 0, 255]));
const tree = out("tree");
mkdirSync(join(tree, "sub"), { recursive: true });
writeFileSync(join(tree, "a.txt"), "a\\n");
writeFileSync(join(tree, "sub", "b.txt"), "b\\n");
symlinkSync("a.txt", join(tree, "link"));
writeFileSync(process.env.REPRISE_OUTPUTS, "{}");
`;
const USE = `import { readFileSync, writeFileSync } from "node:fs";
const inputs = JSON.parse(readFileSync(process.env.REPRISE_INPUTS, "utf8"));
const rows = readFileSync(inputs.table, "utf8").trim().split("\\n").length - 1;
writeFileSync(process.env.REPRISE_OUTPUTS, JSON.stringify({ rows }));
`;

export interface ArtifactStory {
  repo: string;
  execution: ExecutionRecord;
  blobs: LocalBlobStore;
  /** The uploaded input's digest. */
  seed: string;
  /** The digests of make's outputs, by name. */
  outputs: Record<string, string>;
  close(): Promise<void>;
}

export async function runArtifactStory(db: TestStore): Promise<ArtifactStory> {
  const work = mkdtempSync(join(tmpdir(), "reprise-artifact-story-"));
  const blobs = new LocalBlobStore(join(work, "artifacts"));
  const executor: LocalExecutor = createLocalExecutor({
    dataDir: join(work, "data"),
    env: process.env,
    artifacts: blobs,
  });
  const project: TaskProject = taskProject();
  const close = async () => {
    await executor.close();
    project.remove();
    rmSync(work, { recursive: true, force: true });
  };
  try {
    project.commit(
      {
        tasks: {
          make: {
            command: [NODE, "tasks/make.mjs"],
            inputs: { seed: "file" },
            outputs: {
              table: "file",
              plot: "file",
              logo: "file",
              page: "file",
              blob: "file",
              tree: "directory",
            },
          },
          use: {
            command: [NODE, "tasks/use.mjs"],
            inputs: { table: "file" },
            outputs: { rows: "integer" },
          },
        },
        workflows: {
          wf: {
            inputs: { seed: "file" },
            nodes: {
              make: { task: "make", inputs: { seed: "${{ inputs.seed }}" } },
              use: { task: "use", inputs: { table: "${{ nodes.make.outputs.table }}" } },
            },
          },
        },
      },
      { "tasks/make.mjs": MAKE, "tasks/use.mjs": USE },
    );
    const store = db.store;
    const { version } = await registerLocalCommit(store, project.dir, "HEAD");
    const seed = await blobs.putBytes(Buffer.from(SEED));
    await store.artifacts.recordUpload(
      version.repo,
      { digest: seed.digest, type: "file", size: seed.size },
      "token:story",
    );
    const engine = new Engine({
      store,
      executor,
      artifacts: blobs,
      owner: "artifact-story",
      maxParallel: 2,
      tickMs: 100,
    });
    const started = await startExecution(store, {
      repo: version.repo,
      at: { sha: version.sha },
      workflow: "wf",
      inputs: { seed: seed.digest },
      trigger: { kind: "cli", actor: "artifact-story" },
    });
    const execution = await engine.drive(started.id);
    if (execution.state !== "SUCCEEDED")
      throw new Error(
        `the artifact story's run ${execution.state}: ${JSON.stringify(execution.error)}`,
      );
    const make = (await store.executions.nodes(execution.id)).find((n) => n.nodeId === "make");
    const outputs = Object.fromEntries(
      Object.entries(make?.outputs ?? {}).map(([k, v]) => [
        k,
        (v as { artifact: string }).artifact,
      ]),
    );
    return { repo: version.repo, execution, blobs, seed: seed.digest, outputs, close };
  } catch (e) {
    await close();
    throw e;
  }
}
