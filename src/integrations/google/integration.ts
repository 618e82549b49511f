// The calendar_integrations row behind `?level=org|user`, and what the API tells about it.
// Every query is scoped by organisation_id, and by user_id for a user-level integration.
import { z } from 'zod';
import { sql, type Db } from '../../shared/db';
import type { Level } from '../../shared/validation';

type Conn = Pick<Db, 'query' | 'one' | 'maybeOne' | 'any' | 'exists'>;

export const ConnectionStatus = z.enum(['active', 'needs_reconnect', 'disconnecting', 'disconnected']);

export const IntegrationRow = z.object({
  id: z.string(),
  organisation_id: z.string(),
  user_id: z.string().nullable(),
  connection_status: ConnectionStatus,
  account_email: z.string().nullable(),
  account_subject: z.string().nullable(),
  calendar_id: z.string().nullable(),
  sync_enabled: z.boolean(),
  last_sync_at: z.string().nullable(),
  last_error: z.string().nullable(),
  connected_at: z.string().nullable(),
});
export type IntegrationRow = z.infer<typeof IntegrationRow>;

export type Owner = { organisationId: string; level: Level; userId: string };

const columns = sql.fragment`id, organisation_id, user_id, connection_status, account_email, account_subject, calendar_id,
  sync_enabled, last_sync_at, last_error, connected_at`;

function ownerCondition(owner: Owner) {
  return owner.level === 'org'
    ? sql.fragment`organisation_id = ${owner.organisationId} and provider = 'google' and user_id is null`
    : sql.fragment`organisation_id = ${owner.organisationId} and provider = 'google' and user_id = ${owner.userId}`;
}

export async function findIntegration(db: Conn, owner: Owner, opts: { lock?: boolean } = {}): Promise<IntegrationRow | null> {
  return db.maybeOne(sql.type(IntegrationRow)`
    select ${columns} from calendar_integrations where ${ownerCondition(owner)} ${opts.lock ? sql.fragment`for update` : sql.fragment``}`);
}

/** Holds tokens: `active` or `needs_reconnect` (the integrations appointment_sync_targets uses). */
export function holdsTokens(row: IntegrationRow | null): row is IntegrationRow {
  return row !== null && (row.connection_status === 'active' || row.connection_status === 'needs_reconnect');
}

export async function markNeedsReconnect(db: Conn, row: Pick<IntegrationRow, 'id' | 'organisation_id'>, message: string): Promise<void> {
  await db.query(sql.unsafe`
    update calendar_integrations set connection_status = 'needs_reconnect', last_error = ${message.slice(0, 1000)}
    where id = ${row.id} and organisation_id = ${row.organisation_id} and connection_status = 'active'`);
}

export const StatusValue = z.enum(['not_connected', 'active', 'paused', 'needs_reconnect', 'error']);

export const Backlog = z.object({
  id: z.number().int(),
  reason: z.enum(['sync_now', 'integration_changed']),
  running: z.boolean(),
  queued: z.number().int().describe('appointments queued so far by the relay for this job'),
  started_at: z.string(),
  completed_at: z.string().nullable(),
});

export const IntegrationStatus = z.object({
  connected: z.boolean(),
  level: z.enum(['org', 'user']),
  account_email: z.string().nullable(),
  calendar_id: z.string().nullable(),
  sync_enabled: z.boolean(),
  status: StatusValue.describe(
    'not_connected: no connection; needs_reconnect: Google refused the tokens; paused: sync off; error: the last attempt failed; else active',
  ),
  last_sync_at: z.string().nullable(),
  last_error: z.string().nullable(),
  counts: z.object({ pending: z.number().int(), synced: z.number().int(), error: z.number().int() }),
  disconnecting: z.boolean().describe('true while the relay removes the events of a disconnect with remove_events'),
  connected_at: z.string().nullable(),
  backlog: Backlog.nullable().describe('the latest backlog job (Sync now, or an integration change) and its progress'),
});
export type IntegrationStatus = z.infer<typeof IntegrationStatus>;

const Counts = z.object({ pending: z.number(), synced: z.number(), error: z.number() });
const BacklogRow = z.object({
  id: z.number(),
  reason: z.enum(['sync_now', 'integration_changed']),
  queued: z.number(),
  created_at: z.string(),
  completed_at: z.string().nullable(),
});

export function statusValue(row: IntegrationRow | null): z.infer<typeof StatusValue> {
  if (!row || row.connection_status === 'disconnected') return 'not_connected';
  if (row.connection_status === 'needs_reconnect') return 'needs_reconnect';
  if (!row.sync_enabled) return 'paused';
  if (row.last_error) return 'error';
  return 'active';
}

export async function integrationStatus(db: Conn, owner: Owner, row?: IntegrationRow | null): Promise<IntegrationStatus> {
  const integration = row === undefined ? await findIntegration(db, owner) : row;
  const status = statusValue(integration);
  if (!integration || status === 'not_connected') {
    return {
      connected: false,
      level: owner.level,
      account_email: null,
      calendar_id: null,
      sync_enabled: false,
      status,
      last_sync_at: integration?.last_sync_at ?? null,
      last_error: null,
      counts: { pending: 0, synced: 0, error: 0 },
      disconnecting: false,
      connected_at: null,
      backlog: null,
    };
  }
  const counts = await db.one(sql.type(Counts)`
    select count(*) filter (where a.sync_status = 'pending')::int as pending,
           count(*) filter (where a.sync_status = 'synced')::int as synced,
           count(*) filter (where a.sync_status = 'error')::int as error
    from appointment_sync_targets t join appointments a on a.id = t.appointment_id
    where t.organisation_id = ${integration.organisation_id} and a.organisation_id = ${integration.organisation_id}
      and t.integration_id = ${integration.id}`);
  const backlog = await db.maybeOne(sql.type(BacklogRow)`
    select id, reason, queued, created_at, completed_at from sync_backlog
    where integration_id = ${integration.id} and organisation_id = ${integration.organisation_id}
    order by (completed_at is null) desc, id desc limit 1`);
  return {
    connected: true,
    level: owner.level,
    account_email: integration.account_email,
    calendar_id: integration.calendar_id,
    sync_enabled: integration.sync_enabled,
    status,
    last_sync_at: integration.last_sync_at,
    last_error: integration.last_error,
    counts,
    disconnecting: integration.connection_status === 'disconnecting',
    connected_at: integration.connected_at,
    backlog: backlog
      ? {
          id: backlog.id,
          reason: backlog.reason,
          running: backlog.completed_at === null,
          queued: backlog.queued,
          started_at: backlog.created_at,
          completed_at: backlog.completed_at,
        }
      : null,
  };
}
