// The peer's database: our schema minus our capture triggers, plus graphile-worker's schema
// and a trigger that enqueues one job per changed appointment, as a team would add instead.
import pg from 'pg';
import { runMigrations } from 'graphile-worker';

export async function preparePeerDatabase(url: string): Promise<void> {
  await runMigrations({ connectionString: url, logger: undefined });
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(`
      drop trigger appointments_capture_insert on appointments;
      drop trigger appointments_capture_update on appointments;
      drop trigger appointments_capture_delete on appointments;
      drop trigger calendar_integrations_capture on calendar_integrations;

      -- One job per row, enqueued with one add_jobs() call per statement (the bulk form the
      -- graphile-worker docs recommend; a row trigger calling add_job() per row inserts
      -- 20,000 rows several times slower, and the statement form sends one NOTIFY).
      create function peer_enqueue_insert() returns trigger language plpgsql as $$
      begin
        if exists (select 1 from new_rows) then
          perform graphile_worker.add_jobs(array(
            select row('sync_appointment', json_build_object('id', n.id), null, null, null, null, null, null)::graphile_worker.job_spec
            from new_rows n));
        end if;
        return null;
      end $$;
      create trigger peer_enqueue_insert after insert on appointments
        referencing new table as new_rows for each statement execute function peer_enqueue_insert();

      create function peer_enqueue_update() returns trigger language plpgsql as $$
      declare
        specs graphile_worker.job_spec[];
      begin
        specs := array(
          select row('sync_appointment', json_build_object('id', n.id), null, null, null, null, null, null)::graphile_worker.job_spec
          from new_rows n join old_rows o on o.id = n.id
          where appointment_synced_columns_changed(o, n));
        if cardinality(specs) > 0 then perform graphile_worker.add_jobs(specs); end if;
        return null;
      end $$;
      create trigger peer_enqueue_update after update on appointments
        referencing old table as old_rows new table as new_rows for each statement execute function peer_enqueue_update();
    `);
  } finally {
    await client.end();
  }
}
