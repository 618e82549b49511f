// Backlog jobs (sync_backlog: "Sync now" and integration changes) become outbox rows of
// priority 1 here, one batch at a time. The outbox never holds more than about
// BACKLOG_HEADROOM backlog rows per organisation, so a 100,000-appointment Sync now costs
// constant memory and its rows always queue behind live changes.
import { z } from 'zod';
import { sql, type Db } from '../src/shared/db';
import type { Logger } from '../src/shared/logger';
import { createOAuthClient, type GoogleConfig } from '../src/integrations/google/oauth';
import type { TokenStore } from '../src/integrations/google/tokenStore';

const BATCH = 500;
const BACKLOG_HEADROOM = 1_000;

const Job = z.object({
  id: z.number(),
  organisation_id: z.string(),
  integration_id: z.string(),
  reason: z.enum(['sync_now', 'integration_changed']),
  since: z.string().nullable(),
  cursor_appointment_id: z.string().nullable(),
});

/** Expands at most one batch of one job; returns true when it queued anything. */
export async function expandBacklog(db: Db): Promise<boolean> {
  return db.transaction(async (tx) => {
    // SKIP LOCKED: each relay expands a different job; none waits on another.
    const job = await tx.maybeOne(sql.type(Job)`
      select b.id, b.organisation_id, b.integration_id, b.reason, b.since, b.cursor_appointment_id
      from sync_backlog b
      where b.completed_at is null
        and (select count(*) from sync_outbox o
             where o.organisation_id = b.organisation_id and o.priority = 1 and o.failed_at is null) < ${BACKLOG_HEADROOM}
      order by b.id
      limit 1
      for update skip locked`);
    if (!job) return false;
    const after = job.cursor_appointment_id ?? '00000000-0000-0000-0000-000000000000';
    const sinceFilter =
      job.reason === 'sync_now' && job.since
        ? sql.fragment`and (a.updated_at > ${job.since} or a.created_at > ${job.since} or a.sync_status in ('pending', 'error'))`
        : sql.fragment``;
    // Every appointment this integration targets, plus every appointment it holds an event for
    // (so moves, cancellations, hard deletes and disconnects reach the events already there).
    const ids = await tx.anyFirst(sql.type(z.object({ appointment_id: z.string() }))`
      select appointment_id from (
        select t.appointment_id from appointment_sync_targets t
        join appointments a on a.id = t.appointment_id
        where t.organisation_id = ${job.organisation_id} and t.integration_id = ${job.integration_id}
          and t.appointment_id > ${after} ${sinceFilter}
        union
        select l.appointment_id from appointment_external_links l
        where l.organisation_id = ${job.organisation_id} and l.integration_id = ${job.integration_id}
          and l.appointment_id > ${after}
      ) affected
      order by appointment_id
      limit ${BATCH}`);
    if (ids.length > 0) {
      await tx.query(sql.unsafe`
        insert into sync_outbox (organisation_id, appointment_id, operation, priority)
        select ${job.organisation_id}, unnest(${sql.array(ids, 'uuid')}), 'resync', 1`);
      await tx.query(sql.unsafe`select pg_notify('sync_outbox', '')`);
    }
    await tx.query(sql.unsafe`
      update sync_backlog
      set queued = queued + ${ids.length},
          cursor_appointment_id = ${ids.at(-1) ?? job.cursor_appointment_id},
          completed_at = case when ${ids.length} < ${BATCH} then now() end
      where id = ${job.id}`);
    return ids.length > 0;
  });
}

const Disconnecting = z.object({ id: z.string(), organisation_id: z.string() });

/**
 * "Disconnect and remove events": once every event of a disconnecting integration is gone
 * (no links left, no backlog running), revoke at Google, forget the tokens, mark disconnected.
 */
export async function finishDisconnects(db: Db, tokens: TokenStore, google: GoogleConfig, log: Logger): Promise<void> {
  const done = await db.any(sql.type(Disconnecting)`
    select i.id, i.organisation_id from calendar_integrations i
    where i.connection_status = 'disconnecting'
      and not exists (select 1 from appointment_external_links l where l.integration_id = i.id)
      and not exists (select 1 from sync_backlog b where b.integration_id = i.id and b.completed_at is null)`);
  for (const integration of done) {
    const ref = { id: integration.id, organisationId: integration.organisation_id };
    const refreshToken = await tokens.readRefreshToken(ref).catch(() => null);
    if (refreshToken) {
      await createOAuthClient(google)
        .revokeToken(refreshToken)
        .catch((error: Error) => log.warn({ integration_id: integration.id }, `revoke failed (tokens forgotten anyway): ${error.message}`));
    }
    await db.transaction(async (tx) => {
      await tokens.remove(ref, tx);
      await tx.query(sql.unsafe`
        update calendar_integrations set connection_status = 'disconnected', last_error = null
        where id = ${integration.id} and connection_status = 'disconnecting'`);
    });
    log.info({ integration_id: integration.id, organisation_id: integration.organisation_id }, 'disconnected after removing its events');
  }
}
