/** Reads one task (and the `defaults` block) into its normalized form. */

import { isArtifactType } from "../artifacts/ref.js";
import {
  ENV_NAME,
  inputEnvName,
  PARAM_NAME,
  PARAM_RULE,
  RESERVED_ENV_PREFIX,
  SECRET_KEY,
  SECRET_NAME,
} from "./names.js";
import { normalizeGlob, normalizeRepoPath } from "./paths.js";
import {
  asJson,
  type Collector,
  describe,
  readInteger,
  readMapping,
  readNamedMapping,
  readString,
  readStringList,
  typeMismatch,
} from "./reader.js";
import type {
  CacheSettings,
  InputDecl,
  Resources,
  SecretRef,
  TaskSpec,
  ValueType,
} from "./types.js";
import { VALUE_TYPES } from "./types.js";
import { parseDuration, parseQuantity } from "./units.js";
import type { PathSegment } from "./yaml-source.js";

export const DEFAULT_TIMEOUT_SECONDS = 3_600;
export const DEFAULT_SOURCES = ["**"];
export const MAX_RETRIES = 10;

const TASK_KEYS = [
  "image",
  "command",
  "env",
  "workdir",
  "sources",
  "inputs",
  "outputs",
  "cache",
  "retries",
  "timeout",
  "resources",
  "secrets",
] as const;
const DEFAULTS_KEYS = ["image", "retries", "timeout", "resources"] as const;

export interface Defaults {
  image: { value: string; path: PathSegment[] } | null;
  retries: number;
  timeoutSeconds: number;
  resources: Resources;
}

export function readDefaults(c: Collector, raw: unknown): Defaults {
  const path = ["defaults"];
  const out: Defaults = {
    image: null,
    retries: 0,
    timeoutSeconds: DEFAULT_TIMEOUT_SECONDS,
    resources: { cpu: null, memory: null, disk: null },
  };
  if (raw === undefined || raw === null) return out;
  const m = readMapping(c, raw, path, "defaults", DEFAULTS_KEYS);
  if (!m) return out;
  if (m.image !== undefined) {
    const image = readString(c, m.image, [...path, "image"], "defaults.image");
    if (image) out.image = { value: image, path: [...path, "image"] };
  }
  if (m.retries !== undefined) {
    out.retries =
      readInteger(c, m.retries, [...path, "retries"], "defaults.retries", 0, MAX_RETRIES) ?? 0;
  }
  if (m.timeout !== undefined) {
    out.timeoutSeconds =
      readTimeout(c, m.timeout, [...path, "timeout"], "defaults.timeout") ?? out.timeoutSeconds;
  }
  if (m.resources !== undefined) {
    out.resources = readResources(c, m.resources, [...path, "resources"], "defaults.resources");
  }
  return out;
}

/** The parsed task plus what later checks need to know about how it was written. */
export interface ReadTask {
  task: TaskSpec;
  /** False when part of the interface could not be read: skip checks that depend on it. */
  interfaceOk: boolean;
  imagePath: PathSegment[] | null;
  sourcesDeclared: boolean;
}

