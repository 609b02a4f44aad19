/** The normalized form of a reprise.yaml: every default applied, every short form expanded. */

export type JsonValue =
  | null
  | boolean
  | number
  | string
  | JsonValue[]
  | { [key: string]: JsonValue };

/** `file` and `directory` are artifacts: content-addressed data kept by Reprise (core/artifacts). */
export const VALUE_TYPES = [
  "string",
  "integer",
  "number",
  "boolean",
  "json",
  "file",
  "directory",
] as const;
export type ValueType = (typeof VALUE_TYPES)[number];

export interface InputDecl {
  type: ValueType;
  /** Present only when the spec declares a default. */
  default?: JsonValue;
}

export interface OutputDecl {
  type: ValueType;
}

export interface CacheSettings {
  enabled: boolean;
  /** Set: Flyte-style manual cache identity (name + version + interface). */
  version: string | null;
  ignoreInputs: string[];
  /** Entries older than this are ignored; null keeps them forever. */
  ttlSeconds: number | null;
}

export interface Resources {
  cpu: string | null;
  memory: string | null;
  /**
   * The size limit of the attempt's scratch volume (Kubernetes: the emptyDir `sizeLimit`), a
   * quantity in bytes; null is no limit.
   */
  disk: string | null;
}

export interface SecretRef {
  env: string;
  secret: string;
  key: string;
}

export interface TaskSpec {
  name: string;
  image: string;
  command: string[];
  env: Record<string, string>;
  /** Repository-relative, normalized; "." is the root. */
  workdir: string;
  /** Repository-relative globs; a leading "!" excludes. */
  sources: string[];
  inputs: Record<string, InputDecl>;
  outputs: Record<string, OutputDecl>;
  cache: CacheSettings;
  retries: number;
  timeoutSeconds: number;
  resources: Resources;
  secrets: SecretRef[];
}

export type Binding =
  | { kind: "literal"; value: JsonValue }
  | { kind: "input"; input: string }
  | { kind: "output"; node: string; output: string };

export interface NodeSpec {
  id: string;
  task: string;
  inputs: Record<string, Binding>;
  /** Explicit ordering edges, sorted and without duplicates. */
  after: string[];
}

export interface EventTrigger {
  /** Branch globs; null matches every branch. */
  branches: string[] | null;
  /** Workflow inputs for executions this event starts (workflow defaults fill the rest). */
  inputs: Record<string, JsonValue>;
}

export interface ScheduleTrigger {
  cron: string;
  inputs: Record<string, JsonValue>;
}

export interface Triggers {
  push: EventTrigger | null;
  pullRequest: EventTrigger | null;
  schedule: ScheduleTrigger[];
}

export interface WorkflowSpec {
  name: string;
  inputs: Record<string, InputDecl>;
  nodes: Record<string, NodeSpec>;
  outputs: Record<string, Binding>;
  on: Triggers;
}

export interface Spec {
  version: 1;
  tasks: Record<string, TaskSpec>;
  workflows: Record<string, WorkflowSpec>;
}
