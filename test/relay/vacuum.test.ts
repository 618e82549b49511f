// The relay vacuums the outbox itself once dead rows pile up (relay/vacuum.ts): autovacuum
// visits a database at most once a minute, and a queue makes dead rows as fast as it works.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { z } from 'zod';
import { sql } from '../../src/shared/db';
import { startRelay, type Relay } from '../../relay/relay';
import { startEmulator, type RunningEmulator } from '../emulator/index';
import { createTestDatabase, type TestDatabase } from '../helpers/db';
import { createOrganisation } from '../helpers/fixtures';
import { connectGoogle, drained, relayConfig, waitFor } from '../helpers/google';

let t: TestDatabase;
let emu: RunningEmulator;
let relay: Relay | null = null;
before(async () => {
  t = await createTestDatabase();
  emu = await startEmulator();
  // Google's per-account quota (600/min) would stretch 3,000 calls over five minutes.
  emu.control.setConfig({ userRateLimitPerMinute: 1_000_000, projectRateLimitPerMinute: 1_000_000 });
});
after(async () => {
  await relay?.stop();
  await emu.close();
  await t.drop();
});

test('after 3,000 changes relayed, the relay has vacuumed sync_outbox itself', async () => {
  emu.control.addAccount({ email: 'vacuum@gmail.test' });
  const org = await createOrganisation(t.db);
  await connectGoogle(t.db, emu.url, { organisationId: org, email: 'vacuum@gmail.test' });
  await t.db.query(sql.unsafe`truncate sync_backlog`);
  const Vacuums = z.object({ manual: z.number() });
  const vacuums = () => t.db.oneFirst(sql.type(Vacuums)`select vacuum_count::int as manual from pg_stat_user_tables where relname = 'sync_outbox'`);
  assert.equal(await vacuums(), 0);
  relay = await startRelay(relayConfig(t.url, emu.url, { RELAY_CONCURRENCY: 16 }));
  await t.db.query(sql.unsafe`
    insert into appointments (organisation_id, title, starts_at, ends_at)
    select ${org}, 'Bulk ' || g, now() + g * interval '1 hour', now() + g * interval '1 hour' + interval '30 minutes'
    from generate_series(1, 3000) g`);
  await drained(t.db, 120_000);
  // vacuum_count counts VACUUM commands (autovacuum has its own counter).
  await waitFor(async () => (await vacuums()) > 0, 15_000, 'a VACUUM of sync_outbox by the relay');
});
