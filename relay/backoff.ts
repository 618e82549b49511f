// Truncated exponential backoff with full jitter between attempts of an outbox row
// (google-api.md §6: min(2^n + random, cap)). Attempts are counted by the claim.
export function backoffMs(attempt: number, baseMs = 1_000, capMs = 5 * 60_000): number {
  const exp = Math.min(capMs, baseMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(exp / 2 + Math.random() * (exp / 2) + Math.random() * 1_000);
}

/** ±10% jitter, so relays started together do not poll in lockstep (River's producer.go). */
export function jitter(ms: number): number {
  return Math.round(ms * (1 + Math.random() * 0.1));
}
