/**
 * Group commit for one execution's writes. Writes that arrive while a flush is in flight wait and
 * go together in the next one: one transaction, one lock acquisition, one commit (a WAL flush)
 * for the lot, instead of one each. A lone write takes its single-statement form.
 */
import type { ExecutionTx } from "../../db/store/executions.js";

interface Pending {
  inTx: (tx: ExecutionTx) => Promise<void>;
  alone: () => Promise<void>;
  resolve: () => void;
  reject: (e: unknown) => void;
}

/** A batch this size keeps the execution row locked for well under a second. */
const MAX_BATCH = 500;

export class WriteBatcher {
  private readonly queue: Pending[] = [];
  private flushing = false;

  constructor(private readonly fenced: (fn: (tx: ExecutionTx) => Promise<void>) => Promise<void>) {}

  write(inTx: (tx: ExecutionTx) => Promise<void>, alone: () => Promise<void>): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ inTx, alone, resolve, reject });
      if (!this.flushing) void this.flush();
    });
  }

  private async flush(): Promise<void> {
    this.flushing = true;
    try {
      while (this.queue.length > 0) {
        const batch = this.queue.splice(0, MAX_BATCH);
        try {
          if (batch.length === 1) await (batch[0] as Pending).alone();
          else
            await this.fenced(async (tx) => {
              for (const p of batch) await p.inTx(tx);
            });
          for (const p of batch) p.resolve();
        } catch (e) {
          for (const p of batch) p.reject(e);
        }
      }
    } finally {
      this.flushing = false;
    }
  }
}
