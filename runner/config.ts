/**
 * The only reader of the environment (DESIGN.md section 10): `loadConfig(env)` validates it once
 * with zod, and a bad value stops the start with a message that says how to fix it.
 */
import { homedir } from "node:os";
import { isAbsolute, join } from "node:path";
import { z } from "zod";

export interface Config {
  /** Postgres when set; otherwise the embedded PGlite under `dataDir`. */
  databaseUrl: string | null;
  dataDir: string;
  logLevel: "fatal" | "error" | "warn" | "info" | "debug" | "trace" | "silent";
  /** Attempts one runner runs at once. */
  maxParallel: number;
  /** Who is acting, when git does not say (the trigger's actor). */
  user: string;
  /** The runner's environment, from which the local executor gives tasks PATH, HOME, LANG... */
  environment: Readonly<Record<string, string | undefined>>;
  /** Where tasks run: local processes (the embedded default) or Kubernetes Jobs. */
  executor: "local" | "kubernetes";
  /** The Kubernetes namespace of task Jobs; null: the kubeconfig context's, else "default". */
  namespace: string | null;
  /** A kubeconfig file for the kubernetes executor; null: the in-cluster service account. */
  kubeconfig: string | null;
  /** `reprise serve`: the address and port it listens on (HOST, PORT). */
  host: string;
  port: number;
  /** Where users reach the server: links in check runs and the UI. */
  publicUrl: string | null;
  /** GitHub Actions OIDC: the issuer whose tokens are accepted, and the audience they must name. */
  oidc: { issuer: string; audience: string } | null;
  /** GitHub's host (GHE_HOST for GitHub Enterprise Server): repository keys are HOST/OWNER/NAME. */
  githubHost: string;
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
  REPRISE_MAX_PARALLEL: z.coerce
    .number({ message: "must be a whole number of attempts, e.g. 4" })
    .int({ message: "must be a whole number of attempts, e.g. 4" })
    .min(1, { message: "must be at least 1" })
    .max(1_000, { message: "must be at most 1000" })
    .default(4),
  USER: z.string().optional(),
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
  // kubectl reads a list of files separated by ':'; the executor reads the first.
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
  REPRISE_OIDC_ISSUER: z
    .string()
    .optional()
    .refine((v) => !v || /^https?:\/\/[^\s]+$/.test(v), {
      message: "must be the issuer URL, e.g. https://token.actions.githubusercontent.com",
    }),
  REPRISE_OIDC_AUDIENCE: z.string().optional(),
  GHE_HOST: z.string().optional(),
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
  return {
    databaseUrl: e.DATABASE_URL ?? null,
    dataDir: e.REPRISE_DATA_DIR || join(dataHome, "reprise"),
    logLevel: e.LOG_LEVEL,
    maxParallel: e.REPRISE_MAX_PARALLEL,
    user: e.USER || "unknown",
    environment: env,
    executor: e.REPRISE_EXECUTOR,
    namespace: e.REPRISE_NAMESPACE || null,
    kubeconfig: e.KUBECONFIG?.split(":").find((p) => p !== "") ?? null,
    host: e.HOST,
    port: e.PORT,
    publicUrl: e.REPRISE_PUBLIC_URL ? e.REPRISE_PUBLIC_URL.replace(/\/+$/, "") : null,
    oidc: e.REPRISE_OIDC_ISSUER
      ? {
          issuer: e.REPRISE_OIDC_ISSUER,
          audience: e.REPRISE_OIDC_AUDIENCE || (e.REPRISE_PUBLIC_URL ?? "reprise"),
        }
      : null,
    githubHost: e.GHE_HOST || "github.com",
  };
}
