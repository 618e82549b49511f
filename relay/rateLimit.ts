// Google's quota is per Google account (600/min) and per project (10,000/min), shared by every
// relay (google-api.md §6). The buckets live in google_rate_limits so all relays draw from
// the same ones; each relay reserves a few tokens per round trip to keep the database out of
// the per-call path. A rate-limit answer from Google pauses the account for every relay.
import { z } from 'zod';
import { sql, type Db } from '../src/shared/db';

export const PROJECT_KEY = '*';

/** The account (or project) may not be called before `until`. */
export class AccountPaused extends Error {
  constructor(
    readonly accountKey: string,
    readonly until: number,
    readonly reason: string,
  ) {
    super(`Google calls for ${accountKey === PROJECT_KEY ? 'the project' : 'this account'} paused until ${new Date(until).toISOString()}: ${reason}`);
    this.name = 'AccountPaused';
  }
}

const Bucket = z.object({ tokens: z.number(), paused_ms: z.number().nullable(), pause_reason: z.string().nullable() });

// Waiting this long inside a call slot is cheaper than handing the rows back.
const MAX_INLINE_WAIT_MS = 2_000;
// Reserved tokens not spent within this time are forgotten (the bucket refills anyway).
const CREDIT_TTL_MS = 1_000;

export type RateLimiter = ReturnType<typeof createRateLimiter>;

export function createRateLimiter(
  db: Db,
  limits: { perAccountPerMinute: number; perProjectPerMinute: number },
  onWait: (ms: number) => void = () => {},
) {
  const credits = new Map<string, { n: number; at: number }>();
  const pausedUntil = new Map<string, { until: number; reason: string }>();
  // One reservation per key at a time: the calls that find no credit meanwhile wait for it
  // (16 calls finding the credit spent at once made 16 round trips on one locked row).
  const reserving = new Map<string, Promise<void>>();
  const bucketsCreated = new Set<string>();

  const perMinute = (key: string) => (key === PROJECT_KEY ? limits.perProjectPerMinute : limits.perAccountPerMinute);

  async function reserve(key: string): Promise<void> {
    for (;;) {
      const paused = pausedUntil.get(key);
      if (paused && paused.until > Date.now()) throw new AccountPaused(key, paused.until, paused.reason);
      const credit = credits.get(key);
      if (credit && credit.n > 0 && Date.now() - credit.at < CREDIT_TTL_MS) {
        credit.n -= 1;
        // Half the credit spent within its lifetime: reserve the next chunk now, in the
        // background, so that the calls to come find credit instead of waiting a round trip.
        const chunk = chunkFor(key);
        if (credit.n <= chunk / 2 && chunk >= 4 && !reserving.has(key)) {
          const topUp = reserveChunk(key, { topUp: true });
          reserving.set(key, topUp);
          topUp.catch(() => {}).finally(() => reserving.get(key) === topUp && reserving.delete(key));
        }
        return;
      }
      const inFlight = reserving.get(key);
      if (!inFlight) break;
      await inFlight.catch(() => {});
    }
    const reservation = reserveChunk(key);
    reserving.set(key, reservation);
    try {
      await reservation;
    } finally {
      reserving.delete(key);
    }
  }

  // Half a second's worth, at most 50: few round trips, little quota held by one relay.
  const chunkFor = (key: string) => Math.max(1, Math.min(50, Math.floor(perMinute(key) / 60 / 2)));

  /**
   * Takes a chunk of tokens from the shared bucket (or waits, or refuses); keeps all but one as
   * credit. A top-up adds the whole chunk to the credit left (which it keeps fresh): at most
   * one and a half chunks are ever held.
   */
  async function reserveChunk(key: string, opts: { topUp?: boolean } = {}): Promise<void> {
    const capacity = perMinute(key);
    const perSecond = capacity / 60;
    const chunk = chunkFor(key);
    if (!bucketsCreated.has(key)) {
      await db.query(sql.unsafe`
        insert into google_rate_limits (account_key, tokens) values (${key}, ${capacity}) on conflict do nothing`);
      bucketsCreated.add(key);
    }
    // A token bucket that may go a little into debt: a negative balance is the wait before our
    // turn. Tokens are taken only when that wait is short; otherwise nothing is taken and the
    // caller hands its rows back until the bucket has refilled (taking them anyway would make
    // every retry dig the debt deeper and starve the account).
    const maxDebt = (MAX_INLINE_WAIT_MS / 1000) * perSecond;
    const bucket = await db.maybeOne(sql.type(Bucket)`
      with current as (
        select account_key, paused_until > clock_timestamp() as paused,
               least(${capacity}::float8, tokens + extract(epoch from clock_timestamp() - refilled_at) * ${perSecond}::float8) as available
        from google_rate_limits where account_key = ${key}
        for update
      )
      update google_rate_limits g
      set tokens = case when c.paused or c.available - ${chunk} < -${maxDebt}::float8 then c.available
                        else c.available - ${chunk} end,
          refilled_at = clock_timestamp()
      from current c
      where g.account_key = c.account_key
      returning c.available - ${chunk} as tokens,
                case when c.paused then (extract(epoch from g.paused_until - clock_timestamp()) * 1000)::float8 end as paused_ms,
                g.pause_reason`);
    if (!bucket) {
      // The bucket row was removed behind our back (a DBA's cleanup): create it again.
      bucketsCreated.delete(key);
      return reserveChunk(key, opts);
    }
    if (bucket.paused_ms !== null) {
      const until = Date.now() + bucket.paused_ms;
      pausedUntil.set(key, { until, reason: bucket.pause_reason ?? 'rate limited' });
      throw new AccountPaused(key, until, bucket.pause_reason ?? 'rate limited');
    }
    if (bucket.tokens < 0) {
      const waitMs = (-bucket.tokens / perSecond) * 1000;
      if (bucket.tokens < -maxDebt) throw new AccountPaused(key, Date.now() + waitMs - MAX_INLINE_WAIT_MS / 2, 'local quota (GOOGLE_RATE_LIMIT_*) reached');
      onWait(waitMs);
      await new Promise((r) => setTimeout(r, waitMs));
    }
    const left = credits.get(key);
    const fresh = left !== undefined && Date.now() - left.at < CREDIT_TTL_MS;
    credits.set(key, opts.topUp ? { n: (fresh ? left.n : 0) + chunk, at: Date.now() } : { n: chunk - 1, at: Date.now() });
  }

  return {
    /** Waits for (or refuses with AccountPaused) one call's worth of quota. */
    async acquire(accountKey: string): Promise<void> {
      // Side by side: when both credits run out, one round trip of waiting, not two.
      await Promise.all([reserve(PROJECT_KEY), reserve(accountKey)]);
    },
    /** Google said slow down: nobody calls for this account until `ms` from now. */
    async pause(accountKey: string, ms: number, reason: string): Promise<void> {
      pausedUntil.set(accountKey, { until: Date.now() + ms, reason });
      credits.delete(accountKey);
      await db.query(sql.unsafe`
        insert into google_rate_limits (account_key, tokens, paused_until, pause_reason)
        values (${accountKey}, 0, now() + ${Math.round(ms)} * interval '1 millisecond', ${reason})
        on conflict (account_key) do update
        set paused_until = greatest(google_rate_limits.paused_until, excluded.paused_until), pause_reason = excluded.pause_reason`);
    },
  };
}
