// Chaos: the relays' LISTEN connection dies (pg_terminate_backend) or goes silently half-open
// (a proxy that stops forwarding without closing). The poll is set to 60 s, so a change that
// syncs within seconds proves the listener was detected dead and subscribed again (pg-listen's
// reconnection, or the relay's own ping watchdog for the half-open case).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { sql } from '../../src/shared/db';
import { startEmulator, type RunningEmulator } from '../emulator/index';
import { createTestDatabase, type TestDatabase } from '../helpers/db';
import { createAppointment, createOrganisation } from '../helpers/fixtures';
import { connectGoogle, waitFor } from '../helpers/google';
import { convergeAndCheck, figures, liveByAppointment, sleep, startTcpProxy, Supervisor, waitQuiet, type TcpProxy, TEST_TIMEOUT } from '../helpers/chaos';

const POLL_MS = 60_000;
const LISTEN_TAG = 'cassius-relay-listen';

let t: TestDatabase;
let emu: RunningEmulator;
let proxy: TcpProxy;
let s: Supervisor;
let org: string;

before(async () => {
  t = await createTestDatabase();
  emu = await startEmulator();
  const target = new URL(t.url);
  proxy = await startTcpProxy(target.hostname, Number(target.port || 5432));
  s = new Supervisor({ databaseUrl: proxy.url(t.url), emulatorUrl: emu.url, config: { RELAY_POLL_MS: POLL_MS, RELAY_LEASE_MS: 2_000 }, maxRestarts: 0 });
  await s.start(2);
  const email = `listen-${Date.now()}@gmail.test`;
  emu.control.addAccount({ email });
  org = await createOrganisation(t.db, 'Listener clinic');
  await connectGoogle(t.db, emu.url, { organisationId: org, email });
  await waitQuiet(t.db, { timeoutMs: 30_000 });
});
after(async () => {
  await s?.stop();
  await proxy?.close();
  await emu?.close();
  await t?.drop();
});

/** Creates an appointment and returns how long its event took to appear in Google. */
async function syncLatency(title: string, timeoutMs: number): Promise<number> {
  const at = Date.now();
  const id = await createAppointment(t.db, org, { title });
  await waitFor(async () => liveByAppointment(emu.control).get(id)?.length === 1, timeoutMs, `"${title}" to sync without the poll`);
  return Date.now() - at;
}

const listeners = () =>
  t.db.oneFirst(sql.unsafe`
    select count(*)::int from pg_stat_activity where application_name like ${`${LISTEN_TAG}%`} and datname = current_database()`);

describe('a dead listener is noticed and subscribed again', () => {
  test('pg_terminate_backend on every LISTEN connection: a later change still syncs within seconds', { timeout: TEST_TIMEOUT }, async () => {
    const before = await syncLatency('Before the kill', 5_000);
    assert.equal(await listeners(), 2);
    const killed = await t.db.oneFirst(sql.unsafe`
      select count(pg_terminate_backend(pid))::int from pg_stat_activity
      where application_name like ${`${LISTEN_TAG}%`} and datname = current_database()`);
    assert.equal(killed, 2, "both relays' listeners terminated");
    // Long enough for any wake-up still due from earlier work (a maintenance poke comes
    // within 500 ms) to pass: the next one can only come from the listener or the poll.
    await sleep(1_500);
    const afterKill = await syncLatency('After the kill', 15_000);
    await waitFor(async () => (await listeners()) === 2, 15_000, 'both relays to listen again');
    await sleep(1_500);
    const again = await syncLatency('Once more', 5_000);
    const report = await convergeAndCheck(t.db, emu.control, { supervisor: s, label: 'listener killed' });
    assert.equal(report.duplicates, 0);
    assert.deepEqual(s.unexpectedExits, []);
    figures('listener-terminated', { pollMs: POLL_MS, latencyBeforeMs: before, latencyAfterKillMs: afterKill, latencyAfterMs: again });
  });

  test('a half-open listener (proxy silently drops its traffic): the watchdog resubscribes, changes sync well before the poll', { timeout: TEST_TIMEOUT }, async () => {
    await syncLatency('Before the blackhole', 5_000);
    const blackholed = proxy.blackhole(LISTEN_TAG);
    assert.equal(blackholed, 2, "both relays' listeners blackholed");
    await sleep(1_500);
    const afterBlackhole = await syncLatency('After the blackhole', 30_000);
    assert.ok(afterBlackhole < POLL_MS / 2, `synced by the watchdog's resubscription, not the ${POLL_MS} ms poll`);
    await waitFor(async () => proxy.open(LISTEN_TAG) === 2, 20_000, 'both relays to subscribe again through a new connection');
    await sleep(1_500);
    const again = await syncLatency('Once more', 5_000);
    const report = await convergeAndCheck(t.db, emu.control, { supervisor: s, label: 'listener half-open' });
    assert.equal(report.duplicates, 0);
    assert.ok(s.logCount(/subscribing again/) >= 2, 'each relay logged its resubscription');
    figures('listener-half-open', { pollMs: POLL_MS, latencyAfterBlackholeMs: afterBlackhole, latencyAfterMs: again });
  });
});
