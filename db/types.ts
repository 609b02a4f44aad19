/** The records the store hands out: plain data, the same whichever driver is underneath. */
import type { Diagnostic } from "../core/spec/diagnostics.js";
import type {
  CacheSettings,
  JsonValue,
  Resources,
  SecretRef,
  TaskSpec,
  WorkflowSpec,
} from "../core/spec/types.js";

export const EXECUTION_STATES = [
  "QUEUED",
  "RUNNING",
  "SUCCEEDED",
  "FAILED",
  "ABORTING",
  "ABORTED",
] as const;
export type ExecutionState = (typeof EXECUTION_STATES)[number];
export const TERMINAL_EXECUTION_STATES: readonly ExecutionState[] = [
  "SUCCEEDED",
  "FAILED",
  "ABORTED",
];

export const NODE_STATES = [
  "PENDING",
  "QUEUED",
  "RUNNING",
  "SUCCEEDED",
  "FAILED",
  "SKIPPED",
  "ABORTED",
] as const;
export type NodeState = (typeof NODE_STATES)[number];

export type CacheStatus = "DISABLED" | "HIT" | "MISS" | "POPULATED" | "SKIPPED" | "RECOVERED";
export type ErrorKind = "user" | "system";

export interface Trigger {
  kind: "cli" | "api" | "action" | "push" | "pull_request" | "comment" | "check_run" | "schedule";
  actor: string;
  pr?: number;
  /**
   * The code comes from a fork's pull request (its head repository is not this one): the
   * execution's tasks get no secrets (DESIGN.md section 2). Set by comment commands on such a
   * pull request, and carried by a relaunch at the same commit.
   */
  fork?: boolean;
}

export interface VersionRecord {
  repo: string;
  sha: string;
  parents: string[];
  ref: string | null;
  message: string | null;
  status: "registered" | "invalid";
  specDigest: string | null;
  errors: Diagnostic[];
  warnings: Diagnostic[];
  registeredAt: Date;
  /** task name -> task digest (empty for an invalid registration). */
  tasks: Record<string, string>;
  /** workflow name -> workflow digest. */
  workflows: Record<string, string>;
}

/** What a version keeps per task name beside the content-addressed definition. */
export interface TaskSettings {
  retries: number;
  timeoutSeconds: number;
  resources: Resources;
  cache: CacheSettings;
  secrets: SecretRef[];
  sources: string[];
  sourcesDigest: string;
  sourceFiles: number;
}

/** A workflow of a version with everything an execution needs, read from immutable rows only. */
export interface ResolvedWorkflow {
  repo: string;
  sha: string;
  digest: string;
  spec: WorkflowSpec;
  /** task name -> its full spec and digest, for the tasks the workflow's nodes use. */
  tasks: Record<string, { digest: string; spec: TaskSpec }>;
}

export interface ExecutionRecord {
  id: string;
  repo: string;
  sha: string;
  workflow: string;
  workflowDigest: string;
  inputs: Record<string, JsonValue>;
  trigger: Trigger;
  parentId: string | null;
  mode: "normal" | "recover";
  overwriteCache: boolean;
  state: ExecutionState;
  outputs: Record<string, JsonValue> | null;
  error: { message: string; node?: string } | null;
  leaseOwner: string | null;
  leaseExpiresAt: Date | null;
  createdAt: Date;
  startedAt: Date | null;
  finishedAt: Date | null;
}

export interface NodeError {
  kind: ErrorKind;
  reason: string;
  message: string;
  exitCode?: number | null;
}

export interface NodeRecord {
  executionId: string;
  nodeId: string;
  taskName: string;
  taskDigest: string;
  state: NodeState;
  cacheStatus: CacheStatus | null;
  cacheKey: string | null;
  /** Why a cacheable node was not served from the cache, when the reason is not plain absence. */
  cacheReason: string | null;
  inputs: Record<string, JsonValue> | null;
  outputs: Record<string, JsonValue> | null;
  attempts: number;
  userFailures: number;
  systemFailures: number;
  source: { execution: string; node: string } | null;
  error: NodeError | null;
  startedAt: Date | null;
  finishedAt: Date | null;
}

export interface AttemptRecord {
  executionId: string;
  nodeId: string;
  attempt: number;
  handle: string;
  state: "RUNNING" | "SUCCEEDED" | "FAILED" | "ABORTED";
  errorKind: ErrorKind | null;
  errorReason: string | null;
  errorMessage: string | null;
  exitCode: number | null;
  logRef: string | null;
  startedAt: Date;
  finishedAt: Date | null;
}

export interface Lease {
  executionId: string;
  owner: string;
  token: number;
  expiresAt: Date;
}

export interface CacheEntry {
  key: string;
  repo: string;
  taskName: string;
  taskDigest: string;
  identity: unknown;
  outputs: Record<string, JsonValue>;
  source: { execution: string; node: string };
  createdAt: Date;
  lastHitAt: Date | null;
  hitCount: number;
}

/** An artifact a repository holds, and where it came from. */
export interface ArtifactRecord {
  repo: string;
  digest: string;
  type: "file" | "directory";
  size: number;
  files: number | null;
  /** The execution, node and task digest that first produced it; null for an upload. */
  producer: { execution: string; node: string; taskDigest: string } | null;
  uploadedBy: string | null;
  createdAt: Date;
}

export type Reservation =
  | { acquired: true; owner: string; expiresAt: Date }
  /** Someone else holds it: wait, and say by whom. */
  | { acquired: false; owner: string; expiresAt: Date };

export interface Activation {
  id: number;
  repo: string;
  sha: string;
  previousSha: string | null;
  actor: string;
  reason: string;
  activatedAt: Date;
}

export interface Delivery {
  id: string;
  event: string;
  action: string | null;
  payload: unknown;
  receivedAt: Date;
  attempts: number;
  processedAt: Date | null;
  outcome: string | null;
}

export interface ApiToken {
  id: string;
  repos: string[];
  readOnly: boolean;
  description: string;
  createdAt: Date;
  expiresAt: Date | null;
}
