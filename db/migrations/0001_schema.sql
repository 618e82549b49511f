-- Up Migration
-- Tables of CONTRACT section 3 and the sync machinery. Every invariant the product relies on
-- is a constraint here, so a plain SQL writer cannot break it either.

-- IANA zone names, copied from PostgreSQL's own tz database. A foreign key to this table is
-- how appointments.time_zone is checked: a CHECK cannot run a subquery, and reading
-- pg_timezone_names per row costs milliseconds (it scans the whole tz directory).
create table iana_time_zones (
  name text primary key
);
insert into iana_time_zones (name)
select name from pg_timezone_names
where name !~ '^(posix|right)/' and name not in ('posixrules', 'localtime', 'Factory');

create table organisations (
  id uuid primary key default gen_random_uuid(),
  name text not null check (length(name) between 1 and 200),
  created_at timestamptz not null default now()
);

create table users (
  id uuid primary key default gen_random_uuid(),
  organisation_id uuid not null references organisations (id) on delete cascade,
  email text not null check (email ~ '^[^@\s]+@[^@\s]+$'),
  name text not null check (length(name) between 1 and 200),
  role text not null check (role in ('admin', 'member')),
  created_at timestamptz not null default now(),
  -- Target of the composite foreign keys that keep assignees and user-level integrations
  -- inside their own organisation.
  unique (organisation_id, id),
  unique (organisation_id, email)
);

create table appointments (
  id uuid primary key default gen_random_uuid(),
  organisation_id uuid not null references organisations (id) on delete cascade,
  assigned_user_id uuid null,
  title text not null check (length(title) between 1 and 1024),
  description text null check (length(description) <= 8192),
  location text null check (length(location) <= 1024),
  starts_at timestamptz not null,
  ends_at timestamptz not null,
  time_zone text not null default 'UTC' references iana_time_zones (name),
  status text not null default 'scheduled' check (status in ('scheduled', 'cancelled')),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  -- V1 sync columns, written by the relay only; writing them never enqueues work.
  external_event_id text null,
  sync_status text not null default 'pending' check (sync_status in ('pending', 'synced', 'error', 'disabled')),
  last_synced_at timestamptz null,
  last_error text null,
  constraint appointments_ends_after_start check (ends_at > starts_at),
  -- An assignee of another organisation is refused; deleting the user unassigns (and so
  -- re-targets the event to the org-level calendar through the capture trigger).
  constraint appointments_assignee_same_organisation
    foreign key (organisation_id, assigned_user_id) references users (organisation_id, id)
    on delete set null (assigned_user_id)
);
create index appointments_organisation_starts_at on appointments (organisation_id, starts_at);
create index appointments_assigned_user on appointments (organisation_id, assigned_user_id) where assigned_user_id is not null;

create table calendar_integrations (
  id uuid primary key default gen_random_uuid(),
  organisation_id uuid not null references organisations (id) on delete cascade,
  user_id uuid null,
  provider text not null default 'google' check (provider in ('google')),
  -- connection: 'active' (tokens work), 'needs_reconnect' (Google refused them),
  -- 'disconnecting' (removing its events before revoking), 'disconnected' (no tokens).
  connection_status text not null default 'active'
    check (connection_status in ('active', 'needs_reconnect', 'disconnecting', 'disconnected')),
  account_email text null,
  account_subject text null, -- Google's stable account id (`sub`); the email can change
  calendar_id text null,
  sync_enabled boolean not null default true,
  granted_scopes text[] not null default '{}',
  last_sync_at timestamptz null,
  last_error text null,
  connected_at timestamptz null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (organisation_id, id),
  -- One org-level row (user_id null) and one row per user, per provider.
  constraint calendar_integrations_one_per_owner unique nulls not distinct (organisation_id, provider, user_id),
  constraint calendar_integrations_user_same_organisation
    foreign key (organisation_id, user_id) references users (organisation_id, id) on delete cascade,
  constraint calendar_integrations_active_has_account
    check (connection_status = 'disconnected' or account_subject is not null)
);

