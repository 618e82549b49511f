// Sliding-window request counting (google-api.md §6: 600/min per user, 10,000/min per project,
// "a burst during one minute will result in rate limiting during the next window").
// Every attempt counts, refused ones included, so a client that keeps hammering stays limited.

const WINDOW_MS = 60_000;

interface Hit {
  at: number;
  cost: number;
}

export class RateLimiter {
  private readonly windows = new Map<string, { hits: Hit[]; total: number }>();

  /** Records `cost` units for `key` at `now`; returns the units used in the last minute, these included. */
  hit(key: string, now: number, cost: number): number {
    let w = this.windows.get(key);
    if (!w) {
      w = { hits: [], total: 0 };
      this.windows.set(key, w);
    }
    let drop = 0;
    while (drop < w.hits.length && (w.hits[drop]?.at ?? now) <= now - WINDOW_MS) {
      w.total -= w.hits[drop]?.cost ?? 0;
      drop++;
    }
    if (drop > 0) w.hits.splice(0, drop);
    w.hits.push({ at: now, cost });
    w.total += cost;
    return w.total;
  }
}
