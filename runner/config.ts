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
});

export function loadConfig(env: Readonly<Record<string, string | undefined>>): Config {
  const parsed = schema.safeParse(env);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`);
    throw new ConfigError(`invalid configuration:\n  ${problems.join("\n  ")}`);
  }
  const e = parsed.data;
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
  };
}
