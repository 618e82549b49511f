-- Up Migration
-- The relay's claim in one round trip: lease up to `max_appointments` appointments' pending
-- outbox rows and return, per appointment, the rows and the state to sync (the appointment,
-- its target integration, its link and the link's integration), read after the lease is taken,
-- having recorded the event id of each create (below). It used to be four round trips (BEGIN,
-- the lock, the claim, COMMIT), one more to read the state and one more for the id: on a live
-- change that was most of the time from COMMIT to the Google call.
--
-- Why a function: claims are serialized by a transaction-scoped advisory lock, and the claim
-- must take its snapshot *after* getting that lock. Its NOT EXISTS check on live leases (never
-- two relays on one appointment) is only sound if every earlier claim has committed before our
-- snapshot. A VOLATILE function takes a fresh snapshot for each of its statements, so the
-- statements after the lock see every claim committed while it waited.
--
-- Two statements: the first chooses the appointments (the fair part), the second leases their
-- rows and reads their state (planned as one statement, its plan took ~1.3 ms to make; the
-- two halves take less than half of that).
--
-- Fairness: organisations take turns. A loose index scan lists the organisations with
-- claimable rows, each contributes its oldest rows, and appointments are ranked by (priority,
-- turn within organisation): live changes (priority 0) of every tenant go before any backlog
-- (priority 1), and one tenant's 10,000-row backlog cannot push another tenant's single change
-- behind it.
--
-- Coalescing: every unleased row of a chosen appointment is taken (including parked, waiting
-- and backed-off ones), since the relay syncs the appointment's current state, not the rows'.
create function sync_outbox_claim(relay_id text, max_appointments integer, lease_ms integer)
returns table (
  appointment_id uuid,
  organisation_id uuid,
  ids bigint[],
  operations text[],
  priority smallint,
  attempts integer,
  snapshot jsonb,
  age_ms float8,
  unfinished boolean,
  state json
)
language plpgsql volatile
-- A queue table's statistics are always stale (it empties and refills within seconds), so the
-- planner's row counts are guesses; with them it hash-joined two sequential scans of a
-- 10,000-row outbox into every claim (4.5 ms instead of 1). A claim reaches a handful of rows
-- through its indexes whatever the statistics say: these settings hold only inside the function.
-- enable_material: guessing one leased row, the planner read every entry of the appointment
-- index once into a Materialize node to find the leased ones, O(outbox) per claim (4.5 ms at
-- 10,000 rows); without it, each candidate looks up its own appointment's rows.
-- plan_cache_mode: the plans are made once per session, not on every claim (measured: a claim
-- of 4 from a 10,000-row outbox 2.7 ms with plans made each time, 1.1 ms without). A kept plan
-- is made from the statistics of its first call, so the queries leave the planner no choice
-- that stale statistics could get wrong (below: the appointment by id). A generic plan cannot
-- know `max_appointments` and its cost estimate is large: jit and parallel workers off, or
-- PostgreSQL spends 10 ms compiling, or starting workers, for a few dozen rows.
set enable_seqscan = off
set enable_hashjoin = off
set enable_mergejoin = off
set enable_material = off
set plan_cache_mode = force_generic_plan
set jit = off
set max_parallel_workers_per_gather = 0
as $$
#variable_conflict use_column
declare
  chosen_ids uuid[];
begin
-- (use_column: the names below are table columns, never this function's output columns.)
perform pg_advisory_xact_lock(5224031001);

with recursive organisations_with_work(organisation_id) as (
  (select organisation_id from sync_outbox
   where failed_at is null and waiting_for_integration_id is null
   order by organisation_id limit 1)
  union all
  select (select o.organisation_id from sync_outbox o
          where o.failed_at is null and o.waiting_for_integration_id is null
            and o.organisation_id > w.organisation_id
          order by o.organisation_id limit 1)
  from organisations_with_work w where w.organisation_id is not null
),
candidates as (
  select c.appointment_id, c.priority, c.id,
         row_number() over (partition by c.organisation_id order by c.priority, c.id) as turn
  from organisations_with_work w
  cross join lateral (
    select o.id, o.organisation_id, o.appointment_id, o.priority
    from sync_outbox o
    where o.organisation_id = w.organisation_id
      and o.failed_at is null and o.waiting_for_integration_id is null
      and o.run_at <= now()
      and (o.locked_until is null or o.locked_until < now())
      and not exists (
        select 1 from sync_outbox busy
        where busy.appointment_id = o.appointment_id and busy.locked_until >= now())
    order by o.priority, o.id
    limit max_appointments
  ) c
  where w.organisation_id is not null
),
chosen as (
  select appointment_id from (
    select distinct on (appointment_id) appointment_id, priority, turn, id
    from candidates order by appointment_id, priority, id
  ) first_row_per_appointment
  order by priority, turn, id
  limit max_appointments
)
select array_agg(appointment_id) into chosen_ids from chosen;
if chosen_ids is null then return; end if;

return query
with lockable as (
  select o.id, o.locked_by as previous_owner from sync_outbox o
  where o.appointment_id = any(chosen_ids)
    and (o.locked_until is null or o.locked_until < now())
  for update skip locked
),
claimed as (
  update sync_outbox o
  set locked_by = relay_id,
      locked_until = now() + lease_ms * interval '1 millisecond',
      -- A parked row revived by a new change (or Retry / Sync now) starts counting afresh;
      -- otherwise a row parked after K attempts would be parked again at once, untried.
      attempts = case when o.failed_at is not null then 1 else o.attempts + 1 end,
      failed_at = null
  from lockable
  where o.id = lockable.id
  returning o.id, o.organisation_id, o.appointment_id, o.operation, o.priority, o.snapshot, o.attempts, o.created_at,
            lockable.previous_owner is not null as unfinished
),
groups as (
  select c.appointment_id, c.organisation_id,
         array_agg(c.id order by c.id) as ids,
         array_agg(distinct c.operation) as operations,
         min(c.priority) as priority,
         max(c.attempts) as attempts,
         -- A hard delete's snapshot (the newest one, if several).
         (array_agg(c.snapshot order by c.id desc) filter (where c.snapshot is not null))[1] as snapshot,
         -- From the newest change's commit-time insertion: what the user waits for.
         (extract(epoch from clock_timestamp() - max(c.created_at)) * 1000)::float8 as age_ms,
         bool_or(c.unfinished) as unfinished
  from claimed c
  group by c.appointment_id, c.organisation_id
),
-- The state, scoped by organisation as well as by id. This snapshot was taken after the
-- lease: a change committed later has its own outbox row, which waits for this lease to end.
-- The organisation is compared with IS NOT DISTINCT FROM, which no index can serve, so that
-- every plan finds the appointment by its primary key: with `=`, a plan made while the table
-- was empty looked it up through (organisation_id, starts_at) and read the whole clinic.
states as (
  select g.*,
         (select row_to_json(a) from (
            select id, organisation_id, title, description, location, starts_at, ends_at, time_zone, status
            from appointments where id = g.appointment_id and organisation_id is not distinct from g.organisation_id) a) as appointment,
         (select row_to_json(i) from (
            select i.id, i.organisation_id, i.user_id, i.connection_status, i.account_subject, i.account_email,
                   i.calendar_id, i.sync_enabled, i.connected_at
            from appointment_sync_targets t join calendar_integrations i on i.id = t.integration_id
            where t.appointment_id = g.appointment_id and t.organisation_id is not distinct from g.organisation_id) i) as target,
         (select row_to_json(l) from (
            select integration_id, external_calendar_id, external_event_id, generation, etag, payload_hash, sync_status
            from appointment_external_links
            where appointment_id = g.appointment_id and organisation_id = g.organisation_id and provider = 'google') l) as link,
         (select row_to_json(i) from (
            select i.id, i.organisation_id, i.user_id, i.connection_status, i.account_subject, i.account_email,
                   i.calendar_id, i.sync_enabled, i.connected_at
            from appointment_external_links l join calendar_integrations i on i.id = l.integration_id
            where l.appointment_id = g.appointment_id and l.organisation_id = g.organisation_id and l.provider = 'google') i) as link_integration
  from groups g
),
-- An event may exist in Google only if a link names it, so a create's event id is recorded
-- before Google is asked (relay/sync.ts). For the common case, a scheduled appointment with no
-- event yet and an active target, the claim records it: the relay can call Google at once.
-- Generation 0's id is the UUID's hex digits (eventIdFor in relay/google.ts; a test checks
-- they agree). The relay handles a link Google never confirmed (etag null): insert, and a 409
-- adopts the event.
intents as (
  insert into appointment_external_links
    (organisation_id, appointment_id, provider, integration_id, external_calendar_id, external_event_id, generation, sync_status, attempts)
  select s.organisation_id, s.appointment_id, 'google', (s.target->>'id')::uuid, coalesce(s.target->>'calendar_id', 'primary'),
         replace(s.appointment_id::text, '-', ''), 0, 'pending', 1
  from states s
  where s.link is null and s.appointment->>'status' = 'scheduled'
    and s.target->>'connection_status' = 'active' and (s.target->>'sync_enabled')::boolean
  on conflict (appointment_id, provider) do nothing
  returning appointment_id, integration_id, external_calendar_id, external_event_id, generation, etag, payload_hash, sync_status
)
select s.appointment_id, s.organisation_id, s.ids, s.operations, s.priority, s.attempts, s.snapshot, s.age_ms, s.unfinished,
       json_build_object(
         'appointment', s.appointment,
         'target', s.target,
         'link', coalesce(s.link, (select row_to_json(i) from (
            select integration_id, external_calendar_id, external_event_id, generation, etag, payload_hash, sync_status
            from intents where intents.appointment_id = s.appointment_id) i)),
         'link_integration', case when s.link is null and exists (select 1 from intents where intents.appointment_id = s.appointment_id)
                                  then s.target else s.link_integration end
       ) as state
from states s;
end $$;

-- The relay's results, recorded for several appointments in one round trip. `results` is a
-- JSON array of {organisation_id, appointment_id, ids, status, link, integration_id,
-- calendar_id, event_id, generation, etag, payload_hash} (relay/record.ts); `link` says what
-- to do with the appointment's link: 'write' (these values), 'delete', 'keep' or 'none'.
-- Each result is recorded only if this relay still holds the lease of every one of its rows
-- (otherwise another relay took over, and its result is the one to keep): its rows are
-- deleted, its link written or deleted, and the appointment's V1 sync columns updated.
-- Returns one row per result: 'recorded', 'lease_lost', or 'busy' (below).
create function sync_outbox_complete(relay_id text, results jsonb, wait_for_writers boolean)
returns table (appointment_id uuid, outcome text)
language plpgsql volatile
-- Plans by index whatever the statistics say (see sync_outbox_claim). Every join below is a
-- key lookup from the (at most 100) results, or an array test: no plan can make it quadratic.
set enable_seqscan = off
set enable_hashjoin = off
set enable_mergejoin = off
set plan_cache_mode = force_custom_plan
set jit = off
set max_parallel_workers_per_gather = 0
as $$
#variable_conflict use_column
declare
  locked uuid[];
  deleted bigint[];
begin
  -- First lock the appointment rows, then record with a fresh snapshot (this function's next
  -- statements). A writer that committed before we got a row's lock is then visible, with the
  -- outbox row of its change, so the appointment stays 'pending' for it; one still running
  -- holds the lock. Without wait_for_writers, rows a writer holds are skipped and reported
  -- 'busy': the relay records those alone, waiting. Never waiting for one row while holding
  -- others, the relay cannot deadlock with a transaction of the backend that writes several.
  if wait_for_writers then
    select array_agg(a.id) into locked from (
      select a.id from appointments a
      where a.id in (select (r->>'appointment_id')::uuid from jsonb_array_elements(results) r)
      order by a.id for no key update) a;
  else
    select array_agg(a.id) into locked from (
      select a.id from appointments a
      where a.id in (select (r->>'appointment_id')::uuid from jsonb_array_elements(results) r)
      order by a.id for no key update skip locked) a;
  end if;
  locked := coalesce(locked, '{}');

  -- The outbox rows of the accepted results (locked above, or the appointment is gone: a hard
  -- delete has nothing to update), deleted only where this relay still holds the lease.
  with done as (
    delete from sync_outbox o
    where o.id = any(array(
        select unnest(x.ids)
        from jsonb_to_recordset(results) as x(appointment_id uuid, ids bigint[])
        where x.appointment_id = any(locked)
           or not exists (select 1 from appointments a where a.id = x.appointment_id)))
      and o.locked_by = relay_id
    returning o.id)
  select coalesce(array_agg(id), '{}') into deleted from done;

  -- A result is recorded when all its rows were deleted by us. If a row was missing, the
  -- lease ran out and another relay took it over: its result is the one to keep.
  return query
  with input as (
    select * from jsonb_to_recordset(results) as x(
      organisation_id uuid, appointment_id uuid, ids bigint[], status text, link text,
      integration_id uuid, calendar_id text, event_id text, generation integer, etag text, payload_hash text)
  ),
  recorded as (
    select x.* from input x where x.ids <@ deleted
  ),
  link_deleted as (
    delete from appointment_external_links l using recorded x
    where x.link = 'delete' and l.appointment_id = x.appointment_id and l.organisation_id = x.organisation_id
  ),
  link_written as (
    insert into appointment_external_links
      (organisation_id, appointment_id, provider, integration_id, external_calendar_id, external_event_id, generation,
       etag, payload_hash, sync_status, last_synced_at, last_error, attempts)
    select x.organisation_id, x.appointment_id, 'google', x.integration_id, x.calendar_id, x.event_id, x.generation,
           x.etag, x.payload_hash, 'synced', now(), null, 0
    from recorded x where x.link = 'write'
    on conflict (appointment_id, provider) do update set
      integration_id = excluded.integration_id, external_calendar_id = excluded.external_calendar_id,
      external_event_id = excluded.external_event_id, generation = excluded.generation, etag = excluded.etag,
      payload_hash = excluded.payload_hash, sync_status = 'synced', last_synced_at = now(), last_error = null,
      attempts = 0, updated_at = now()
  ),
  integration_touched as (
    -- Bookkeeping at most once a second, and skipped while another relay is doing it: every
    -- relay finishing an appointment of this integration would otherwise queue on its row.
    update calendar_integrations i set last_sync_at = now(), last_error = null
    from (select c.id from calendar_integrations c
          where c.id in (select integration_id from recorded where link = 'write')
            and (c.last_sync_at is null or c.last_sync_at < now() - interval '1 second' or c.last_error is not null)
          order by c.id
          for no key update skip locked) due
    where i.id = due.id
  ),
  appointment_written as (
    update appointments a set
      -- A change committed while we worked has its own outbox row: stay 'pending' for it.
      sync_status = case when exists (
          select 1 from sync_outbox o where o.appointment_id = x.appointment_id and o.id <> all(x.ids))
        then 'pending' else x.status end,
      external_event_id = case x.link when 'write' then x.event_id when 'keep' then a.external_event_id end,
      last_synced_at = case when x.status = 'synced' then now() else a.last_synced_at end,
      last_error = null
    from recorded x
    -- IS NOT DISTINCT FROM: by primary key whatever the statistics say (see sync_outbox_claim).
    where x.status is not null and a.id = x.appointment_id and a.organisation_id is not distinct from x.organisation_id
  )
  select x.appointment_id,
         case when x.ids <@ deleted then 'recorded'
              when x.appointment_id = any(locked) or not exists (select 1 from appointments a where a.id = x.appointment_id) then 'lease_lost'
              else 'busy' end
  from input x;
end $$;

-- Room on every page for the claim's new row version: the lease columns are in no index, so
-- the claim updates in place (a HOT update) instead of adding an entry to each of the three
-- indexes, which then bloat with dead entries until vacuum.
alter table sync_outbox set (fillfactor = 50);

-- Down Migration
alter table sync_outbox reset (fillfactor);
drop function if exists sync_outbox_claim(text, integer, integer), sync_outbox_complete(text, jsonb, boolean);