export function readTask(c: Collector, name: string, raw: unknown, defaults: Defaults): ReadTask {
  const path: PathSegment[] = ["tasks", name];
  const what = `task "${name}"`;
  const task: TaskSpec = {
    name,
    image: "",
    command: [],
    env: {},
    workdir: ".",
    sources: DEFAULT_SOURCES,
    inputs: {},
    outputs: {},
    cache: { enabled: false, version: null, ignoreInputs: [], ttlSeconds: null },
    retries: defaults.retries,
    timeoutSeconds: defaults.timeoutSeconds,
    resources: { ...defaults.resources },
    secrets: [],
  };
  const result: ReadTask = { task, interfaceOk: true, imagePath: null, sourcesDeclared: false };
  const m = readMapping(c, raw, path, what, TASK_KEYS);
  if (!m) {
    result.interfaceOk = false;
    return result;
  }

  if (m.image !== undefined) {
    const image = readString(c, m.image, [...path, "image"], `${what}: image`);
    if (image) {
      task.image = image;
      result.imagePath = [...path, "image"];
    }
  } else if (defaults.image) {
    task.image = defaults.image.value;
    result.imagePath = defaults.image.path;
  } else {
    c.error(
      "E_REQUIRED",
      path,
      `${what} has no image: set tasks.${name}.image or defaults.image`,
      "key",
    );
  }

  if (m.command === undefined) {
    c.error("E_REQUIRED", path, `${what} has no command: add command: [program, args...]`, "key");
  } else if (typeof m.command === "string") {
    c.error(
      "E_TYPE",
      [...path, "command"],
      `${what}: command must be a list of strings (no shell splitting is done), e.g. [${m.command.split(/\s+/).join(", ")}]`,
    );
  } else {
    const command = readStringList(c, m.command, [...path, "command"], `${what}: command`);
    if (command && command.length === 0)
      c.error("E_VALUE", [...path, "command"], `${what}: command must not be empty`);
    if (command) task.command = command;
  }

  if (m.env !== undefined) task.env = readEnv(c, m.env, [...path, "env"], what);

  if (m.workdir !== undefined) {
    const workdir = readString(c, m.workdir, [...path, "workdir"], `${what}: workdir`);
    if (workdir !== null) {
      const checked = normalizeRepoPath(workdir);
      if (checked.ok) task.workdir = checked.path;
      else
        c.error("E_PATH", [...path, "workdir"], `${what}: workdir "${workdir}" ${checked.reason}`);
    }
  }

  if (m.sources !== undefined) {
    result.sourcesDeclared = true;
    const globs = readStringList(c, m.sources, [...path, "sources"], `${what}: sources`);
    if (globs) {
      const normalized: string[] = [];
      globs.forEach((g, i) => {
        const checked = normalizeGlob(g);
        if (checked.ok) normalized.push(checked.path);
        else
          c.error(
            "E_PATH",
            [...path, "sources", i],
            `${what}: sources glob "${g}" ${checked.reason}`,
          );
      });
      if (globs.length === 0 || !normalized.some((g) => !g.startsWith("!"))) {
        c.error(
          "E_SOURCES_EMPTY",
          [...path, "sources"],
          `${what}: sources must name at least one file glob (omit the key for the whole tree)`,
        );
      }
      task.sources = [...new Set(normalized)].sort();
    }
  }

  const inputs =
    m.inputs === undefined
      ? {}
      : readParams(c, m.inputs, [...path, "inputs"], `${what}: inputs`, true);
  const outputs =
    m.outputs === undefined
      ? {}
      : readParams(c, m.outputs, [...path, "outputs"], `${what}: outputs`, false);
  if (inputs === null || outputs === null) result.interfaceOk = false;
  task.inputs = inputs ?? {};
  task.outputs = outputs ?? {};
  checkEnvCollisions(c, task.inputs, [...path, "inputs"], what);

  if (m.cache !== undefined)
    task.cache = readCache(c, m.cache, [...path, "cache"], what, task.inputs, inputs !== null);
  if (m.retries !== undefined) {
    task.retries =
      readInteger(c, m.retries, [...path, "retries"], `${what}: retries`, 0, MAX_RETRIES) ??
      task.retries;
  }
  if (m.timeout !== undefined) {
    task.timeoutSeconds =
      readTimeout(c, m.timeout, [...path, "timeout"], `${what}: timeout`) ?? task.timeoutSeconds;
  }
  if (m.resources !== undefined) {
    const r = readResources(c, m.resources, [...path, "resources"], `${what}: resources`);
    task.resources = {
      cpu: r.cpu ?? task.resources.cpu,
      memory: r.memory ?? task.resources.memory,
      disk: r.disk ?? task.resources.disk,
    };
  }
  if (m.secrets !== undefined)
    task.secrets = readSecrets(c, m.secrets, [...path, "secrets"], what, task.env);
  return result;
}

function readEnv(
  c: Collector,
  raw: unknown,
  path: PathSegment[],
  what: string,
): Record<string, string> {
  const m = readNamedMapping(c, raw, path, `${what}: env`);
  const out: Record<string, string> = {};
  if (!m) return out;
  for (const [k, v] of Object.entries(m)) {
    if (!ENV_NAME.test(k)) {
      c.error(
        "E_NAME",
        [...path, k],
        `${what}: "${k}" is not a valid environment variable name`,
        "key",
      );
      continue;
    }
    if (k.startsWith(RESERVED_ENV_PREFIX)) {
      c.error(
        "E_NAME",
        [...path, k],
        `${what}: env names starting with ${RESERVED_ENV_PREFIX} are reserved for Reprise`,
        "key",
      );
      continue;
    }
    if (typeof v === "string") out[k] = v;
    else if (typeof v === "number" || typeof v === "boolean") {
      c.error(
        "E_TYPE",
        [...path, k],
        `${what}: env ${k} must be a string (env holds literal strings only); quote it: "${v}"`,
      );
    } else {
      c.error(
        "E_TYPE",
        [...path, k],
        `${what}: env ${k} must be a literal string, got ${describe(v)}`,
      );
    }
  }
  return out;
}

