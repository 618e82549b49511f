// Group commit for the relay's per-appointment statements (River's batch completer,
// graphile-worker's completeJobBatchDelay): what the appointments in flight ask for while one
// statement runs goes out together as the next one. One change alone is sent at once (the
// same tick's calls join it); under load the batches grow by themselves, so a drain costs a
// few statements per batch instead of a few per change.
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
}): Batcher<In, Out> {
  const pending: Pending<In, Out>[] = [];
  let running = false;
  let scheduled = false;

  function schedule(): void {
    if (scheduled || running || pending.length === 0) return;
    scheduled = true;
    // setImmediate, not a microtask: the calls of this tick and the answers read in this
    // I/O phase all join the batch.
    setImmediate(() => {
      scheduled = false;
      void flush();
    });
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
    try {
      await runBatch(take());
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
        pending.push({ item, resolve, reject });
        schedule();
      });
    },
  };
}
