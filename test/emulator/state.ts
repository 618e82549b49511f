// Everything the emulator remembers: configuration, accounts, calendars and their events,
// OAuth codes / grants / tokens, the call log and the fault list.

import { createHash, randomBytes, randomInt } from 'node:crypto';
import { Clock } from './time.js';
import type { Fault } from './faults.js';
import { RateLimiter } from './ratelimit.js';
import { SigningKey } from './jwt.js';

export type AccessRole = 'freeBusyReader' | 'reader' | 'writerWithoutPrivateAccess' | 'writer' | 'owner';
export const ACCESS_ROLES: readonly AccessRole[] = [
  'freeBusyReader',
  'reader',
  'writerWithoutPrivateAccess',
  'writer',
  'owner',
];

/** Rank used for minAccessRole; writerWithoutPrivateAccess counts as writer (§3.1 UNCONFIRMED, include it). */
export function roleRank(role: AccessRole): number {
  switch (role) {
    case 'freeBusyReader':
      return 0;
    case 'reader':
      return 1;
    case 'writerWithoutPrivateAccess':
    case 'writer':
      return 2;
    case 'owner':
      return 3;
  }
}

export function isWritableRole(role: AccessRole): boolean {
  return roleRank(role) >= 2;
}

export interface EmulatorConfig {
  /** Lifetime of access tokens (CONTRACT §8, EMULATOR_ACCESS_TOKEN_TTL_S). */
  accessTokenTtlS: number;
  /** Lifetime of authorization codes. */
  authCodeTtlS: number;
  /** §6: 600 requests/min per user, sliding window. */
  userRateLimitPerMinute: number;
  /** §6: 10,000 requests/min per project, sliding window. */
  projectRateLimitPerMinute: number;
  /** §5: rateLimitExceeded "can return either 403 or 429". */
  rateLimitStatus: 403 | 429;
  /** §5 Retry-After is UNCONFIRMED: off (null) by default; seconds when set. */
  retryAfterS: number | null;
  /** §3.4: a patch costs 3 quota units. */
  patchQuotaCost: number;
  /** §4: update/patch of a tombstone succeeds ('allow') or answers 403 Forbidden ('forbidden'). */
  tombstoneWrites: 'allow' | 'forbidden';
  /** §2.3 UNCONFIRMED: unticking every non-sign-in scope yields a code with sign-in scopes only, or access_denied. */
  emptyConsentOutcome: 'code' | 'access_denied';
  /** §1.3: External + "Testing" apps get refresh tokens that die after 7 days. */
  publishingStatus: 'production' | 'testing';
  /** §1.3: a refresh token unused this long dies (6 months). */
  refreshTokenIdleDays: number;
  /** §1.3: Testing-mode refresh token lifetime (7 days). */
  testingRefreshTokenDays: number;
  /** §1.3: live refresh tokens per account per client; the oldest is silently invalidated. */
  refreshTokenCap: number;
  /** §3.2: every events.list with a syncToken answers 410 fullSyncRequired. */
  syncTokensExpired: boolean;
  /** §3.2: "pages may be short or even empty": force an empty page before every non-first page. */
  shortPages: boolean;
  /** Allowed redirect URIs; null = any http://localhost|127.0.0.1[:port]/api/integrations/google/callback. */
  redirectUris: string[] | null;
  /** Calls kept in the call log; the oldest are dropped beyond it (memory bound for long runs). */
  callLogLimit: number;
}

export const DEFAULT_CONFIG: EmulatorConfig = {
  accessTokenTtlS: 3600,
  authCodeTtlS: 600,
  userRateLimitPerMinute: 600,
  projectRateLimitPerMinute: 10_000,
  rateLimitStatus: 403,
  retryAfterS: null,
  patchQuotaCost: 3,
  tombstoneWrites: 'allow',
  emptyConsentOutcome: 'code',
  publishingStatus: 'production',
  refreshTokenIdleDays: 183,
  testingRefreshTokenDays: 7,
  refreshTokenCap: 100,
  syncTokensExpired: false,
  shortPages: false,
  redirectUris: null,
  callLogLimit: 100_000,
};

export interface Account {
  email: string;
  /** Stable numeric subject, as in Google id_tokens (§1.5: key on sub). */
  sub: string;
  name: string;
  timeZone: string;
  /** §6 usage limits: writes answer 403 quotaExceeded until this instant (emulator clock). */
  readOnlyUntil: number;
}

export type StoredTime =
  | { kind: 'dateTime'; instant: number; timeZone?: string }
  | { kind: 'date'; date: string; timeZone?: string };

export type EventStatus = 'confirmed' | 'tentative' | 'cancelled';