/** Inputs (with defaults) or outputs: `name: type` or `name: { type, default }`. */
export function readParams(
  c: Collector,
  raw: unknown,
  path: PathSegment[],
  what: string,
  withDefault: boolean,
): Record<string, InputDecl> | null {
  const m = readNamedMapping(c, raw, path, what);
  if (!m) return null;
  const out: Record<string, InputDecl> = {};
  let ok = true;
  for (const [name, decl] of Object.entries(m)) {
    const at = [...path, name];
    if (!PARAM_NAME.test(name)) {
      c.error("E_NAME", at, `${what}: "${name}" is not a valid name (${PARAM_RULE})`, "key");
      ok = false;
      continue;
    }
    if (typeof decl === "string") {
      const type = readType(c, decl, at, `${what}.${name}`);
      if (type) out[name] = { type };
      else ok = false;
      continue;
    }
    const dm = readMapping(
      c,
      decl,
      at,
      `${what}.${name}`,
      withDefault ? ["type", "default"] : ["type"],
    );
    if (!dm) {
      ok = false;
      continue;
    }
    if (dm.type === undefined) {
      c.error(
        "E_REQUIRED",
        at,
        `${what}.${name} has no type (one of ${VALUE_TYPES.join(", ")})`,
        "key",
      );
      ok = false;
      continue;
    }
    const type = readType(c, dm.type, [...at, "type"], `${what}.${name}`);
    if (!type) {
      ok = false;
      continue;
    }
    const param: InputDecl = { type };
    if (dm.default !== undefined && isArtifactType(type)) {
      // A default would name content by digest from the spec, outside any repository's
      // artifacts: artifacts come from a run (-i NAME=@PATH) or a node's output.
      c.error(
        "E_TYPE",
        [...at, "default"],
        `${what}.${name}: a ${type} input cannot have a default; pass one at run time (-i ${name}=@PATH) or bind it to a node's output`,
      );
      ok = false;
    } else if (dm.default !== undefined) {
      const problem = typeMismatch(type, dm.default);
      if (problem) {
        c.error(
          "E_TYPE",
          [...at, "default"],
          `${what}.${name}: default does not fit type ${type}: ${problem}`,
        );
        ok = false;
      } else param.default = asJson(dm.default);
    }
    out[name] = param;
  }
  return ok ? out : null;
}

function readType(c: Collector, v: unknown, path: PathSegment[], what: string): ValueType | null {
  if (typeof v === "string" && (VALUE_TYPES as readonly string[]).includes(v))
    return v as ValueType;
  const shown = typeof v === "string" ? `"${v}"` : describe(v);
  c.error("E_TYPE", path, `${what}: unknown type ${shown}; use one of ${VALUE_TYPES.join(", ")}`);
  return null;
}

function checkEnvCollisions(
  c: Collector,
  inputs: Record<string, InputDecl>,
  path: PathSegment[],
  what: string,
): void {
  const seen = new Map<string, string>();
  for (const name of Object.keys(inputs)) {
    const env = inputEnvName(name);
    const other = seen.get(env);
    if (other !== undefined) {
      c.error(
        "E_NAME",
        [...path, name],
        `${what}: inputs "${other}" and "${name}" would both be passed as ${env}; rename one`,
        "key",
      );
    }
    seen.set(env, name);
  }
}

function readCache(
  c: Collector,
  raw: unknown,
  path: PathSegment[],
  what: string,
  inputs: Record<string, InputDecl>,
  inputsKnown: boolean,
): CacheSettings {
  const off: CacheSettings = { enabled: false, version: null, ignoreInputs: [], ttlSeconds: null };
  if (typeof raw === "boolean") return { ...off, enabled: raw };
  const m = readMapping(c, raw, path, `${what}: cache`, ["version", "ignore_inputs", "ttl"]);
  if (!m) return off;
  const out: CacheSettings = { ...off, enabled: true };
  if (m.version !== undefined) {
    if (typeof m.version === "number" && Number.isFinite(m.version))
      out.version = String(m.version);
    else out.version = readString(c, m.version, [...path, "version"], `${what}: cache.version`);
  }
  if (m.ignore_inputs !== undefined) {
    const names =
      readStringList(
        c,
        m.ignore_inputs,
        [...path, "ignore_inputs"],
        `${what}: cache.ignore_inputs`,
      ) ?? [];
    names.forEach((n, i) => {
      if (inputsKnown && !(n in inputs)) {
        c.error(
          "E_UNKNOWN_INPUT",
          [...path, "ignore_inputs", i],
          `${what}: cache.ignore_inputs names "${n}", which is not an input of the task`,
        );
      }
    });
    out.ignoreInputs = [...new Set(names)].sort();
  }
  if (m.ttl !== undefined)
    out.ttlSeconds = readDurationValue(c, m.ttl, [...path, "ttl"], `${what}: cache.ttl`);
  return out;
}

