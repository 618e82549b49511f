// Time: an advanceable clock (so refresh-token death after 6 months / 7 days, access-token
// expiry and rate-limit windows can be tested, google-api.md §1.3, §6) and RFC 3339 handling
// with tz-database offsets from Intl (§7).

export class Clock {
  private offsetMs = 0;
  now(): number {
    return Date.now() + this.offsetMs;
  }
  advance(ms: number): void {
    this.offsetMs += ms;
  }
  set(epochMs: number): void {
    this.offsetMs = epochMs - Date.now();
  }
  reset(): void {
    this.offsetMs = 0;
  }
  get offset(): number {
    return this.offsetMs;
  }
}

// Building an Intl.DateTimeFormat to test a zone was a fifth of the emulator's CPU per insert
// (the bench's Google shares the machine with what it measures): answers are remembered.
const knownZones = new Map<string, boolean>();
export function isValidTimeZone(tz: string): boolean {
  if (tz === '') return false;
  let valid = knownZones.get(tz);
  if (valid === undefined) {
    try {
      new Intl.DateTimeFormat('en-US', { timeZone: tz });
      valid = true;
    } catch {
      valid = false;
    }
    if (knownZones.size < 10_000) knownZones.set(tz, valid);
  }
  return valid;
}

const formatters = new Map<string, Intl.DateTimeFormat>();
function formatterFor(tz: string): Intl.DateTimeFormat {
  let f = formatters.get(tz);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone: tz,
      hourCycle: 'h23',
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
      second: '2-digit',
    });
    formatters.set(tz, f);
  }
  return f;
}

interface Wall {
  year: number;
  month: number;
  day: number;
  hour: number;
  minute: number;
  second: number;
}

function wallInZone(instantMs: number, tz: string): Wall {
  const parts = formatterFor(tz).formatToParts(new Date(instantMs));
  const get = (type: string): number => Number(parts.find((p) => p.type === type)?.value ?? '0');
  return {
    year: get('year'),
    month: get('month'),
    day: get('day'),
    hour: get('hour') % 24,
    minute: get('minute'),
    second: get('second'),
  };
}

function wallAsUtc(w: Wall): number {
  return Date.UTC(w.year, w.month - 1, w.day, w.hour, w.minute, w.second);
}

/** Offset of `tz` at `instantMs`, in minutes east of UTC. */
export function offsetMinutes(instantMs: number, tz: string): number {
  const whole = Math.floor(instantMs / 1000) * 1000;
  return Math.round((wallAsUtc(wallInZone(whole, tz)) - whole) / 60000);
}

/**
 * The instant a wall-clock time in `tz` denotes. Like Temporal's "compatible" disambiguation:
 * the earlier instant on overlaps, and in gaps the wall time read with the offset before the
 * transition (02:30 in a 02:00->03:00 gap becomes 03:30).
 */
export function wallToInstant(w: Wall, ms: number, tz: string): number {
  const asUtc = wallAsUtc(w) + ms;
  const before = offsetMinutes(asUtc - 86_400_000, tz);
  const after = offsetMinutes(asUtc + 86_400_000, tz);
  const candidates = [...new Set([asUtc - before * 60000, asUtc - after * 60000])]
    .filter((c) => c + offsetMinutes(c, tz) * 60000 === asUtc)
    .sort((a, b) => a - b);
  return candidates[0] ?? asUtc - before * 60000;
}

const pad = (n: number, width = 2): string => String(Math.abs(n)).padStart(width, '0');

function formatOffset(minutes: number): string {
  if (minutes === 0) return 'Z';
  const sign = minutes < 0 ? '-' : '+';
  const abs = Math.abs(minutes);
  return `${sign}${pad(Math.floor(abs / 60))}:${pad(abs % 60)}`;
}

/** RFC 3339 in `tz` with its tz-database offset, seconds precision, `Z` for zero (§7). */
export function formatInZone(instantMs: number, tz: string): string {
  const w = wallInZone(instantMs, tz);
  const off = offsetMinutes(instantMs, tz);
  return `${pad(w.year, 4)}-${pad(w.month)}-${pad(w.day)}T${pad(w.hour)}:${pad(w.minute)}:${pad(w.second)}${formatOffset(off)}`;
}

/** Google's server timestamps (`created`, `updated`): UTC with milliseconds. */
export function formatUtcMillis(instantMs: number): string {
  return new Date(instantMs).toISOString();
}

const RFC3339 =
  /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})?$/;

export interface ParsedDateTime {
  wall: Wall;
  fractionMs: number;
  /** Minutes east of UTC, or null when the string carries no offset. */
  offset: number | null;
}

export function parseDateTime(s: string): ParsedDateTime | null {
  const m = RFC3339.exec(s);
  if (!m) return null;
  const wall: Wall = {
    year: Number(m[1]),
    month: Number(m[2]),
    day: Number(m[3]),
    hour: Number(m[4]),
    minute: Number(m[5]),
    second: Number(m[6]),
  };
  if (!isRealDate(wall.year, wall.month, wall.day)) return null;
  if (wall.hour > 23 || wall.minute > 59 || wall.second > 60) return null;
  const fractionMs = m[7] ? Math.floor(Number(`0${m[7]}`) * 1000) : 0;
  let offset: number | null = null;
  const off = m[8];
  if (off !== undefined) {
    if (off === 'Z' || off === 'z') offset = 0;
    else {
      const sign = off.startsWith('-') ? -1 : 1;
      const hh = Number(off.slice(1, 3));
      const mm = Number(off.slice(4, 6));
      if (hh > 23 || mm > 59) return null;
      offset = sign * (hh * 60 + mm);
    }
  }
  return { wall, fractionMs, offset };
}

/** Instant of an RFC 3339 string; with no offset, `tz` supplies it (§7); null if impossible. */
export function dateTimeToInstant(s: string, tz?: string): number | null {
  const p = parseDateTime(s);
  if (!p) return null;
  if (p.offset !== null) return wallAsUtc(p.wall) + p.fractionMs - p.offset * 60000;
  if (tz === undefined) return null;
  return wallToInstant(p.wall, p.fractionMs, tz);
}

function isRealDate(y: number, m: number, d: number): boolean {
  if (m < 1 || m > 12 || d < 1) return false;
  const dim = new Date(Date.UTC(y, m, 0)).getUTCDate();
  return d <= dim;
}

/** `yyyy-mm-dd` and a real calendar date. */
export function isValidDate(s: string): boolean {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(s);
  return m !== null && isRealDate(Number(m[1]), Number(m[2]), Number(m[3]));
}

/** Midnight of an all-day `date` in `tz` (all-day events are bounded in the calendar's zone). */
export function dateStartInstant(date: string, tz: string): number {
  const [y, m, d] = date.split('-').map(Number) as [number, number, number];
  return wallToInstant({ year: y, month: m, day: d, hour: 0, minute: 0, second: 0 }, 0, tz);
}