-- OAuth secrets live apart from calendar_integrations so that DBAs and every reader of that
-- table never see them (grant SELECT on it, not on this one). Tokens are AES-256-GCM
-- ciphertexts bound to their integration id (see src/shared/crypto.ts).
create table calendar_credentials (
  integration_id uuid primary key,
  organisation_id uuid not null,
  key_id text not null,
  refresh_token_ciphertext bytea not null,
  access_token_ciphertext bytea null,
  access_token_expires_at timestamptz null,
  scopes text[] not null default '{}',
  refreshed_at timestamptz null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  foreign key (organisation_id, integration_id) references calendar_integrations (organisation_id, id) on delete cascade
);

-- Where each appointment lives in Google. No foreign key to appointments on purpose: after a
-- hard DELETE of an appointment its link is what lets the relay delete the Google event.
-- The relay writes the link (with the deterministic event id it is about to use) before it
-- calls Google, so an event can only exist in Google if a link names it.
create table appointment_external_links (
  id bigint generated always as identity primary key,
  organisation_id uuid not null references organisations (id) on delete cascade,
  appointment_id uuid not null,
  provider text not null default 'google' check (provider in ('google')),
  integration_id uuid not null,
  external_calendar_id text not null,
  external_event_id text not null check (external_event_id ~ '^[a-v0-9]+$' and length(external_event_id) between 5 and 1024),
  generation integer not null default 0 check (generation >= 0),
  etag text null,
  payload_hash text null,
  sync_status text not null default 'pending' check (sync_status in ('pending', 'synced', 'error')),
  last_synced_at timestamptz null,
  last_error text null,
  attempts integer not null default 0,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint appointment_external_links_one_per_provider unique (appointment_id, provider),
  foreign key (organisation_id, integration_id) references calendar_integrations (organisation_id, id) on delete cascade
);
create index appointment_external_links_integration on appointment_external_links (integration_id);

-- The transactional outbox: one row per captured change, written by the triggers below in
-- the writer's own transaction. Done rows are deleted (the result lives in the link), so the
-- table stays small; parked rows (failed_at) stay as dead letters until revived.
create table sync_outbox (
  id bigint generated always as identity primary key,
  organisation_id uuid not null,
  appointment_id uuid not null,
  operation text not null check (operation in ('insert', 'update', 'delete', 'resync')),
  -- 0: a live change; 1: backlog (Sync now, integration changes). Live rows are claimed first.
  priority smallint not null default 0 check (priority in (0, 1)),
  -- For 'delete', the deleted row as it was: the relay needs it to find the event's calendar.
  snapshot jsonb null,
  created_at timestamptz not null default now(),
  run_at timestamptz not null default now(),
  attempts integer not null default 0 check (attempts >= 0),
  last_error text null,
  -- Lease: a relay owns the row until locked_until. A killed relay's rows are claimable again
  -- once the lease runs out; no lock is held across the Google call.
  locked_by text null,
  locked_until timestamptz null,
  -- Set while the target integration needs reconnecting: the row waits, unconsumed, and is
  -- released by the calendar_integrations trigger when the connection is active again.
  waiting_for_integration_id uuid null,
  -- Parked (dead letter): given up after too many attempts or a permanent error.
  failed_at timestamptz null,
  constraint sync_outbox_lease_complete check ((locked_by is null) = (locked_until is null))
);
-- The claim scans this partial index per organisation (fair round-robin), live before backlog.
create index sync_outbox_claimable on sync_outbox (organisation_id, priority, id)
  where failed_at is null and waiting_for_integration_id is null;
