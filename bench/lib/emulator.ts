// The Google emulator, in the bench process, with a receive hook: the moment each Calendar
// request arrives is taken on the same clock as the bench's COMMIT acknowledgements, so
// commit-to-call latency needs no cross-process clock. Built from the emulator's own parts
// (as test/emulator/index.ts does) only to reach its node:http server for the hook.
import type { AddressInfo } from 'node:net';
import type { IncomingMessage } from 'node:http';
import { createEmulatorServer } from '../../test/emulator/http';
import { DEFAULT_CONFIG, EmulatorState } from '../../test/emulator/state';
import { DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, EmulatorControl } from '../../test/emulator/index';
import { nowMs } from './util';

const APPOINTMENT_ID = /"cassiusAppointmentId":"([0-9a-f-]{36})"/;
const ORGANISATION_ID = /"cassiusOrganisationId":"([0-9a-f-]{36})"/;

export type BenchEmulator = {
  url: string;
  control: EmulatorControl;
  /** Calendar API requests received so far (every method). */
  readonly calendarCalls: number;
  /** First receive time of a write naming each appointment (insert or patch body). */
  received: Map<string, number>;
  /** How many of `received` belong to an organisation (a scenario counts its own while others warm up). */
  receivedFor(organisationId: string): number;
  /** Resolves with the receive time of the first write naming `appointmentId`. */
  waitForAppointment(appointmentId: string, timeoutMs: number): Promise<number>;
  /** Forgets receive times (memory; a scenario keeps what it needs). */
  clearReceived(): void;
  /** Drops a calendar's stored events (memory: a full run creates ~500,000 events). */
  forgetEvents(calendarId: string): void;
  close(): Promise<void>;
};

export async function startBenchEmulator(): Promise<BenchEmulator> {
  const state = new EmulatorState(
    { clientId: DEFAULT_CLIENT_ID, clientSecret: DEFAULT_CLIENT_SECRET },
    // Google's quotas must never bind in a benchmark (each figure says so where it matters).
    { ...DEFAULT_CONFIG, userRateLimitPerMinute: 1e9, projectRateLimitPerMinute: 1e9, accessTokenTtlS: 6 * 3600 },
  );
  const server = createEmulatorServer(state);
  server.keepAliveTimeout = 60_000;
  const received = new Map<string, number>();
  const receivedByOrganisation = new Map<string, number>();
  const waiters = new Map<string, (at: number) => void>();
  let calendarCalls = 0;

  server.prependListener('request', (req: IncomingMessage) => {
    const at = nowMs();
    if (!req.url?.startsWith('/calendar/v3/')) return;
    calendarCalls += 1;
    if (req.method !== 'POST' && req.method !== 'PATCH' && req.method !== 'PUT') return;
    let body = '';
    req.on('data', (chunk: Buffer) => {
      if (body.length < 16_384) body += chunk.toString('utf8');
    });
    req.on('end', () => {
      const id = APPOINTMENT_ID.exec(body)?.[1];
      if (!id || received.has(id)) return;
      received.set(id, at);
      const organisationId = ORGANISATION_ID.exec(body)?.[1];
      if (organisationId) receivedByOrganisation.set(organisationId, (receivedByOrganisation.get(organisationId) ?? 0) + 1);
      const waiter = waiters.get(id);
      if (waiter) {
        waiters.delete(id);
        waiter(at);
      }
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const control = new EmulatorControl(state);
  control.setConfig({ userRateLimitPerMinute: 1e9, projectRateLimitPerMinute: 1e9 });
  return {
    url: `http://127.0.0.1:${port}`,
    control,
    get calendarCalls() {
      return calendarCalls;
    },
    received,
    receivedFor: (organisationId) => receivedByOrganisation.get(organisationId) ?? 0,
    waitForAppointment(appointmentId, timeoutMs) {
      const known = received.get(appointmentId);
      if (known !== undefined) return Promise.resolve(known);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.delete(appointmentId);
          reject(new Error(`no Google call for appointment ${appointmentId} within ${timeoutMs} ms`));
        }, timeoutMs);
        waiters.set(appointmentId, (at) => {
          clearTimeout(timer);
          resolve(at);
        });
      });
    },
    clearReceived() {
      received.clear();
      receivedByOrganisation.clear();
    },
    forgetEvents(calendarId) {
      state.calendars.get(calendarId)?.events.clear();
    },
    close() {
      return new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}
