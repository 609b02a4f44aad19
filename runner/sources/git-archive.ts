/**
 * Code at a SHA of a local git repository (`file://` repositories, the embedded default):
 * `git archive <sha>` streamed through the same extraction as GitHub's tarball (tarball.ts),
 * checked against the commit's tree as `git ls-tree -r -l` lists it, into `<cacheRoot>/<sha>`
 * by the one materialise step (materialise.ts). So the bounds (REPRISE_CHECKOUT_MAX_BYTES,
 * checked against the tree's sizes before anything is extracted; the entries), the kernel-style
 * link check, and the refusal of anything but files, links and directories are those of the
 * GitHub path, and no `tar` program is involved.
 *
 * The checkout is the commit's whole tree: `.gitattributes`' `export-ignore` and `export-subst`
 * are switched off (git archive runs against a scratch git directory that borrows the
 * repository's objects and says `* -export-ignore -export-subst` in its info/attributes, which
 * wins over the tree's), so a task sees what was hashed for the cache key. Submodules are
 * empty directories and Git LFS files their pointers, as in the commit.
 */
import { execFile, spawn } from "node:child_process";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { promisify } from "node:util";
import { type Checkout, CheckoutRefused, COMMIT_SHA, materialise, STAGING } from "./materialise.js";
import {
  DEFAULT_LIMITS,
  expectTree,
  extractTar,
  type TarballLimits,
  type TreeFile,
} from "./tarball.js";

const run = promisify(execFile);
const FILE_REPO = "file://";
/** A 100,000-file listing with sizes is about 10 MB; leave room for monorepos. */
const MAX_LISTING_BYTES = 256 * 1024 * 1024;

/** `repoDir`'s commits into `<cacheRoot>/<sha>`, once per SHA. */
export function gitArchiveCheckout(
  repoDir: string,
  cacheRoot: string,
  limits: TarballLimits = DEFAULT_LIMITS,
): Checkout {
  const source = resolve(repoDir);
  const root = resolve(cacheRoot);
  return (repo, sha) => {
    if (!COMMIT_SHA.test(sha)) {
      return Promise.reject(
        new Error(`"${sha}" is not a full lowercase commit SHA; resolve it first`),
      );
    }
    const what = `${sha} of ${repo}`;
    const where = `cannot check out ${sha} of ${repo} from ${source}`;
    return materialise(join(root, sha), async () => {
      const expected = expectTree(await treeAt(source, sha, where), what, limits);
      return async (staging) => {
        const gitDir = await neutralGitDir(source, dirname(staging), where);
        try {
          return await archiveInto(gitDir, sha, staging, expected, what, limits, where);
        } finally {
          await rm(gitDir.dir, { recursive: true, force: true });
        }
      };
    });
  };
}

/** For repositories keyed `file://ABSOLUTE_PATH` (core/version/repo-key.ts): the embedded default. */
export function fileRepoCheckout(cacheRoot: string, limits?: TarballLimits): Checkout {
  return (repo, sha) => {
    if (!repo.startsWith(FILE_REPO)) {
      return Promise.reject(
        new Error(
          `the default local checkout reads local repositories (file://...) only, not ${repo}: give LocalExecutor a checkout function that fetches it`,
        ),
      );
    }
    return gitArchiveCheckout(repo.slice(FILE_REPO.length), cacheRoot, limits)(repo, sha);
  };
}

/** The commit's files, links and submodules with their blob ids and sizes. */
async function treeAt(source: string, sha: string, where: string): Promise<TreeFile[]> {
  const out = await git(
    source,
    ["ls-tree", "-r", "-l", "-z", "--full-tree", `${sha}^{commit}`],
    where,
  );
  const tree: TreeFile[] = [];
  for (const record of out.toString("utf8").split("\0")) {
    if (record === "") continue;
    // "<mode> <type> <object> <size, padded or '-'>\t<path>"
    const tab = record.indexOf("\t");
    const [mode, , object, size] = record.slice(0, tab).split(/ +/);
    if (tab < 0 || !mode || !object || size === undefined)
      throw new Error(`${where}: git ls-tree printed ${JSON.stringify(record)}`);
    tree.push({
      path: record.slice(tab + 1),
      mode,
      sha: object,
      ...(size === "-" ? {} : { size: Number(size) }),
    });
  }
  return tree;
}

interface GitDir {
  dir: string;
  env: NodeJS.ProcessEnv;
}

/**
 * A scratch git directory that reads `source`'s objects and switches off export attributes.
 * Beside the staging directory and named like one, so a crash leaves nothing a later checkout
 * does not remove.
 */
async function neutralGitDir(source: string, beside: string, where: string): Promise<GitDir> {
  const [common, format] = (
    await git(source, ["rev-parse", "--git-common-dir", "--show-object-format"], where)
  )
    .toString("utf8")
    .trim()
    .split("\n");
  if (!common || !format) throw new Error(`${where}: git rev-parse printed nothing`);
  const dir = await mkdtemp(join(beside, `${STAGING}${process.pid}-git-`));
  await mkdir(join(dir, "refs"));
  await mkdir(join(dir, "info"));
  await writeFile(join(dir, "HEAD"), "ref: refs/heads/reprise\n");
  await writeFile(
    join(dir, "config"),
    format === "sha1"
      ? "[core]\n\trepositoryformatversion = 0\n\tbare = true\n"
      : `[core]\n\trepositoryformatversion = 1\n\tbare = true\n[extensions]\n\tobjectformat = ${format}\n`,
  );
  await writeFile(join(dir, "info", "attributes"), "* -export-ignore -export-subst\n");
  return {
    dir,
    env: {
      ...process.env,
      GIT_DIR: dir,
      GIT_OBJECT_DIRECTORY: join(resolve(source, common), "objects"),
    },
  };
}

async function archiveInto(
  gitDir: GitDir,
  sha: string,
  dest: string,
  expected: ReturnType<typeof expectTree>,
  what: string,
  limits: TarballLimits,
  where: string,
): Promise<number> {
  const child = spawn("git", ["archive", "--format=tar", sha], {
    cwd: gitDir.dir,
    env: gitDir.env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
    if (stderr.length < 4096) stderr += chunk;
  });
  const exited = new Promise<string | null>((done) => {
    child.once("error", (e) => done(`could not run: ${e.message}`));
    child.once("close", (code, signal) =>
      done(code === 0 ? null : `failed (${signal ?? `exit ${code}`}): ${stderr.trim()}`),
    );
  });
  let bytes: number;
  try {
    bytes = await extractTar(child.stdout, dest, expected, what, limits, {
      gzip: false,
      wrapped: false,
    });
  } catch (e) {
    child.kill("SIGKILL");
    // git's own failure says more than "the archive ended early".
    const problem = await exited;
    if (problem && !(e instanceof CheckoutRefused))
      throw new Error(`${where}: git archive ${problem}`, { cause: e });
    throw e;
  }
  const problem = await exited;
  if (problem) throw new Error(`${where}: git archive ${problem}`);
  return bytes;
}

async function git(cwd: string, args: string[], where: string): Promise<Buffer> {
  try {
    const { stdout } = await run("git", args, {
      cwd,
      encoding: "buffer",
      maxBuffer: MAX_LISTING_BYTES,
    });
    return stdout;
  } catch (e) {
    const err = e as { stderr?: Buffer; code?: string | number };
    if (err.code === "ENOENT") throw new Error(`${where}: git is not installed or not on PATH`);
    const stderr = err.stderr?.toString("utf8").trim() ?? "";
    throw new Error(`${where}: git ${args[0]} failed: ${stderr || String(e)}`, { cause: e });
  }
}
