// The emulator's powers for tests, in process (this class) and over HTTP (control-http.ts).
// None of this exists at Google; the product never calls it (CONTRACT §8).

import { ControlError } from './errors.js';
import { makeFault, pruneFaults, type Fault } from './faults.js';
import { createEvent, deleteEventAsUser, renderCalendarEvents } from './calendar.js';
import { ApiError } from './errors.js';
import { isPlainObject, renderEvent, type JsonObject } from './events.js';
import { isValidTimeZone } from './time.js';
import type { AccessRole, CallLogEntry, EmulatorConfig, EmulatorState } from './state.js';

export interface CalendarSpec {
  /** Omitted: a new secondary calendar `<random>@group.calendar.google.com`. Existing: shared with this account. */
  id?: string;
  summary: string;
  accessRole: AccessRole;
  timeZone?: string;
  description?: string;
}

export interface AccountSpec {
  email: string;
  name?: string;
  /** Zone of the primary calendar (and default for the others); default UTC. */
  timeZone?: string;
  calendars?: CalendarSpec[];
}

export interface AccountInfo {
  email: string;
  sub: string;
  name: string;
  timeZone: string;
  readOnlyUntil: string | null;
  calendars: { id: string; summary: string; accessRole: AccessRole; timeZone: string; primary: boolean }[];
}

export interface FaultSpec {
  method?: string;
  pathPrefix?: string;
  status?: number;
  reason?: string;
  count?: number;
  forMs?: number;
  latencyMs?: number;
  dropAfterCommit?: boolean;
  dropBeforeCommit?: boolean;
  retryAfterS?: number;
}

export interface FaultInfo {
  id: string;
  method?: string;
  pathPrefix?: string;
  status?: number;
  reason?: string;
  remaining: number | null;
  until: string | null;
  latencyMs: number;
  dropAfterCommit: boolean;
  dropBeforeCommit: boolean;
  hits: number;
}

export interface CallFilter {
  pathPrefix?: string;
  method?: string;
}

function faultInfo(f: Fault): FaultInfo {
  const info: FaultInfo = {
    id: f.id,
    remaining: f.remaining,
    until: f.until === null ? null : new Date(f.until).toISOString(),
    latencyMs: f.latencyMs,
    dropAfterCommit: f.dropAfterCommit,
    dropBeforeCommit: f.dropBeforeCommit,
    hits: f.hits,
  };
  if (f.method !== undefined) info.method = f.method;
  if (f.pathPrefix !== undefined) info.pathPrefix = f.pathPrefix;
  if (f.status !== undefined) info.status = f.status;
  if (f.reason !== undefined) info.reason = f.reason;
  return info;
}

function asControlError(err: unknown): unknown {
  if (err instanceof ApiError) {
    return new ControlError(err.status, `${err.item.reason}: ${err.item.message}`, err.item.location);
  }
  return err;
}

export class EmulatorControl {
  constructor(private readonly state: EmulatorState) {}

  get clientId(): string {
    return this.state.client.clientId;
  }
  get clientSecret(): string {
    return this.state.client.clientSecret;
  }

  // ---- accounts and calendars

  addAccount(spec: AccountSpec): AccountInfo {
    const email = spec.email.toLowerCase();
    if (this.state.accounts.has(email)) throw new ControlError(409, `account ${email} already exists`, 'email');
    if (this.state.calendars.has(email)) {
      throw new ControlError(409, `a calendar with id ${email} already exists; it would be this account's primary`, 'email');
    }
    if (spec.timeZone !== undefined && !isValidTimeZone(spec.timeZone)) {
      throw new ControlError(400, `time_zone: unknown IANA zone ${spec.timeZone}`, 'time_zone');
    }
    for (const [i, c] of (spec.calendars ?? []).entries()) {
      if (c.timeZone !== undefined && !isValidTimeZone(c.timeZone)) {
        throw new ControlError(400, `calendars.${i}.time_zone: unknown IANA zone ${c.timeZone}`, `calendars.${i}.time_zone`);
      }
    }
    // A calendar id that exists already (even another account's primary) is shared, not copied.
    const input: Parameters<EmulatorState['addAccount']>[0] = { email };
    if (spec.name !== undefined) input.name = spec.name;
    if (spec.timeZone !== undefined) input.timeZone = spec.timeZone;
    if (spec.calendars !== undefined) {
      input.calendars = spec.calendars.map((c) => {
        const out: { id?: string; summary: string; accessRole: AccessRole; timeZone?: string; description?: string } = {
          summary: c.summary,
          accessRole: c.accessRole,
        };
        if (c.id !== undefined) out.id = c.id;
        if (c.timeZone !== undefined) out.timeZone = c.timeZone;
        if (c.description !== undefined) out.description = c.description;
        return out;
      });
    }
    this.state.addAccount(input);
    return this.account(email);
  }

