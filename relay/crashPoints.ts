// Chaos hooks for the crash tests (test/relay/chaos*.test.ts): kill this relay with SIGKILL at
// a named boundary, so a test can prove that no boundary loses or duplicates an event.
// Off unless RELAY_CRASH_AT is set; never set it in production.
//   RELAY_CRASH_AT      comma-separated points: after_claim, after_load, after_google, before_commit
//   RELAY_CRASH_RATE    probability per pass through a point (default 1)
//   RELAY_CRASH_TITLE   only for appointments whose title contains this text (a poison row)
const points = new Set((process.env.RELAY_CRASH_AT ?? '').split(',').map((p) => p.trim()).filter(Boolean));
const rate = Number(process.env.RELAY_CRASH_RATE ?? '1');
const title = process.env.RELAY_CRASH_TITLE;

export type CrashPoint = 'after_claim' | 'after_load' | 'after_google' | 'before_commit';

export function crashPoint(point: CrashPoint, appointmentTitle?: string | null): void {
  if (points.size === 0 || !points.has(point)) return;
  if (title && !(appointmentTitle ?? '').includes(title)) return;
  if (Math.random() >= rate) return;
  process.kill(process.pid, 'SIGKILL');
}