export interface StoredEvent {
  id: string;
  status: EventStatus;
  /** Client-writable fields other than id/status/start/end, already validated and limited. */
  fields: Record<string, unknown>;
  start: StoredTime;
  end: StoredTime;
  created: number;
  updated: number;
  etag: string;
  sequence: number;
  iCalUID: string;
  creatorEmail: string;
  /** Position in the calendar's change feed (syncToken / updatedMin). */
  changeSeq: number;
  /** A move leaves a tombstone where "only the id field is guaranteed" (§4). */
  movedAway: boolean;
  /** Deleted by a person in Google's UI (control surface): update/patch then answer 403 (§4). */
  deletedInUi: boolean;
  /** Recorded for the call log / tests: sendUpdates of the last write. */
  lastSendUpdates?: string;
}

export interface Calendar {
  id: string;
  summary: string;
  description?: string;
  timeZone: string;
  /** Insertion-ordered; ids are unique per calendar, tombstones stay forever (§4). */
  events: Map<string, StoredEvent>;
  changeSeq: number;
  /** Bumped to expire every sync token issued before. */
  syncEpoch: number;
  created: number;
}

export interface AuthCode {
  code: string;
  clientId: string;
  account: string;
  redirectUri: string;
  scopes: string[];
  codeChallenge?: string;
  codeChallengeMethod?: 'S256' | 'plain';
  issuedAt: number;
  used: boolean;
  issueRefreshToken: boolean;
  nonce?: string;
}

export interface RefreshTokenRecord {
  token: string;
  clientId: string;
  account: string;
  scopes: string[];
  issuedAt: number;
  lastUsedAt: number;
  /** Why it died; any death surfaces as invalid_grant (§1.3). */
  dead?: 'revoked' | 'evicted';
}

export interface AccessTokenRecord {
  token: string;
  clientId: string;
  account: string;
  scopes: string[];
  issuedAt: number;
  expiresAt: number;
  refreshToken?: string;
  revoked: boolean;
}

/** What an account has granted a client so far (drives "refresh token only on first consent"). */
export interface Grant {
  clientId: string;
  account: string;
  scopes: Set<string>;
}

export interface CallLogEntry {
  method: string;
  /** As received, percent-encoded, without the query string. */
  path: string;
  status: number;
  at: string;
  query: Record<string, string | string[]>;
  ms?: number;
  account?: string;
  body?: unknown;
  sendUpdates?: string;
  fault?: string;
  dropped?: boolean;
}

export interface PendingConsent {
  id: string;
  createdAt: number;
  clientId: string;
  redirectUri: string;
  state: string | null;
  scopes: string[];
  accessType: string;
  prompt: string[];
  includeGrantedScopes: boolean;
  codeChallenge?: string;
  codeChallengeMethod?: 'S256' | 'plain';
  loginHint: string | null;
  nonce?: string;
}

export interface OAuthClient {
  clientId: string;
  clientSecret: string;
}

export class EmulatorState {
  readonly clock = new Clock();
  readonly signingKey = new SigningKey();
  readonly client: OAuthClient;
  private readonly initialConfig: EmulatorConfig;
  config: EmulatorConfig;

  accounts = new Map<string, Account>();
  calendars = new Map<string, Calendar>();
  /** calendarId -> account email -> role. */
  acl = new Map<string, Map<string, AccessRole>>();
  /** account email -> calendar ids in calendar-list order. */
  calendarOrder = new Map<string, string[]>();

  codes = new Map<string, AuthCode>();
  pendingConsents = new Map<string, PendingConsent>();
  grants = new Map<string, Grant>();
  refreshTokens = new Map<string, RefreshTokenRecord>();
  accessTokens = new Map<string, AccessTokenRecord>();

  calls: CallLogEntry[] = [];
  faults: Fault[] = [];
  rateLimiter = new RateLimiter();
  private etagCounter = 0;

  constructor(client: OAuthClient, config: EmulatorConfig) {
    this.client = client;
    this.initialConfig = { ...config };
    this.config = { ...config };
  }

  /** Forgets everything except the OAuth client and the signing key (CONTRACT §8). */
  reset(): void {
    this.config = { ...this.initialConfig };
    this.clock.reset();
    this.accounts.clear();
    this.calendars.clear();
    this.acl.clear();
    this.calendarOrder.clear();
    this.codes.clear();
    this.pendingConsents.clear();
    this.grants.clear();
    this.refreshTokens.clear();
    this.accessTokens.clear();
    this.calls = [];
    this.faults = [];
    this.rateLimiter = new RateLimiter();
  }

  now(): number {
    return this.clock.now();
  }

  /** A quoted, strictly increasing numeric ETag like `"3346892308754000"` (§3.3, §3.5). */
  nextEtag(): string {
    const micros = this.now() * 1000;
    this.etagCounter = Math.max(this.etagCounter + 1, micros);
    return `"${this.etagCounter}"`;
  }