/** Timeouts above a week are almost certainly a unit mistake (Kubernetes Jobs hold a pod that long). */
const MAX_TIMEOUT_SECONDS = 7 * 86_400;

function readTimeout(c: Collector, raw: unknown, path: PathSegment[], what: string): number | null {
  const seconds = readDurationValue(c, raw, path, what);
  if (seconds !== null && seconds > MAX_TIMEOUT_SECONDS) {
    c.error("E_DURATION", path, `${what} is longer than 7 days`);
    return null;
  }
  return seconds;
}

function readDurationValue(
  c: Collector,
  raw: unknown,
  path: PathSegment[],
  what: string,
): number | null {
  const seconds = parseDuration(raw);
  if (seconds === null) {
    c.error(
      "E_DURATION",
      path,
      `${what}: ${describe(raw)} is not a duration; write e.g. 90s, 10m, 1h30m, 7d, or whole seconds`,
    );
  }
  return seconds;
}

const RESOURCE_EXAMPLES = { cpu: '500m or "2"', memory: "512Mi or 4Gi", disk: "10Gi or 500Mi" };

function readResources(c: Collector, raw: unknown, path: PathSegment[], what: string): Resources {
  const out: Resources = { cpu: null, memory: null, disk: null };
  const m = readMapping(c, raw, path, what, ["cpu", "memory", "disk"]);
  if (!m) return out;
  for (const key of ["cpu", "memory", "disk"] as const) {
    if (m[key] === undefined) continue;
    const q = parseQuantity(m[key]);
    if (q === null) {
      c.error(
        "E_QUANTITY",
        [...path, key],
        `${what}.${key}: ${describe(m[key])} is not a positive Kubernetes quantity (e.g. ${RESOURCE_EXAMPLES[key]})`,
      );
    } else if (key === "disk" && q.endsWith("m")) {
      // Kubernetes takes it, as thousandths of a byte: a volume no task fits in. Surely Mi or M.
      c.error(
        "E_QUANTITY",
        [...path, key],
        `${what}.disk: ${q} is ${q.slice(0, -1)} thousandths of a byte (m is milli); write Mi (mebibytes) or M (megabytes), e.g. ${q.slice(0, -1)}Mi`,
      );
    } else out[key] = q;
  }
  return out;
}

function readSecrets(
  c: Collector,
  raw: unknown,
  path: PathSegment[],
  what: string,
  env: Record<string, string>,
): SecretRef[] {
  if (!Array.isArray(raw)) {
    c.error(
      "E_TYPE",
      path,
      `${what}: secrets must be a list of { env, secret, key }, got ${describe(raw)}`,
    );
    return [];
  }
  const out: SecretRef[] = [];
  const seen = new Set<string>();
  raw.forEach((item, i) => {
    const at = [...path, i];
    const m = readMapping(c, item, at, `${what}: secrets[${i}]`, ["env", "secret", "key"]);
    if (!m) return;
    const fields: Partial<SecretRef> = {};
    for (const key of ["env", "secret", "key"] as const) {
      if (m[key] === undefined) {
        c.error("E_REQUIRED", at, `${what}: secrets[${i}] needs "${key}"`);
        continue;
      }
      const s = readString(c, m[key], [...at, key], `${what}: secrets[${i}].${key}`);
      if (s !== null) fields[key] = s;
    }
    const { env: name, secret, key } = fields;
    if (name !== undefined) {
      if (!ENV_NAME.test(name) || name.startsWith(RESERVED_ENV_PREFIX)) {
        c.error(
          "E_NAME",
          [...at, "env"],
          `${what}: "${name}" is not an environment variable name a task may set`,
        );
      } else if (name in env || seen.has(name)) {
        c.error(
          "E_NAME",
          [...at, "env"],
          `${what}: ${name} is set twice (env and secrets, or two secrets)`,
        );
      }
      seen.add(name);
    }
    if (secret !== undefined && !SECRET_NAME.test(secret)) {
      c.error(
        "E_NAME",
        [...at, "secret"],
        `${what}: "${secret}" is not a Kubernetes Secret name (lowercase DNS-1123 subdomain)`,
      );
    }
    if (key !== undefined && !SECRET_KEY.test(key)) {
      c.error(
        "E_NAME",
        [...at, "key"],
        `${what}: "${key}" is not a Secret key (letters, digits, '-', '_', '.')`,
      );
    }
    if (name !== undefined && secret !== undefined && key !== undefined)
      out.push({ env: name, secret, key });
  });
  return out;
}

export function isPinnedImage(image: string): boolean {
  return /@sha256:[0-9a-f]{64}$/.test(image);
}
