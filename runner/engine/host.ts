/**
 * What a Driver needs of the engine that runs it (engine.ts implements it): the store and
 * executor, the timings, the slots of running attempts, and where events go. The driver takes
 * this rather than the Engine class, so the two files do not import each other.
 */
import type { Store } from "../../db/store.js";
import type { CacheStatus, ExecutionRecord, NodeError, NodeState } from "../../db/types.js";
import type { BlobStore } from "../artifacts/store.js";
import type { Executor } from "../executors/types.js";

export type EngineEvent =
  | { type: "execution"; executionId: string; state: ExecutionRecord["state"] }
  | {
      type: "node";
      executionId: string;
      nodeId: string;
      state: NodeState;
      cache?: CacheStatus | null;
      attempt?: number;
      error?: NodeError | null;
      source?: { execution: string; node: string } | null;
    }
  | { type: "waiting"; executionId: string; nodeId: string; holder: string };

export interface DriverHost {
  readonly store: Store;
  readonly executor: Executor;
  /** Where `file` and `directory` values live; null: cache hits are not checked for them. */
  readonly artifacts: BlobStore | null;
  readonly leaseMs: number;
  readonly tickMs: number;
  readonly reservationMs: number;
  readonly heartbeatMs: number;
  emit(event: EngineEvent): void;
  /** A slot for one running attempt; false when all are taken. `force` takes one anyway. */
  takeSlot(force?: boolean): boolean;
  /** Gives a slot back; `wake: false` (taken and given back in one pass) wakes nobody. */
  releaseSlot(wake?: boolean): void;
  /** `wake` is called once a slot frees up. */
  waitForSlot(wake: () => void): void;
  cancelSlotWait(wake: () => void): void;
}
