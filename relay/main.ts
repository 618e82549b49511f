// `npm run relay`: one relay daemon. SIGTERM / SIGINT drain in-flight calls (<= 10 s) and exit 0.
import { loadRelayConfig, orExit } from '../src/shared/config';
import { startRelay } from './relay';

const config = orExit(() => loadRelayConfig());
const relay = await startRelay(config);
let stopping = false;
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.on(signal, async () => {
    if (stopping) return;
    stopping = true;
    await relay.stop(10_000);
    process.exit(0);
  });
}