  recordCall(entry: CallLogEntry): void {
    this.calls.push(entry);
    const cap = this.config.callLogLimit;
    if (this.calls.length > cap) this.calls.splice(0, this.calls.length - cap);
  }

  // ---- accounts and calendars ----

  getAccount(emailOrSub: string): Account | undefined {
    const byEmail = this.accounts.get(emailOrSub.toLowerCase());
    if (byEmail) return byEmail;
    for (const a of this.accounts.values()) if (a.sub === emailOrSub) return a;
    return undefined;
  }

  addAccount(input: {
    email: string;
    name?: string;
    timeZone?: string;
    calendars?: { id?: string; summary: string; accessRole: AccessRole; timeZone?: string; description?: string }[];
  }): { account: Account; calendars: { id: string; accessRole: AccessRole }[] } {
    const email = input.email.toLowerCase();
    const timeZone = input.timeZone ?? 'UTC';
    const account: Account = {
      email,
      // Google's `sub` is a stable 21-digit id of the account: the same email gets the same one
      // after an emulator restart, so a reconnection is recognised as the same account.
      sub: `1${BigInt(`0x${createHash('sha256').update(email).digest('hex').slice(0, 16)}`).toString().padStart(20, '0').slice(0, 20)}`,
      name: input.name ?? email.split('@')[0] ?? email,
      timeZone,
      readOnlyUntil: 0,
    };
    this.accounts.set(email, account);
    this.calendarOrder.set(email, []);
    const listed: { id: string; accessRole: AccessRole }[] = [];
    // The primary calendar's id is the account email, and the account owns it (CONTRACT §8).
    const primary = this.ensureCalendar(email, email, timeZone);
    this.share(primary.id, email, 'owner');
    listed.push({ id: primary.id, accessRole: 'owner' });
    for (const c of input.calendars ?? []) {
      const id = c.id ?? `${randomBase32(26)}@group.calendar.google.com`;
      const cal = this.ensureCalendar(id, c.summary, c.timeZone ?? timeZone, c.description);
      this.share(cal.id, email, c.accessRole);
      listed.push({ id: cal.id, accessRole: c.accessRole });
    }
    return { account, calendars: listed };
  }

  ensureCalendar(id: string, summary: string, timeZone: string, description?: string): Calendar {
    let cal = this.calendars.get(id);
    if (!cal) {
      cal = {
        id,
        summary,
        timeZone,
        events: new Map(),
        changeSeq: 0,
        syncEpoch: 0,
        created: this.now(),
      };
      if (description !== undefined) cal.description = description;
      this.calendars.set(id, cal);
      this.acl.set(id, new Map());
    }
    return cal;
  }

  share(calendarId: string, email: string, role: AccessRole): void {
    const acl = this.acl.get(calendarId);
    if (!acl) throw new Error(`no calendar ${calendarId}`);
    acl.set(email, role);
    const order = this.calendarOrder.get(email);
    if (order && !order.includes(calendarId)) order.push(calendarId);
  }

  roleOf(calendarId: string, email: string): AccessRole | undefined {
    return this.acl.get(calendarId)?.get(email);
  }

  // ---- OAuth bookkeeping ----

  grantKey(clientId: string, account: string): string {
    return `${clientId}\n${account}`;
  }

  /** Revokes the whole grant of account+client: its refresh and access tokens die (§1.4). */
  revokeGrant(clientId: string, account: string): void {
    this.grants.delete(this.grantKey(clientId, account));
    for (const rt of this.refreshTokens.values()) {
      if (rt.clientId === clientId && rt.account === account && !rt.dead) rt.dead = 'revoked';
    }
    for (const at of this.accessTokens.values()) {
      if (at.clientId === clientId && at.account === account) at.revoked = true;
    }
  }

  /** Control route: every token of the account, for every client (CONTRACT §8). */
  revokeAccount(account: string): void {
    const clients = new Set<string>([this.client.clientId]);
    for (const g of this.grants.values()) if (g.account === account) clients.add(g.clientId);
    for (const rt of this.refreshTokens.values()) if (rt.account === account) clients.add(rt.clientId);
    for (const at of this.accessTokens.values()) if (at.account === account) clients.add(at.clientId);
    for (const c of clients) this.revokeGrant(c, account);
  }
}

const BASE32HEX = '0123456789abcdefghijklmnopqrstuv';

/** Random lowercase base32hex, the alphabet of Calendar event ids (§4). */
export function randomBase32(length: number): string {
  const bytes = randomBytes(length);
  let s = '';
  for (let i = 0; i < length; i++) s += BASE32HEX[(bytes[i] ?? 0) % 32];
  return s;
}

export function randomToken(bytes: number): string {
  return randomBytes(bytes).toString('base64url');
}
