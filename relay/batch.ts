// Group commit for the relay's per-appointment statements (River's batch completer,
// graphile-worker's completeJobBatchDelay): what the appointments in flight ask for while one
// statement runs goes out together as the next one. With no window, one item alone is sent at
// once (the same tick's items join it) and under load the batches grow by themselves. A
// window (`delayMs`) also gathers items that trickle in while nothing runs: a relay whose
// calls each wait on Google would otherwise send one statement per appointment.
export type Batcher<In, Out> = {
  /** Runs `item` in the next batch; resolves with its own result, or rejects with its own error. */
  add(item: In): Promise<Out>;
};

type Pending<In, Out> = { item: In; resolve(value: Out): void; reject(error: unknown): void };

export function createBatcher<In, Out>(opts: {
  /** One statement for all `items`; returns one result per item, in order. */
  run(items: In[]): Promise<Out[]>;
  maxBatch: number;
  /** Items with the same key never share a batch (one statement cannot write a row twice). */
  key(item: In): string;
  /** How long the oldest waiting item may wait for others before its batch goes (default 0). */
  delayMs?: number;
  /**
   * Whether other items may still come (asked when one arrives): when none can, the window is
   * not waited out. An idle relay's lone result goes at once, so its statement does not land
   * in the middle of the next live change (measured: commit-to-call p99 5.4 -> 4.5 ms).
   */
  othersComing?: () => boolean;
}): Batcher<In, Out> {
  const delayMs = opts.delayMs ?? 0;
  const pending: Pending<In, Out>[] = [];
  // When the window of the pending items opened: their batch goes at most `delayMs` later.
  let oldestAt = -Infinity;
  let running = false;
  let timer: NodeJS.Timeout | null = null;
  let immediate: NodeJS.Immediate | null = null;

  function schedule(): void {
    if (running || pending.length === 0 || immediate) return;
    const wait = oldestAt + delayMs - performance.now();
    if (wait <= 0 || pending.length >= opts.maxBatch || opts.othersComing?.() === false) {
      if (timer) clearTimeout(timer);
      timer = null;
      // setImmediate, not a microtask: the calls of this tick and the answers read in this
      // I/O phase all join the batch.
      immediate = setImmediate(() => {
        immediate = null;
        void flush();
      });
    } else {
      timer ??= setTimeout(() => {
        timer = null;
        schedule();
      }, wait);
    }
  }

  function take(): Pending<In, Out>[] {
    const keys = new Set<string>();
    let n = 0;
    while (n < pending.length && n < opts.maxBatch) {
      const key = opts.key(pending[n]!.item);
      if (keys.has(key)) break;
      keys.add(key);
      n += 1;
    }
    return pending.splice(0, n);
  }

  async function flush(): Promise<void> {
    if (running || pending.length === 0) return;
    running = true;
    const batch = take();
    // Whatever is left, or arrives while this statement runs, goes right after it: the
    // statement's own time was its window.
    oldestAt = -Infinity;
    try {
      await runBatch(batch);
    } finally {
      running = false;
      schedule();
    }
  }

  async function runBatch(batch: Pending<In, Out>[]): Promise<void> {
    try {
      const results = await opts.run(batch.map((p) => p.item));
      batch.forEach((p, i) => p.resolve(results[i]!));
    } catch (error) {
      if (batch.length === 1) {
        batch[0]!.reject(error);
        return;
      }
      // One item's failure must not fail its batch-mates: each goes again on its own.
      for (const p of batch) {
        try {
          p.resolve((await opts.run([p.item]))[0]!);
        } catch (itemError) {
          p.reject(itemError);
        }
      }
    }
  }

  return {
    add(item: In): Promise<Out> {
      return new Promise<Out>((resolve, reject) => {
        if (pending.length === 0 && !running) oldestAt = performance.now();
        pending.push({ item, resolve, reject });
        schedule();
      });
    },
  };
}