  account(email: string): AccountInfo {
    const a = this.state.getAccount(email);
    if (!a) throw new ControlError(404, `no account ${email}`, 'email');
    const calendars = (this.state.calendarOrder.get(a.email) ?? []).flatMap((id) => {
      const cal = this.state.calendars.get(id);
      const role = this.state.roleOf(id, a.email);
      return cal && role ? [{ id, summary: cal.summary, accessRole: role, timeZone: cal.timeZone, primary: id === a.email }] : [];
    });
    return {
      email: a.email,
      sub: a.sub,
      name: a.name,
      timeZone: a.timeZone,
      readOnlyUntil: a.readOnlyUntil > this.state.now() ? new Date(a.readOnlyUntil).toISOString() : null,
      calendars,
    };
  }

  accounts(): AccountInfo[] {
    return [...this.state.accounts.keys()].map((e) => this.account(e));
  }

  /** Gives an existing account a role on an existing calendar (shared calendars). */
  shareCalendar(calendarId: string, email: string, accessRole: AccessRole): void {
    const a = this.state.getAccount(email);
    if (!a) throw new ControlError(404, `no account ${email}`, 'email');
    if (!this.state.calendars.has(calendarId)) throw new ControlError(404, `no calendar ${calendarId}`, 'calendarId');
    this.state.share(calendarId, a.email, accessRole);
  }

  /** Every event of a calendar, deleted ones included, as Google Event resources. */
  events(calendarId: string): JsonObject[] {
    const out = renderCalendarEvents(this.state, calendarId);
    if (!out) throw new ControlError(404, `no calendar ${calendarId}`, 'calendarId');
    return out;
  }

  /**
   * Creates an event as if made in Google Calendar by the calendar's owner (or `creator`), e.g.
   * an event the product did not create. Same validation as events.insert; returns the Event.
   */
  seedEvent(calendarId: string, event: object, creator?: string): JsonObject {
    const cal = this.state.calendars.get(calendarId);
    if (!cal) throw new ControlError(404, `no calendar ${calendarId}`, 'calendarId');
    const body: unknown = JSON.parse(JSON.stringify(event));
    if (!isPlainObject(body)) throw new ControlError(400, 'the event must be a JSON object', 'event');
    const owner = creator ?? [...(this.state.acl.get(calendarId) ?? [])].find(([, r]) => r === 'owner')?.[0] ?? calendarId;
    try {
      return renderEvent(createEvent(this.state, cal, body, owner), cal);
    } catch (err) {
      throw asControlError(err);
    }
  }

  /**
   * Deletes an event as a person would in Google Calendar's UI: a tombstone like an API delete,
   * but later update/patch of it answer 403 Forbidden (§4, ruby-client#1811).
   */
  deleteEventAsUser(calendarId: string, eventId: string): JsonObject {
    const cal = this.state.calendars.get(calendarId);
    if (!cal) throw new ControlError(404, `no calendar ${calendarId}`, 'calendarId');
    try {
      return renderEvent(deleteEventAsUser(this.state, cal, eventId), cal);
    } catch (err) {
      throw asControlError(err);
    }
  }

  // ---- calls and faults

  calls(filter: CallFilter = {}): CallLogEntry[] {
    return this.state.calls.filter(
      (c) =>
        (filter.pathPrefix === undefined || c.path.startsWith(filter.pathPrefix)) &&
        (filter.method === undefined || c.method === filter.method.toUpperCase()),
    );
  }

  clearCalls(): void {
    this.state.calls = [];
  }

