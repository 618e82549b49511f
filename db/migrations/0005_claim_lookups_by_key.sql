-- Up Migration
-- The claim's lookups made lookups by key whatever the statistics say: the check that no other
-- row of a candidate's appointment is leased, and the target's and link's integration rows.
--
-- The claim's plans are made once per session, from the statistics of that moment, and kept
-- (plan_cache_mode, 0003). A join clause such as `busy.appointment_id = o.appointment_id` could
-- serve a merge join, so the planner also considers reading a whole index in that order
-- (enable_seqscan is off in the function: that is its way to read everything) and filtering it
-- per outer row. Made while a table looked nearly empty, both plans cost the same, and a
-- session that got the full scan kept reading the whole table per row:
-- - the outbox, per candidate: measured on 20,000-change drains, 241 index entries read per
--   lookup instead of 1, claims 9-12 ms instead of 4, a drain ~30 % slower whenever the claim
--   ran on such a session (auto_explain: "Join Filter: (busy.appointment_id =
--   o.appointment_id)" over "Index Scan using sync_outbox_appointment", 19,712 rows removed);
-- - calendar_integrations by id, per claimed appointment: planned while the database had one
--   integration, it read all 226 of 301 later ones (test/relay/outbox.test.ts).
-- `x = any(array[y])` is not a merge-join clause: the only index path left for it is the
-- lookup by the outer row's key.
-- Not covered: inside appointment_sync_targets, `provider = 'google'` lets the planner read all
-- of calendar_integrations through its (organisation_id, provider, user_id) index, and with
-- statistics from a database of one integration that ties with the lookup too. Only a relay
-- session that planned while the whole database had a single integration is exposed.

-- Otherwise the function is 0003's.
create or replace function sync_outbox_claim(relay_id text, max_appointments integer, lease_ms integer)
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
      -- = any(array[...]), not `=`: see the top of this migration.
      and not exists (
        select 1 from sync_outbox busy
        where busy.appointment_id = any(array[o.appointment_id]) and busy.locked_until >= now())
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
            from appointment_sync_targets t join calendar_integrations i on i.id = any(array[t.integration_id])
            where t.appointment_id = g.appointment_id and t.organisation_id is not distinct from g.organisation_id) i) as target,
         (select row_to_json(l) from (
            select integration_id, external_calendar_id, external_event_id, generation, etag, payload_hash, sync_status
            from appointment_external_links
            where appointment_id = g.appointment_id and organisation_id = g.organisation_id and provider = 'google') l) as link,
         (select row_to_json(i) from (
            select i.id, i.organisation_id, i.user_id, i.connection_status, i.account_subject, i.account_email,
                   i.calendar_id, i.sync_enabled, i.connected_at
            from appointment_external_links l join calendar_integrations i on i.id = any(array[l.integration_id])
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

-- Down Migration
-- Nothing to undo: the function does what 0003's does, with lookups by key in every plan, and is
-- right for the earlier schema too (going back would only bring back plans that read whole
-- tables).
select 1;
