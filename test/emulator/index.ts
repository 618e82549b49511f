// In-process entry point: start an emulator of Google's OAuth 2.0 + Calendar v3 on 127.0.0.1.
// Tests call startEmulator() (port 0); `npm run emulator` goes through main.ts.

import type { AddressInfo } from 'node:net';
import { createEmulatorServer } from './http.js';
import { EmulatorControl } from './control.js';
import { DEFAULT_CONFIG, EmulatorState, type EmulatorConfig } from './state.js';

export { EmulatorControl } from './control.js';
export type { AccountSpec, AccountInfo, CalendarSpec, FaultSpec, FaultInfo, CallFilter } from './control.js';
export type { EmulatorConfig, CallLogEntry, AccessRole } from './state.js';
export { SCOPE } from './scopes.js';

export const DEFAULT_CLIENT_ID = 'cassius-demo.apps.googleusercontent.com';
export const DEFAULT_CLIENT_SECRET = 'cassius-demo-secret';

export interface EmulatorOptions {
  /** Default 0 (any free port). main.ts passes EMULATOR_PORT (default 4010). */
  port?: number;
  /** Default EMULATOR_HOST or 127.0.0.1. */
  host?: string;
  /** Default EMULATOR_CLIENT_ID or cassius-demo.apps.googleusercontent.com. */
  clientId?: string;
  /** Default EMULATOR_CLIENT_SECRET or cassius-demo-secret. */
  clientSecret?: string;
  /** Default EMULATOR_REDIRECT_URIS (comma-separated) or any http://localhost|127.0.0.1[:port]/api/integrations/google/callback. */
  redirectUris?: string[];
  /** Default EMULATOR_ACCESS_TOKEN_TTL_S or 3600. */
  accessTokenTtlS?: number;
  /** Any other start-up configuration; reset() returns to these values. */
  config?: Partial<EmulatorConfig>;
}

export interface RunningEmulator {
  /** Base URL, no trailing slash, e.g. http://127.0.0.1:4010. */
  url: string;
  port: number;
  control: EmulatorControl;
  close(): Promise<void>;
}

function envInt(name: string): number | undefined {
  const v = process.env[name];
  if (v === undefined || v === '') return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be a positive integer, got "${v}"`);
  return n;
}

function envList(name: string): string[] | undefined {
  const v = process.env[name];
  if (v === undefined || v.trim() === '') return undefined;
  return v
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
}

export async function startEmulator(opts: EmulatorOptions = {}): Promise<RunningEmulator> {
  const config: EmulatorConfig = {
    ...DEFAULT_CONFIG,
    ...opts.config,
    accessTokenTtlS:
      opts.accessTokenTtlS ?? opts.config?.accessTokenTtlS ?? envInt('EMULATOR_ACCESS_TOKEN_TTL_S') ?? DEFAULT_CONFIG.accessTokenTtlS,
    redirectUris: opts.redirectUris ?? opts.config?.redirectUris ?? envList('EMULATOR_REDIRECT_URIS') ?? null,
  };
  const state = new EmulatorState(
    {
      clientId: opts.clientId ?? (process.env['EMULATOR_CLIENT_ID'] || DEFAULT_CLIENT_ID),
      clientSecret: opts.clientSecret ?? (process.env['EMULATOR_CLIENT_SECRET'] || DEFAULT_CLIENT_SECRET),
    },
    config,
  );
  const server = createEmulatorServer(state);
  const host = opts.host ?? (process.env['EMULATOR_HOST'] || '127.0.0.1');
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const urlHost = host.includes(':') ? `[${host}]` : host;
  let closed: Promise<void> | undefined;
  return {
    url: `http://${urlHost}:${port}`,
    port,
    control: new EmulatorControl(state),
    close() {
      closed ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closed;
    },
  };
}
