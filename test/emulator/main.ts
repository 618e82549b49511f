// `npm run emulator`: the emulator alone on EMULATOR_PORT (default 4010), CONTRACT §1 and §8.

import { startEmulator } from './index.js';

const portText = process.env['EMULATOR_PORT'] ?? '4010';
const port = Number(portText);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`EMULATOR_PORT must be a port number, got "${portText}"`);
  process.exit(1);
}

try {
  const emu = await startEmulator({ port });
  const cfg = emu.control.config();
  console.log(`Google emulator (OAuth 2.0 + Calendar v3) listening on ${emu.url}`);
  console.log(`  client id:     ${emu.control.clientId}`);
  console.log(`  client secret: ${emu.control.clientSecret}`);
  console.log(
    `  redirect URIs: ${cfg.redirectUris ? cfg.redirectUris.join(', ') : 'http://localhost|127.0.0.1[:port]/api/integrations/google/callback'}`,
  );
  console.log(`  access tokens live ${cfg.accessTokenTtlS} s; control surface: ${emu.url}/__emulator`);
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    console.log(`\n${signal}: stopping the emulator`);
    void emu.close().then(() => process.exit(0));
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
} catch (err) {
  console.error(`emulator failed to start: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
}
