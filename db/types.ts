/** The records the store hands out: plain data, the same whichever driver is underneath. */
import type {
  AttemptState,
  CacheStatus,
  ErrorKind,
  ExecutionError,
  ExecutionMode,
  ExecutionState,
  NodeError,
  NodeState,
  Trigger,
} from "../core/engine/vocabulary.js";
import type { Diagnostic } from "../core/spec/diagnostics.js";
import type {
  CacheSettings,
  JsonValue,
  Resources,
  SecretRef,
  TaskSpec,
  WorkflowSpec,
} from "../core/spec/types.js";

// The vocabulary is core's (core/engine/vocabulary.ts); re-exported for the store's callers.
export {
  ACTIVE_EXECUTION_STATES,
  type AttemptState,
  type CacheStatus,
  type ErrorKind,
  EXECUTION_STATES,
  type ExecutionError,
  type ExecutionMode,
  type ExecutionState,
  isTerminalExecutionState,
  isTerminalNodeState,
  NODE_STATES,
  type NodeError,
  type NodeState,
  TERMINAL_EXECUTION_STATES,
  TERMINAL_NODE_STATES,
  type Trigger,
  type TriggerKind,
} from "../core/engine/vocabulary.js";

/**
 * Who recorded a version's ref, most trusted first: "app" the GitHub App (a signed push), "git"
 * the CLI reading a local repository's own git, "client" a claim posted through the API.
 */
export const REF_SOURCES = ["app", "git", "client"] as const;
export type RefSource = (typeof REF_SOURCES)[number];

/** Who is registering, and so how far the branch it names is believed (db/store/versions.ts). */
export interface Registrant {
  source: RefSource;
  /** Recorded as `registered_by`: "app", "cli", or the API caller's subject. */
  actor: string;
}

/** A branch a version was seen at the head of, by whom. */
export interface VersionRef {
  ref: string;
  source: RefSource;
  recordedBy: string;
  recordedAt: Date;
}

export interface VersionRecord {
  repo: string;
  sha: string;
  parents: string[];
  /**
   * The branch it is shown under: the first the App (or local git) recorded for it, else the
   * one its registrant named.
   */
  ref: string | null;
  message: string | null;
  status: "registered" | "invalid";
  specDigest: string | null;
  errors: Diagnostic[];
  warnings: Diagnostic[];
  /** "app", "cli", the API caller's subject, or "unknown" (registered before migration 0003). */
  registeredBy: string;
  registeredAt: Date;
  /** Every branch recorded for it, oldest first (`get` fills it; lists leave it empty). */
  refs: VersionRef[];
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
  mode: ExecutionMode;
  overwriteCache: boolean;
  state: ExecutionState;
  outputs: Record<string, JsonValue> | null;
  error: ExecutionError | null;
  leaseOwner: string | null;
  leaseExpiresAt: Date | null;
  createdAt: Date;
  startedAt: Date | null;
  finishedAt: Date | null;
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
  state: AttemptState;
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
