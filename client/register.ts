/**
 * Registration from a git checkout: what the Action and the CLI (through REPRISE_SERVER) do
 * before starting at a commit the server may not know (no GitHub App, or a commit not pushed to
 * it). One GET when the server has the version; otherwise the spec and the commit's raw git
 * objects are posted, and the server checks them against the SHA and builds the version as
 * registration from GitHub would.
 */
import { type Diagnostic, formatDiagnostic, SPEC_FILE } from "../core/spec/diagnostics.js";
import { readCommit, readObjects } from "./checkout.js";
import { type ApiClient, ApiClientError } from "./client.js";

/** The commit has no spec, or the server found it invalid: nothing to run. */
export class InvalidSpecError extends Error {
  override readonly name = "InvalidSpecError";
  constructor(
    message: string,
    /** The server's diagnostics (errors), empty when there is no spec at all. */
    readonly diagnostics: Diagnostic[],
  ) {
    super(message);
  }
}

/**
 * Makes sure `repo` has a version at `sha`, posting it from the checkout at `dir` when it has
 * not: "present" or "registered". `ref`: the branch the version is recorded on, or null.
 */
export async function ensureRegistered(
  client: ApiClient,
  repo: string,
  dir: string,
  sha: string,
  ref: string | null,
): Promise<"present" | "registered"> {
  if (await client.version(repo, sha)) return "present";
  const commit = await readCommit(dir, sha);
  if (commit.spec === null)
    throw new InvalidSpecError(
      `no ${SPEC_FILE} at the root of ${sha.slice(0, 12)}: nothing to run`,
      [],
    );
  try {
    await client.register(repo, { sha, ref, spec: commit.spec, ...(await readObjects(dir, sha)) });
    return "registered";
  } catch (e) {
    if (e instanceof ApiClientError && e.status === 422) {
      const errors = (e.body as { errors?: Diagnostic[] } | null)?.errors ?? [];
      throw new InvalidSpecError(
        `${SPEC_FILE} of ${sha.slice(0, 12)} is invalid: ${errors.length > 0 ? `\n${errors.map((d) => formatDiagnostic(d)).join("\n")}` : e.message}`,
        errors,
      );
    }
    throw e;
  }
}
