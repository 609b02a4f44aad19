/**
 * The only reader of the environment (docs/design.md section 10): `loadConfig(env)` validates it once
 * with zod, and a bad value stops the start with a message that says how to fix it.
 */
import { readFileSync } from "node:fs";
import { homedir } from "node:os";
import { isAbsolute, join } from "node:path";
import { fileURLToPath } from "node:url";
import { z } from "zod";
import { parseKubeSecrets } from "./executors/kubernetes/secrets.js";
import { parseSandboxWritable } from "./executors/local/sandbox.js";
import { parseLocalSecrets } from "./executors/local/secrets.js";
import type { SecretGrant } from "./executors/secret-grants.js";

export interface Config {
  /** Postgres when set; otherwise the embedded PGlite under `dataDir`. */
  databaseUrl: string | null;
  dataDir: string;
  logLevel: "fatal" | "error" | "warn" | "info" | "debug" | "trace" | "silent";
  /** Attempts one runner runs at once. */
  maxParallel: number;
  /**
   * How long a runner's hold on an execution lasts without renewal (REPRISE_LEASE_SECONDS): after
   * a runner dies, another takes its executions over this much later.
   */
  leaseSeconds: number;
  /**
   * How often `serve` and `worker` look for `on.schedule` slots come due
   * (REPRISE_SCHEDULE_TICK_MS; runner/schedules.ts). Schedules have minute granularity.
   */
  scheduleTickMs: number;
  /** Who is acting, when git does not say (the trigger's actor). */
  user: string;
  /** The runner's environment, from which the local executor gives tasks PATH, HOME, LANG... */
  environment: Readonly<Record<string, string | undefined>>;
  /**
   * REPRISE_LOCAL_SECRETS: the runner's environment variables the local executor may hand to
   * tasks as secrets, each with the repositories whose tasks may have it (a task's `{ secret,
   * key }` reads `<SECRET>_<KEY>`; executors/local/README.md).
   */
  localSecrets: SecretGrant[];
  /**
   * REPRISE_KUBE_SECRETS: the Kubernetes Secrets (by name) tasks may reference, each with the
   * repositories whose tasks may (executors/kubernetes/README.md). None: no task may name one.
   */
  kubeSecrets: SecretGrant[];
  /**
   * Where `file` and `directory` values are kept (REPRISE_ARTIFACTS): a directory (default
   * `<dataDir>/artifacts`), or an S3 bucket and prefix reached with the standard AWS
   * credential chain, AWS_REGION and AWS_ENDPOINT_URL (MinIO, R2, GCS interoperability).
   */
  artifacts:
    | { kind: "file"; path: string }
    | { kind: "s3"; url: string; bucket: string; prefix: string };
  /** Where tasks run: local processes (the embedded default) or Kubernetes Jobs. */
  executor: "local" | "kubernetes";
  /** REPRISE_SANDBOX: how local tasks are sandboxed (executors/local/README.md, "Sandbox"). */
  sandbox: "auto" | "bwrap" | "none";
  /** REPRISE_LOG_MAX_BYTES: a local attempt's log beyond this is cut in the middle. */
  logMaxBytes: number;
  /** REPRISE_SANDBOX_WRITABLE: directories every sandboxed local task may also write. */
  sandboxWritable: string[];
  /** REPRISE_CHECKOUT_MAX_BYTES: the most file bytes one local checkout of a GitHub commit holds. */
  checkoutMaxBytes: number;
  /**
   * REPRISE_CACHE_MAX_BYTES (default 20 GiB) and REPRISE_CACHE_MAX_AGE_DAYS (default 14): the
   * local executor evicts checkouts and ended attempt directories (logs, task/ scratch) unused
   * for longer than the age, and least recently used first while they hold more than the bytes.
   */
  cacheMaxBytes: number;
  cacheMaxAgeDays: number;
  /** The Kubernetes namespace of task Jobs; null: the kubeconfig context's, else "default". */
  namespace: string | null;
  /** A kubeconfig file for the kubernetes executor; null: the in-cluster service account. */
  kubeconfig: string | null;
  /** `reprise serve`: the address and port it listens on (HOST, PORT). */
  host: string;
  port: number;
  /** Where users reach the server: links in check runs and the UI. */
  publicUrl: string | null;
  /**
   * REPRISE_AUTH: "required" (the default: every API call needs a credential, even before the
   * first token exists) or "none" (open to anyone who reaches it; loopback addresses only).
   */
  auth: "required" | "none";
  /**
   * GitHub Actions OIDC: the issuer whose tokens are accepted, the audience they must name,
   * REPRISE_OIDC_RULES, the file of what tokens may do by ref, environment and workflow
   * (runner/server/oidc-rules.ts; read at start), and REPRISE_PRODUCTION_BRANCH, whose tokens
   * may activate in a repository the App has reported no default branch for (default main).
   */
  oidc: {
    issuer: string;
    audience: string;
    rulesPath: string | null;
    productionBranch: string;
  } | null;
  /** GitHub's host (GHE_HOST for GitHub Enterprise Server): repository keys are HOST/OWNER/NAME. */
  githubHost: string;
  /** The GitHub App (Probot's own variables); null when APP_ID is not set: no webhooks. */
  githubApp: GitHubAppConfig | null;
  /**
   * REPRISE_SERVER: the CLI's `run`, `relaunch`, `status`... go through this server's API instead
   * of the local store, with REPRISE_TOKEN as the bearer API token (null: none sent). null: local.
   */
  server: { url: string; token: string | null } | null;
}

