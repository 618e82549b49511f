// The token store shared by the server and every relay: encrypted at rest, bound to its
// integration, rotatable, and refreshed once when several relays need a fresh token at once.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { z } from 'zod';
import { createKeyring } from '../../src/shared/crypto';
import { sql } from '../../src/shared/db';
import { createTokenStore, ReconnectRequired } from '../../src/integrations/google/tokenStore';
import { startEmulator, type RunningEmulator } from '../emulator/index';
import { createTestDatabase, type TestDatabase } from '../helpers/db';
import { createOrganisation } from '../helpers/fixtures';
import { authorize, connectGoogle, googleConfig, TEST_TOKEN_KEY, testKeyring } from '../helpers/google';

let t: TestDatabase;
let emu: RunningEmulator;
before(async () => {
  t = await createTestDatabase();
  emu = await startEmulator();
});
after(async () => {
  await emu.close();
  await t.drop();
});

async function connected(email: string) {
  emu.control.addAccount({ email });
  const organisationId = await createOrganisation(t.db);
  const id = await connectGoogle(t.db, emu.url, { organisationId, email });
  return { id, organisationId };
}

const Ciphertexts = z.object({ refresh: z.instanceof(Buffer), access: z.instanceof(Buffer).nullable(), key_id: z.string() });
const ciphertexts = (id: string) =>
  t.db.one(sql.type(Ciphertexts)`
    select refresh_token_ciphertext as refresh, access_token_ciphertext as access, key_id from calendar_credentials where integration_id = ${id}`);

test('tokens are stored encrypted and bound to their integration', async () => {
  const a = await connected('enc-a@gmail.test');
  const b = await connected('enc-b@gmail.test');
  const store = createTokenStore(t.db, testKeyring(), googleConfig(emu.url));
  const token = await store.accessToken(a);
  const rows = await ciphertexts(a.id);
  assert.ok(!rows.refresh.toString('latin1').includes(token.slice(0, 12)));
  assert.ok(!rows.access!.toString('latin1').includes(token.slice(0, 12)));
  assert.equal(rows.key_id, testKeyring().currentKeyId);
  // A ciphertext copied onto another integration's row does not decrypt there.
  await t.db.query(sql.unsafe`
    update calendar_credentials set access_token_ciphertext = ${sql.binary(rows.access!)}
    where integration_id = ${b.id}`);
  await assert.rejects(store.accessToken(b), /unable to authenticate|Unsupported state/);
});

test('after a key rotation the old key still decrypts; new writes use the new key', async () => {
  const a = await connected('rotate@gmail.test');
  const newKey = Buffer.alloc(32, 9).toString('base64');
  const rotated = createKeyring(newKey, [TEST_TOKEN_KEY]);
  const store = createTokenStore(t.db, rotated, googleConfig(emu.url));
  assert.ok(await store.accessToken(a), 'reads a row written under the old key');
  const { tokens } = await authorize(emu.url, 'rotate@gmail.test');
  await store.save({ ...a, accessToken: tokens.access_token!, refreshToken: tokens.refresh_token, expiresAt: null, scopes: [] });
  assert.equal((await ciphertexts(a.id)).key_id, rotated.currentKeyId);
  await assert.rejects(createTokenStore(t.db, testKeyring(), googleConfig(emu.url)).accessToken(a), /no key for token ciphertext/);
});

test('several relays needing a fresh token at once cause one refresh at Google', async () => {
  const a = await connected('refresh@gmail.test');
  await t.db.query(sql.unsafe`update calendar_credentials set access_token_expires_at = now() - interval '1 minute' where integration_id = ${a.id}`);
  emu.control.clearCalls();
  // Four stores: four relays, each with its own in-process de-duplication.
  const stores = [1, 2, 3, 4].map(() => createTokenStore(t.db, testKeyring(), googleConfig(emu.url)));
  const tokens = await Promise.all(stores.map((s) => s.accessToken(a)));
  assert.equal(new Set(tokens).size, 1, 'everyone got the same fresh token');
  assert.equal(emu.control.calls().filter((c) => c.path === '/token').length, 1, 'one refresh request');
  // A 401 on that token forces exactly one more refresh, again shared.
  emu.control.clearCalls();
  const again = await Promise.all(stores.map((s) => s.accessToken(a, tokens[0]!)));
  assert.equal(new Set(again).size, 1);
  assert.notEqual(again[0], tokens[0]);
  assert.equal(emu.control.calls().filter((c) => c.path === '/token').length, 1);
});

test('a revoked grant surfaces as ReconnectRequired, not as a retryable error', async () => {
  const a = await connected('revoked-store@gmail.test');
  await t.db.query(sql.unsafe`update calendar_credentials set access_token_expires_at = now() - interval '1 minute' where integration_id = ${a.id}`);
  emu.control.revoke('revoked-store@gmail.test');
  const store = createTokenStore(t.db, testKeyring(), googleConfig(emu.url));
  await assert.rejects(store.accessToken(a), (error: Error) => {
    assert.ok(error instanceof ReconnectRequired);
    assert.match(error.message, /invalid_grant/);
    return true;
  });
});