  addFault(spec: FaultSpec): FaultInfo {
    if (spec.status === undefined && spec.reason === undefined && !spec.latencyMs && !spec.dropAfterCommit && !spec.dropBeforeCommit) {
      throw new ControlError(400, 'a fault needs status, reason, latency_ms, drop_after_commit or drop_before_commit', 'status');
    }
    const input: Parameters<typeof makeFault>[0] = {};
    if (spec.method !== undefined) input.method = spec.method;
    if (spec.pathPrefix !== undefined) input.path_prefix = spec.pathPrefix;
    if (spec.status !== undefined) input.status = spec.status;
    if (spec.reason !== undefined) input.reason = spec.reason;
    if (spec.count !== undefined) input.count = spec.count;
    if (spec.forMs !== undefined) input.for_ms = spec.forMs;
    if (spec.latencyMs !== undefined) input.latency_ms = spec.latencyMs;
    if (spec.dropAfterCommit !== undefined) input.drop_after_commit = spec.dropAfterCommit;
    if (spec.dropBeforeCommit !== undefined) input.drop_before_commit = spec.dropBeforeCommit;
    if (spec.retryAfterS !== undefined) input.retry_after_s = spec.retryAfterS;
    const fault = makeFault(input, this.state.now());
    this.state.faults.push(fault);
    return faultInfo(fault);
  }

  faults(): FaultInfo[] {
    this.state.faults = pruneFaults(this.state.faults, this.state.now());
    return this.state.faults.map(faultInfo);
  }

  removeFault(id: string): boolean {
    const before = this.state.faults.length;
    this.state.faults = this.state.faults.filter((f) => f.id !== id);
    return this.state.faults.length < before;
  }

  clearFaults(): void {
    this.state.faults = [];
  }

  // ---- tokens and limits

  /** Revokes every token of the account: the next refresh answers invalid_grant (CONTRACT §8). */
  revoke(email: string): void {
    const a = this.state.getAccount(email);
    if (!a) throw new ControlError(404, `no account ${email}`, 'email');
    this.state.revokeAccount(a.email);
  }

  /** Makes the account's live access tokens expire now (refresh tokens keep working). */
  expireAccessTokens(email?: string): number {
    let n = 0;
    const now = this.state.now();
    for (const t of this.state.accessTokens.values()) {
      if ((email === undefined || t.account === email.toLowerCase()) && t.expiresAt > now) {
        t.expiresAt = now;
        n++;
      }
    }
    return n;
  }

  /** §6 usage limits: writes of this account answer 403 quotaExceeded for `forMs` (0 lifts it). */
  setUsageLimit(email: string, forMs: number): AccountInfo {
    const a = this.state.getAccount(email);
    if (!a) throw new ControlError(404, `no account ${email}`, 'email');
    a.readOnlyUntil = forMs > 0 ? this.state.now() + forMs : 0;
    return this.account(a.email);
  }

  /** Every sync token issued so far for the calendar (or all) answers 410 fullSyncRequired. */
  expireSyncTokens(calendarId?: string): void {
    if (calendarId !== undefined) {
      const cal = this.state.calendars.get(calendarId);
      if (!cal) throw new ControlError(404, `no calendar ${calendarId}`, 'calendar_id');
      cal.syncEpoch++;
      return;
    }
    for (const cal of this.state.calendars.values()) cal.syncEpoch++;
  }

  // ---- clock and config

  now(): Date {
    return new Date(this.state.now());
  }

  /** Moves the emulator's clock (token expiry, refresh-token death, rate windows, usage limits). */
  advanceClock(ms: number): Date {
    this.state.clock.advance(ms);
    return this.now();
  }

  setClock(at: Date): Date {
    this.state.clock.set(at.getTime());
    return this.now();
  }

  config(): EmulatorConfig {
    return { ...this.state.config, redirectUris: this.state.config.redirectUris ? [...this.state.config.redirectUris] : null };
  }

  setConfig(patch: Partial<EmulatorConfig>): EmulatorConfig {
    this.state.config = { ...this.state.config, ...patch };
    return this.config();
  }

  /** Forgets every account, event, token, call and fault; config and clock return to start values. */
  reset(): void {
    this.state.reset();
  }
}