export interface GitHubAppConfig {
  appId: number;
  /** PEM, from PRIVATE_KEY or the file PRIVATE_KEY_PATH names. */
  privateKey: string;
  webhookSecret: string;
  /** The REST API: https://api.github.com, or GHE_PROTOCOL://GHE_HOST/api/v3 as Probot builds it. */
  baseUrl: string;
}

export class ConfigError extends Error {
  override readonly name = "ConfigError";
}

const schema = z.object({
  DATABASE_URL: z
    .string()
    .trim()
    .optional()
    .transform((v) => (v === "" ? undefined : v))
    .refine((v) => v === undefined || /^postgres(ql)?:\/\//.test(v), {
      message: "must be a postgres:// or postgresql:// URL (unset it to use the embedded database)",
    }),
  REPRISE_DATA_DIR: z
    .string()
    .optional()
    .refine((v) => v === undefined || v === "" || isAbsolute(v), {
      message: "must be an absolute path",
    }),
  XDG_DATA_HOME: z.string().optional(),
  HOME: z.string().optional(),
  LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
  REPRISE_LEASE_SECONDS: z.coerce
    .number({ message: "must be a whole number of seconds, e.g. 30" })
    .int({ message: "must be a whole number of seconds, e.g. 30" })
    .min(1, { message: "must be at least 1" })
    .max(3_600, { message: "must be at most 3600" })
    .default(30),
  REPRISE_SCHEDULE_TICK_MS: z.coerce
    .number({ message: "must be a whole number of milliseconds, e.g. 15000" })
    .int({ message: "must be a whole number of milliseconds, e.g. 15000" })
    .min(50, { message: "must be at least 50" })
    .max(60_000, { message: "must be at most 60000 (a slot is one minute)" })
    .default(15_000),
  REPRISE_MAX_PARALLEL: z.coerce
    .number({ message: "must be a whole number of attempts, e.g. 4" })
    .int({ message: "must be a whole number of attempts, e.g. 4" })
    .min(1, { message: "must be at least 1" })
    .max(1_000, { message: "must be at most 1000" })
    .default(4),
  USER: z.string().optional(),
  REPRISE_SANDBOX: z
    .enum(["auto", "bwrap", "none"], { message: 'must be "auto", "bwrap" or "none"' })
    .default("auto"),
  REPRISE_SANDBOX_WRITABLE: z
    .string()
    .optional()
    .superRefine((v, ctx) => {
      for (const problem of parseSandboxWritable(v).problems)
        ctx.addIssue({
          code: "custom",
          message: `${problem}: list absolute directories, separated by ":"`,
        });
    }),
  REPRISE_LOG_MAX_BYTES: z.coerce
    .number({ message: "must be a whole number of bytes, e.g. 67108864" })
    .int({ message: "must be a whole number of bytes, e.g. 67108864" })
    .min(65_536, { message: "must be at least 65536" })
    .default(64 * 1024 * 1024),
  REPRISE_CHECKOUT_MAX_BYTES: z.coerce
    .number({ message: "must be a whole number of bytes, e.g. 4294967296" })
    .int({ message: "must be a whole number of bytes, e.g. 4294967296" })
    .min(1_048_576, { message: "must be at least 1048576" })
    .default(4 * 1024 ** 3),
  REPRISE_CACHE_MAX_BYTES: z.coerce
    .number({ message: "must be a whole number of bytes, e.g. 21474836480" })
    .int({ message: "must be a whole number of bytes, e.g. 21474836480" })
    .min(0, { message: "must be at least 0" })
    .default(20 * 1024 ** 3),
  REPRISE_CACHE_MAX_AGE_DAYS: z.coerce
    .number({ message: "must be a number of days, e.g. 14" })
    .positive({ message: "must be more than 0 days" })
    .default(14),
  REPRISE_EXECUTOR: z
    .enum(["local", "kubernetes"], { message: 'must be "local" or "kubernetes"' })
    .default("local"),
  REPRISE_NAMESPACE: z
    .string()
    .optional()
    .refine((v) => !v || (/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(v) && v.length <= 63), {
      message:
        "must be a Kubernetes namespace name (lowercase letters, digits and '-', at most 63)",
    }),
  REPRISE_LOCAL_SECRETS: z
    .string()
    .optional()
    .superRefine((v, ctx) => {
      for (const problem of parseLocalSecrets(v).problems)
        ctx.addIssue({
          code: "custom",
          message: `${problem} (list the runner's environment variables tasks may receive as secrets, each with a repository that may use it, separated by commas, e.g. AWS_CREDS_ACCESS_KEY_ID@github.com/acme/ml,GH_TOKEN_TOKEN@*)`,
        });
    }),
  REPRISE_KUBE_SECRETS: z
    .string()
    .optional()
    .superRefine((v, ctx) => {
      for (const problem of parseKubeSecrets(v).problems)
        ctx.addIssue({
          code: "custom",
          message: `${problem} (list the Kubernetes Secrets tasks may name, each with a repository that may use it, separated by commas, e.g. aws-creds@github.com/acme/ml,shared-readonly@*)`,
        });
    }),
  // kubectl reads a list of files separated by ':'; the executor reads the first.
  REPRISE_ARTIFACTS: z
    .string()
    .trim()
    .optional()
    .refine((v) => !v || artifactsLocation(v) !== null, {
      message:
        "must be file:///ABSOLUTE/PATH or s3://BUCKET/PREFIX (unset it to keep artifacts under REPRISE_DATA_DIR/artifacts)",
    }),
  KUBECONFIG: z.string().optional(),
  HOST: z.string().trim().min(1).default("127.0.0.1"),
  PORT: z.coerce
    .number({ message: "must be a TCP port number, e.g. 3000" })
    .int({ message: "must be a TCP port number, e.g. 3000" })
    .min(0, { message: "must be between 0 and 65535" })
    .max(65_535, { message: "must be between 0 and 65535" })
    .default(3000),
  REPRISE_PUBLIC_URL: z
    .string()
    .optional()
    .refine((v) => !v || /^https?:\/\/[^\s]+$/.test(v), {
      message: "must be an http:// or https:// URL, e.g. https://reprise.example.com",
    }),
  REPRISE_AUTH: z
    .enum(["required", "none"], {
      message:
        'must be "none" (no credentials, only on a loopback HOST) or "required" (the default)',
    })
    .default("required"),
  REPRISE_OIDC_ISSUER: z
    .string()
    .optional()
    .refine((v) => !v || /^https?:\/\/[^\s]+$/.test(v), {
      message: "must be the issuer URL, e.g. https://token.actions.githubusercontent.com",
    }),
  REPRISE_OIDC_AUDIENCE: z.string().optional(),
  REPRISE_OIDC_RULES: z.string().optional(),
  REPRISE_PRODUCTION_BRANCH: z
    .string()
    .trim()
    .optional()
    .refine((v) => !v || /^(?!refs\/|-)[^\s~^:?*[\\]+$/.test(v), {
      message: 'must be a branch name without "refs/heads/", e.g. main',
    }),
  GHE_HOST: z
    .string()
    .optional()
    .refine((v) => !v || /^[A-Za-z0-9.-]+(:[0-9]{1,5})?$/.test(v), {
      message: "must be a host name (and optional port) without a scheme, e.g. github.example.com",
    }),
  GHE_PROTOCOL: z
    .enum(["http", "https"], { message: 'must be "https" (or "http" for a test server)' })
    .default("https"),
  APP_ID: z
    .string()
    .optional()
    .refine((v) => !v || /^[0-9]+$/.test(v), {
      message: "must be the GitHub App's numeric id (its settings page shows it as App ID)",
    }),
  REPRISE_SERVER: z
    .string()
    .trim()
    .optional()
    .refine((v) => !v || serverUrl(v) !== null, {
      message:
        "must be the Reprise server's http:// or https:// URL, e.g. https://reprise.example.com (unset it to use the local store)",
    }),
  REPRISE_TOKEN: z.string().trim().optional(),
  PRIVATE_KEY: z.string().optional(),
  PRIVATE_KEY_PATH: z.string().optional(),
  WEBHOOK_SECRET: z.string().optional(),
});

