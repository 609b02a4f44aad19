/** The `reprise` command line (DESIGN.md section 11). Parses arguments and dispatches. */
import { parseArgs } from "node:util";
import { StoreError } from "../../db/errors.js";
import { ConfigError, loadConfig } from "../config.js";
import { GitError } from "../sources/local-git.js";
import { EXIT, type Io, UsageError } from "./io.js";
import { migrateCommand } from "./migrate.js";
import { validate } from "./validate.js";

const USAGE = `usage: reprise <command> [options]

commands:
  validate   check reprise.yaml and print each task's digest
             [--repo DIR] [--ref REF] [--json]
             without --ref, validates the working tree as it would be committed
  migrate    apply pending database migrations [--json]
             (DATABASE_URL, or the embedded database under REPRISE_DATA_DIR)

options:
  --repo DIR   the git repository (default: the one containing the current directory)
  --ref REF    a commit, branch or tag
  --json       machine-readable output on stdout
  -h, --help   this help
`;

export async function main(
  argv: readonly string[],
  io: Io,
  cwd: string,
  env: Readonly<Record<string, string | undefined>>,
): Promise<number> {
  try {
    const [command, ...rest] = argv;
    if (command === undefined || command === "-h" || command === "--help" || command === "help") {
      io.out(USAGE);
      return command === undefined ? EXIT.invalid : EXIT.ok;
    }
    switch (command) {
      case "validate": {
        const { values } = parse(rest, {
          repo: { type: "string" },
          ref: { type: "string" },
          json: { type: "boolean", default: false },
        });
        return await validate(
          {
            repo: (values.repo as string | undefined) ?? cwd,
            ref: (values.ref as string | undefined) ?? null,
            json: values.json === true,
          },
          io,
        );
      }
      case "migrate": {
        const { values } = parse(rest, { json: { type: "boolean", default: false } });
        return await migrateCommand(loadConfig(env), { json: values.json === true }, io);
      }
      default:
        throw new UsageError(`unknown command "${command}"`);
    }
  } catch (e) {
    if (e instanceof UsageError) {
      io.err(`reprise: ${e.message}\n\n${USAGE}`);
      return EXIT.invalid;
    }
    if (e instanceof GitError || e instanceof ConfigError || e instanceof StoreError) {
      io.err(`reprise: ${e.message}`);
      return EXIT.invalid;
    }
    throw e;
  }
}

type OptionSpec = Record<
  string,
  { type: "string" | "boolean"; default?: string | boolean; short?: string }
>;

function parse(args: string[], options: OptionSpec) {
  try {
    return parseArgs({ args, options, strict: true, allowPositionals: false });
  } catch (e) {
    throw new UsageError(e instanceof Error ? e.message : String(e));
  }
}