create index sync_outbox_appointment on sync_outbox (appointment_id);
create index sync_outbox_waiting on sync_outbox (waiting_for_integration_id) where waiting_for_integration_id is not null;
-- A hot queue table: vacuum it after a fixed number of dead rows, not a fraction of its size
-- (Oban's scaling guide, Nango#4021), so deleted rows never pile up.
alter table sync_outbox set (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 500,
  autovacuum_analyze_scale_factor = 0, autovacuum_analyze_threshold = 1000);

-- Backlog jobs ("Sync now", integration changes): the relay expands each into per-appointment
-- outbox rows of priority 1, a batch at a time, so a 100,000-appointment backlog is queued in
-- constant time and never floods the outbox. One running job per integration: a second press
-- joins the running one instead of doubling the work.
create table sync_backlog (
  id bigint generated always as identity primary key,
  organisation_id uuid not null,
  integration_id uuid not null,
  reason text not null check (reason in ('sync_now', 'integration_changed')),
  -- 'sync_now' takes only what changed since this time (or is pending / in error).
  since timestamptz null,
  -- keyset cursor over appointment ids already expanded
  cursor_appointment_id uuid null,
  queued integer not null default 0,
  created_at timestamptz not null default now(),
  completed_at timestamptz null,
  foreign key (organisation_id, integration_id) references calendar_integrations (organisation_id, id) on delete cascade
);
create unique index sync_backlog_one_running on sync_backlog (integration_id) where completed_at is null;

-- Google quota shared by every relay: one token bucket per Google account (key = account
-- subject) and one for the whole project (key '*'), plus a pause set by a rate-limit answer.
create table google_rate_limits (
  account_key text primary key,
  tokens double precision not null,
  refilled_at timestamptz not null default clock_timestamp(),
  paused_until timestamptz null,
  pause_reason text null
);

-- Capture ------------------------------------------------------------------------------------

-- The columns whose change is visible in Google (or moves the event). Anything else, such as
-- updated_at or the V1 sync columns the relay writes, must not enqueue, or the relay loops.
create function appointment_synced_columns_changed(o appointments, n appointments) returns boolean
language sql immutable as $$
  select (o.assigned_user_id, o.title, o.description, o.location, o.starts_at, o.ends_at, o.time_zone, o.status)
         is distinct from
         (n.assigned_user_id, n.title, n.description, n.location, n.starts_at, n.ends_at, n.time_zone, n.status)
$$;

-- Before a synced change: keep updated_at and the V1 sync_status true for every writer.
create function appointments_before_update() returns trigger language plpgsql as $$
begin
  if new.organisation_id <> old.organisation_id then
    raise exception 'an appointment cannot move to another organisation'
      using errcode = 'check_violation', constraint = 'appointments_organisation_immutable';
  end if;
  if appointment_synced_columns_changed(old, new) then
    if new.updated_at is not distinct from old.updated_at then
      new.updated_at := now();
    end if;
    if new.sync_status is not distinct from old.sync_status then
      new.sync_status := 'pending';
    end if;
  end if;
  return new;
end $$;
create trigger appointments_before_update before update on appointments
  for each row execute function appointments_before_update();

-- Statement-level capture with transition tables: a 10,000-row UPDATE is one INSERT ... SELECT
-- and one NOTIFY. The payload is constant so PostgreSQL also folds the notifications of
-- several statements of one transaction into one.
create function sync_outbox_notify() returns void language sql as $$
  select pg_notify('sync_outbox', '')
$$;

create function appointments_capture_insert() returns trigger language plpgsql as $$
begin
  insert into sync_outbox (organisation_id, appointment_id, operation)
  select organisation_id, id, 'insert' from new_rows;
  if found then perform sync_outbox_notify(); end if;
  return null;
end $$;
create trigger appointments_capture_insert after insert on appointments
  referencing new table as new_rows
  for each statement execute function appointments_capture_insert();

create function appointments_capture_update() returns trigger language plpgsql as $$
begin
  insert into sync_outbox (organisation_id, appointment_id, operation)
  select n.organisation_id, n.id, 'update'
  from new_rows n join old_rows o on o.id = n.id
  where appointment_synced_columns_changed(o, n);
  if found then perform sync_outbox_notify(); end if;
  return null;
end $$;
create trigger appointments_capture_update after update on appointments
  referencing old table as old_rows new table as new_rows
  for each statement execute function appointments_capture_update();

create function appointments_capture_delete() returns trigger language plpgsql as $$
begin
  insert into sync_outbox (organisation_id, appointment_id, operation, snapshot)
  select organisation_id, id, 'delete',
         jsonb_build_object('organisation_id', organisation_id, 'assigned_user_id', assigned_user_id,
                            'title', title, 'status', status, 'external_event_id', external_event_id)
  from old_rows;
  if found then perform sync_outbox_notify(); end if;
  return null;
end $$;
create trigger appointments_capture_delete after delete on appointments
  referencing old table as old_rows
  for each statement execute function appointments_capture_delete();

-- An integration change that alters where or whether events go (target calendar, sync toggle,
-- connection state, a new user-level connection) starts a backlog job for that integration;
-- the relay re-targets every affected appointment from it. A reconnection also releases the
-- rows that waited for it.
create function calendar_integrations_capture() returns trigger language plpgsql as $$
begin
  if tg_op = 'UPDATE' then
    if (old.calendar_id, old.sync_enabled, old.connection_status, old.account_subject)
       is not distinct from (new.calendar_id, new.sync_enabled, new.connection_status, new.account_subject) then
      return null;
    end if;
    if new.connection_status = 'active' and old.connection_status <> 'active' then
      update sync_outbox set waiting_for_integration_id = null, run_at = now()
      where waiting_for_integration_id = new.id;
    end if;
  end if;
  -- Restart a running job from the beginning rather than adding a second one.
  insert into sync_backlog (organisation_id, integration_id, reason)
  values (new.organisation_id, new.id, 'integration_changed')
  on conflict (integration_id) where completed_at is null
  do update set reason = 'integration_changed', since = null, cursor_appointment_id = null;
  perform sync_outbox_notify();
  return null;
end $$;
create trigger calendar_integrations_capture after insert or update on calendar_integrations
  for each row execute function calendar_integrations_capture();

-- Keep calendar_integrations.updated_at true for every writer.
create function touch_updated_at() returns trigger language plpgsql as $$
begin
  new.updated_at := now();
  return new;
end $$;
create trigger calendar_integrations_touch before update on calendar_integrations
  for each row execute function touch_updated_at();

-- Which integration syncs an appointment (CONTRACT §5): the assigned user's connected
-- user-level integration, else the organisation's org-level one. "Connected" means it holds
-- tokens: a needs_reconnect integration stays the target (its rows wait for reconnection),
-- a disconnecting or disconnected one is not. The relay and the API both read this view.
create view appointment_sync_targets as
select a.id as appointment_id, a.organisation_id, coalesce(ui.id, oi.id) as integration_id
from appointments a
left join calendar_integrations ui
  on ui.organisation_id = a.organisation_id and ui.provider = 'google' and ui.user_id = a.assigned_user_id
 and ui.connection_status in ('active', 'needs_reconnect')
left join calendar_integrations oi
  on oi.organisation_id = a.organisation_id and oi.provider = 'google' and oi.user_id is null
 and oi.connection_status in ('active', 'needs_reconnect');

-- For DBAs -----------------------------------------------------------------------------------

-- Depth, age and failures of the outbox per organisation: `select * from sync_outbox_overview`.
create view sync_outbox_overview as
select
  o.organisation_id,
  org.name as organisation_name,
  count(*) filter (where o.failed_at is null) as pending,
  count(*) filter (where o.failed_at is null and o.locked_until > now()) as in_flight,
  count(*) filter (where o.waiting_for_integration_id is not null) as waiting_for_reconnect,
  count(*) filter (where o.failed_at is not null) as failed,
  count(*) filter (where o.priority = 1 and o.failed_at is null) as backlog,
  max(now() - o.created_at) filter (where o.failed_at is null) as oldest_pending_age,
  max(o.attempts) as max_attempts,
  (array_agg(o.last_error order by o.id desc) filter (where o.last_error is not null))[1] as latest_error
from sync_outbox o
left join organisations org on org.id = o.organisation_id
group by o.organisation_id, org.name;

-- Down Migration
drop view if exists sync_outbox_overview, appointment_sync_targets;
drop table if exists google_rate_limits, sync_backlog, sync_outbox, appointment_external_links,
  calendar_credentials, calendar_integrations, appointments, users, organisations, iana_time_zones cascade;
drop function if exists appointment_synced_columns_changed(appointments, appointments), appointments_before_update(),
  sync_outbox_notify(), appointments_capture_insert(), appointments_capture_update(), appointments_capture_delete(),
  calendar_integrations_capture(), touch_updated_at() cascade;
