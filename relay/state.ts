// What the relay reads to sync one appointment, as the claim returns it (sync_outbox_claim in
// db/migrations/0003_claim_function.sql): the appointment's synced columns, the integration it
// should be in (appointment_sync_targets), its link to a Google event, and that link's integration.
import { z } from 'zod';
import { AppointmentRow } from '../src/appointments/sql';

export const Integration = z.object({
  id: z.string(),
  organisation_id: z.string(),
  user_id: z.string().nullable(),
  connection_status: z.enum(['active', 'needs_reconnect', 'disconnecting', 'disconnected']),
  account_subject: z.string().nullable(),
  account_email: z.string().nullable(),
  calendar_id: z.string().nullable(),
  sync_enabled: z.boolean(),
  connected_at: z.string().nullable(),
});
export type Integration = z.infer<typeof Integration>;

export const Appointment = AppointmentRow.pick({
  id: true,
  organisation_id: true,
  title: true,
  description: true,
  location: true,
  starts_at: true,
  ends_at: true,
  time_zone: true,
  status: true,
});

export const Link = z.object({
  integration_id: z.string(),
  external_calendar_id: z.string(),
  external_event_id: z.string(),
  generation: z.number(),
  etag: z.string().nullable(),
  payload_hash: z.string().nullable(),
  sync_status: z.string(),
});

export const SyncState = z.object({
  appointment: Appointment.nullable(),
  target: Integration.nullable(),
  link: Link.nullable(),
  link_integration: Integration.nullable(),
});
export type SyncState = z.infer<typeof SyncState>;
