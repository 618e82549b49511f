// The per-account quota is one bucket in the database, shared by every relay: two relays
// together stay under it, and Google never has to say "rate limit exceeded".
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { z } from 'zod';
import { sql } from '../../src/shared/db';
import { createRateLimiter } from '../../relay/rateLimit';
import { startRelay, type Relay } from '../../relay/relay';
import { startEmulator, type RunningEmulator } from '../emulator/index';
import { createTestDatabase, type TestDatabase } from '../helpers/db';
import { createAppointment, createOrganisation } from '../helpers/fixtures';
import { connectGoogle, drained, relayConfig } from '../helpers/google';

let t: TestDatabase;
let emu: RunningEmulator;
let relays: Relay[] = [];
before(async () => {
  t = await createTestDatabase();
  emu = await startEmulator();
});
after(async () => {
  await Promise.all(relays.map((r) => r.stop()));
  await emu.close();
  await t.drop();
});

test('two relays share one per-account budget (30 calls/min: one every 2 s)', async () => {
  emu.control.addAccount({ email: 'quota@gmail.test' });
  const org = await createOrganisation(t.db);
  await connectGoogle(t.db, emu.url, { organisationId: org, email: 'quota@gmail.test' });
  await t.db.query(sql.unsafe`truncate sync_backlog`);
  const sub = emu.control.account('quota@gmail.test').sub;
  // Start with an empty bucket so the budget binds at once.
  await t.db.query(sql.unsafe`insert into google_rate_limits (account_key, tokens) values (${sub}, 0)`);
  const config = { GOOGLE_RATE_LIMIT_PER_ACCOUNT_PER_MIN: 30 };
  relays = [await startRelay(relayConfig(t.url, emu.url, config)), await startRelay(relayConfig(t.url, emu.url, config))];
  const started = Date.now();
  for (let i = 0; i < 4; i++) await createAppointment(t.db, org, { title: `Quota ${i}` });
  await drained(t.db, 30_000);
  const inserts = emu.control
    .calls()
    .filter((c) => c.method === 'POST' && c.path.startsWith('/calendar/v3/calendars/quota%40gmail.test/events'))
    .map((c) => Date.parse(c.at));
  assert.equal(inserts.length, 4);
  assert.ok(inserts.every((at) => at >= started));
  const span = Math.max(...inserts) - Math.min(...inserts);
  assert.ok(span >= 5_000, `4 calls at one per 2 s span at least 6 s (allowing scheduling slack): ${span} ms`);
  assert.equal(emu.control.calls().filter((c) => c.status === 403 || c.status === 429).length, 0, 'Google never rate-limited us');
});

test('calls that find the local credit spent together wait for one reservation instead of each taking a chunk', async () => {
  const limiter = createRateLimiter(t.db, { perAccountPerMinute: 6_000, perProjectPerMinute: 1_000_000 });
  const key = `single-flight-${Date.now()}`;
  // 6,000/min is 100/s: a reservation takes a chunk of 50 (half a second's worth).
  await Promise.all(Array.from({ length: 16 }, () => limiter.acquire(key)));
  const tokens = await t.db.oneFirst(sql.type(z.object({ tokens: z.number() }))`select tokens from google_rate_limits where account_key = ${key}`);
  assert.ok(tokens > 5_949 && tokens <= 5_950, `one chunk of 50 taken from the full bucket of 6,000, not 16: ${tokens} left`);
});

test('half the credit spent: the next chunk is reserved in the background, before any call needs it', async () => {
  // Count the reservations (the bucket's own figure also moves with its refill).
  let reservations = 0;
  const counted = new Proxy(t.db, {
    get(target, prop) {
      const value = Reflect.get(target, prop) as unknown;
      if (typeof value !== 'function') return value;
      if (prop === 'maybeOne') return (...args: unknown[]) => ((reservations += 1), (value as (...a: unknown[]) => unknown).apply(target, args));
      return (value as (...a: unknown[]) => unknown).bind(target);
    },
  });
  // 6,000/min is 100/s: chunks of 50 for the account, and for the project too.
  const limiter = createRateLimiter(counted, { perAccountPerMinute: 6_000, perProjectPerMinute: 1_000_000 });
  const key = `top-up-${Date.now()}`;
  for (let i = 0; i < 24; i++) await limiter.acquire(key); // 26 of the first chunk left
  assert.equal(reservations, 2, 'one chunk for the account, one for the project');
  await limiter.acquire(key); // 25 left: half spent
  const deadline = Date.now() + 10_000;
  while (reservations < 4 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  assert.equal(reservations, 4, 'the next chunks (account and project) were reserved before the credit ran out');
  // 45 more calls use that credit (30 of 75 left): no call waits, nothing more is reserved.
  for (let i = 0; i < 45; i++) await limiter.acquire(key);
  assert.equal(reservations, 4);
});
