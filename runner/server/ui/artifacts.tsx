/**
 * The execution page's artifacts: every file and directory its nodes read and wrote, with where
 * each was first produced and a download link (the UI's own path, so the session cookie is
 * enough; the bytes come with the API's sandboxing headers, artifact-content.ts), and previews of
 * a few files: the first lines of text (CSV included, escaped like everything else), PNG, JPEG
 * and SVG images as `<img>`, which never runs an SVG's script.
 */
import { formatBytes, shortDigest } from "../../../core/artifacts/ref.js";
import type { Store } from "../../../db/store.js";
import type { ExecutionRecord, NodeRecord } from "../../../db/types.js";
import { type ExecutionArtifact, executionArtifacts } from "../../artifacts/listing.js";
import type { BlobStore } from "../../artifacts/store.js";
import { type Preview, previewOf } from "../artifact-content.js";
import { paths } from "./paths.js";

/** Files previewed on one page: each costs a read of up to 16 KiB from the store. */
export const MAX_PREVIEWS = 6;
/** Rows of the table; the API lists every one. */
export const MAX_ROWS = 500;

export interface ArtifactsView {
  list: ExecutionArtifact[];
  previews: Array<{ artifact: ExecutionArtifact; preview: Preview }>;
}

/**
 * A finished execution's list, kept as long as its node list is (finished-nodes.ts): listing
 * resolves the workflow, which is most of what it costs.
 */
const lists = new WeakMap<readonly NodeRecord[], ExecutionArtifact[]>();

/** The artifacts of `exec`, or null when its nodes hold none (most executions: no lookup). */
export async function artifactsView(
  store: Store,
  blobs: BlobStore | null,
  exec: ExecutionRecord,
  nodes: readonly NodeRecord[],
): Promise<ArtifactsView | null> {
  if (!nodes.some((n) => holdsArtifacts(n.inputs) || holdsArtifacts(n.outputs))) return null;
  let list = lists.get(nodes);
  if (!list) {
    list = await executionArtifacts(store, exec, nodes);
    lists.set(nodes, list);
  }
  if (list.length === 0) return null;
  const chosen: ExecutionArtifact[] = [];
  const seen = new Set<string>();
  // What the run made first, then what it was given; each file once.
  for (const direction of ["output", "input"] as const)
    for (const a of list) {
      if (chosen.length >= MAX_PREVIEWS) break;
      if (a.direction !== direction || a.ref.type !== "file" || seen.has(a.ref.artifact)) continue;
      seen.add(a.ref.artifact);
      chosen.push(a);
    }
  const previews = blobs
    ? await Promise.all(
        chosen.map(async (artifact) => ({
          artifact,
          preview: await previewOf(blobs, artifact.ref.artifact),
        })),
      )
    : [];
  return { list, previews };
}

/** Whether any value looks like an artifact (the listing then checks it against the spec). */
function holdsArtifacts(values: Record<string, unknown> | null): boolean {
  if (!values) return false;
  for (const v of Object.values(values))
    if (
      typeof v === "object" &&
      v !== null &&
      typeof (v as { artifact?: unknown }).artifact === "string"
    )
      return true;
  return false;
}

export function ArtifactsSection(p: { exec: ExecutionRecord; view: ArtifactsView }) {
  const { exec, view } = p;
  const rows = view.list.slice(0, MAX_ROWS);
  return (
    <>
      <h2 id="artifacts">Artifacts</h2>
      <div class="scroll">
        <table id="artifact-list">
          <thead>
            <tr>
              <th>node</th>
              <th>name</th>
              <th>type</th>
              <th>size</th>
              <th class="hide-narrow">digest</th>
              <th class="hide-narrow">first produced by</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {rows.map((a) => (
              <tr
                data-artifact={a.ref.artifact}
                data-node={a.node}
                data-direction={a.direction}
                data-name={a.name}
              >
                <td>
                  <a href={paths.execution(exec.id, a.node)}>{a.node}</a>
                </td>
                <td>
                  <span class="sub">{a.direction === "input" ? "in " : "out "}</span>
                  {a.name}
                </td>
                <td>
                  {a.ref.type}
                  {a.ref.type === "directory" ? (
                    <span class="sub">{` (${a.ref.files ?? 0} files)`}</span>
                  ) : null}
                </td>
                <td class="num">{formatBytes(a.ref.size)}</td>
                <td class="hide-narrow">
                  <code title={a.ref.artifact}>{shortDigest(a.ref.artifact)}</code>
                </td>
                <td class="hide-narrow">
                  <Origin exec={exec} artifact={a} />
                </td>
                <td>
                  <a
                    href={paths.artifact(exec.repo, a.ref.artifact, { name: a.name })}
                    data-download={a.ref.artifact}
                  >
                    {a.ref.type === "directory" ? "download .tar" : "download"}
                  </a>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {view.list.length > rows.length ? (
        <p class="sub">
          {`and ${view.list.length - rows.length} more: GET /api/v1/repos/${encodeURIComponent(exec.repo)}/executions/${exec.id}/artifacts lists them all`}
        </p>
      ) : null}
      {view.previews.length > 0 ? <h3>Previews</h3> : null}
      {view.previews.length > 0 ? (
        <div class="cols2" id="previews">
          {view.previews.map(({ artifact, preview }) => (
            <section class="panel" data-preview={artifact.ref.artifact} data-kind={preview.kind}>
              <h3 class="first">
                {artifact.node} <span class="sub">{artifact.direction}</span> {artifact.name}{" "}
                <span class="sub">{formatBytes(artifact.ref.size)}</span>
              </h3>
              <PreviewBody exec={exec} artifact={artifact} preview={preview} />
            </section>
          ))}
        </div>
      ) : null}
    </>
  );
}

function Origin(p: { exec: ExecutionRecord; artifact: ExecutionArtifact }) {
  const { producer, uploadedBy } = p.artifact;
  if (producer)
    return producer.execution === p.exec.id ? (
      <a
        href={paths.execution(producer.execution, producer.node)}
        data-producer={producer.execution}
      >
        this run, {producer.node}
      </a>
    ) : (
      <>
        <a
          href={paths.execution(producer.execution, producer.node)}
          class="mono"
          data-producer={producer.execution}
        >
          {producer.execution}
        </a>{" "}
        <span class="sub">{producer.node}</span>
      </>
    );
  if (uploadedBy) return <span class="sub">uploaded by {uploadedBy}</span>;
  return <span class="sub">-</span>;
}

function PreviewBody(p: { exec: ExecutionRecord; artifact: ExecutionArtifact; preview: Preview }) {
  const { preview, artifact } = p;
  if (preview.kind === "image")
    return (
      <div class="graph">
        <img
          src={paths.artifact(p.exec.repo, artifact.ref.artifact, { inline: true })}
          alt={`${artifact.node} ${artifact.name}`}
        />
      </div>
    );
  if (preview.kind === "text")
    return (
      <>
        <pre>{preview.lines.join("\n")}</pre>
        {preview.more ? <p class="sub">the first {preview.lines.length} lines</p> : null}
      </>
    );
  if (preview.kind === "gone")
    return (
      <p class="notice">
        its bytes are gone from the artifact store: relaunching the execution that produced it
        recomputes them
      </p>
    );
  return <p class="sub">binary: no preview</p>;
}