export function loadConfig(env: Readonly<Record<string, string | undefined>>): Config {
  const parsed = schema.safeParse(env);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`);
    throw new ConfigError(`invalid configuration:\n  ${problems.join("\n  ")}`);
  }
  const e = parsed.data;
  if (e.REPRISE_OIDC_ISSUER && !e.REPRISE_OIDC_AUDIENCE)
    throw new ConfigError(
      "invalid configuration:\n  REPRISE_OIDC_AUDIENCE: required with REPRISE_OIDC_ISSUER (the audience your workflows request, e.g. your REPRISE_PUBLIC_URL)",
    );
  const dataHome =
    e.XDG_DATA_HOME && isAbsolute(e.XDG_DATA_HOME)
      ? e.XDG_DATA_HOME
      : join(e.HOME || homedir(), ".local", "share");
  const dataDir = e.REPRISE_DATA_DIR || join(dataHome, "reprise");
  return {
    databaseUrl: e.DATABASE_URL ?? null,
    dataDir,
    artifacts: (e.REPRISE_ARTIFACTS && artifactsLocation(e.REPRISE_ARTIFACTS)) || {
      kind: "file",
      path: join(dataDir, "artifacts"),
    },
    logLevel: e.LOG_LEVEL,
    maxParallel: e.REPRISE_MAX_PARALLEL,
    leaseSeconds: e.REPRISE_LEASE_SECONDS,
    scheduleTickMs: e.REPRISE_SCHEDULE_TICK_MS,
    user: e.USER || "unknown",
    environment: env,
    localSecrets: parseLocalSecrets(e.REPRISE_LOCAL_SECRETS).grants,
    kubeSecrets: parseKubeSecrets(e.REPRISE_KUBE_SECRETS).grants,
    executor: e.REPRISE_EXECUTOR,
    sandbox: e.REPRISE_SANDBOX,
    logMaxBytes: e.REPRISE_LOG_MAX_BYTES,
    sandboxWritable: parseSandboxWritable(e.REPRISE_SANDBOX_WRITABLE).dirs,
    checkoutMaxBytes: e.REPRISE_CHECKOUT_MAX_BYTES,
    cacheMaxBytes: e.REPRISE_CACHE_MAX_BYTES,
    cacheMaxAgeDays: e.REPRISE_CACHE_MAX_AGE_DAYS,
    namespace: e.REPRISE_NAMESPACE || null,
    kubeconfig: e.KUBECONFIG?.split(":").find((p) => p !== "") ?? null,
    host: e.HOST,
    port: e.PORT,
    publicUrl: e.REPRISE_PUBLIC_URL ? e.REPRISE_PUBLIC_URL.replace(/\/+$/, "") : null,
    auth: e.REPRISE_AUTH,
    oidc: e.REPRISE_OIDC_ISSUER
      ? {
          issuer: e.REPRISE_OIDC_ISSUER,
          audience: e.REPRISE_OIDC_AUDIENCE || (e.REPRISE_PUBLIC_URL ?? "reprise"),
          rulesPath: e.REPRISE_OIDC_RULES || null,
          productionBranch: e.REPRISE_PRODUCTION_BRANCH || "main",
        }
      : null,
    githubHost: e.GHE_HOST || "github.com",
    githubApp: githubApp(e),
    server: e.REPRISE_SERVER
      ? { url: serverUrl(e.REPRISE_SERVER) as string, token: e.REPRISE_TOKEN || null }
      : null,
  };
}

/** REPRISE_ARTIFACTS read: a local directory or an S3 bucket and prefix; null when neither. */
function artifactsLocation(value: string): Config["artifacts"] | null {
  if (value.startsWith("file://")) {
    try {
      const path = fileURLToPath(value);
      return isAbsolute(path) ? { kind: "file", path } : null;
    } catch {
      return null;
    }
  }
  const s3 = /^s3:\/\/([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:\/(.*))?$/.exec(value);
  if (!s3) return null;
  const prefix = (s3[2] ?? "").replace(/^\/+|\/+$/g, "");
  return { kind: "s3", url: value, bucket: s3[1] as string, prefix };
}

/** An http(s) URL with a host, without its trailing slashes; null when it is not one. */
function serverUrl(value: string): string | null {
  if (!/^https?:\/\/[^\s/]/.test(value)) return null;
  try {
    const u = new URL(value);
    if (!u.hostname || u.search || u.hash) return null;
    return value.replace(/\/+$/, "");
  } catch {
    return null;
  }
}

/**
 * APP_ID turns the GitHub App on; then its key and webhook secret are required, so a server never
 * accepts unsigned deliveries or starts without a way to act on them.
 */
function githubApp(e: z.infer<typeof schema>): GitHubAppConfig | null {
  const given = e.PRIVATE_KEY || e.PRIVATE_KEY_PATH || e.WEBHOOK_SECRET;
  if (!e.APP_ID) {
    if (given)
      throw new ConfigError(
        "invalid configuration:\n  APP_ID: is not set but PRIVATE_KEY, PRIVATE_KEY_PATH or WEBHOOK_SECRET is: set it to the GitHub App's id (its settings page shows it as App ID), or unset them",
      );
    return null;
  }
  const problems: string[] = [];
  if (!e.WEBHOOK_SECRET)
    problems.push(
      "WEBHOOK_SECRET: is not set: set it to the webhook secret configured on the GitHub App (deliveries are refused unsigned)",
    );
  let privateKey = e.PRIVATE_KEY ? pemFrom(e.PRIVATE_KEY) : null;
  if (!privateKey && e.PRIVATE_KEY_PATH) {
    try {
      privateKey = readFileSync(e.PRIVATE_KEY_PATH, "utf8");
    } catch (err) {
      problems.push(
        `PRIVATE_KEY_PATH: cannot read ${e.PRIVATE_KEY_PATH} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}): point it at the .pem file downloaded from the GitHub App`,
      );
    }
  }
  if (!privateKey && !e.PRIVATE_KEY_PATH)
    problems.push(
      "PRIVATE_KEY: is not set: set it (or PRIVATE_KEY_PATH) to the GitHub App's private key (.pem)",
    );
  if (privateKey && !/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(privateKey))
    problems.push(
      "PRIVATE_KEY: is not a PEM private key: give the content of the .pem file downloaded from the GitHub App (or its base64)",
    );
  if (problems.length > 0 || !privateKey || !e.WEBHOOK_SECRET)
    throw new ConfigError(`invalid configuration:\n  ${problems.join("\n  ")}`);
  return {
    appId: Number(e.APP_ID),
    privateKey,
    webhookSecret: e.WEBHOOK_SECRET,
    baseUrl: e.GHE_HOST ? `${e.GHE_PROTOCOL}://${e.GHE_HOST}/api/v3` : "https://api.github.com",
  };
}

/** Probot accepts the PEM itself, with literal "\n" escapes, or base64 of it. */
function pemFrom(value: string): string {
  const text = value.includes("\\n") ? value.replace(/\\n/g, "\n") : value;
  if (text.includes("-----BEGIN")) return text;
  const decoded = Buffer.from(text, "base64").toString("utf8");
  return decoded.includes("-----BEGIN") ? decoded : text;
}
