// CONTRACT §5, appointments. Every route needs an identity and acts only inside the caller's
// organisation: an appointment of another organisation is "not found" (404), never 403.
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Auth } from '../shared/auth';
import { identityOf } from '../shared/auth';
import type { Db } from '../shared/db';
import { badRequest, errorResponses, notFound } from '../shared/errors';
import { IdParams, IsoDateTime, TimeZoneName, Uuid } from '../shared/validation';
import {
  cancelAppointment,
  deleteAppointment,
  findAppointment,
  insertAppointment,
  listAppointments,
  lockAppointment,
  queueResync,
  SyncStatus,
  timeZoneExists,
  updateAppointment,
  userInOrganisation,
  AppointmentRow,
  type Conn,
} from './sql';

// PostgreSQL text cannot hold NUL characters: refuse them here, naming the field.
const noNul = (s: string) => !s.includes('\u0000');
const Title = z.string().min(1, 'must not be empty').max(1024, 'must be at most 1024 characters').refine(noNul, 'must not contain NUL characters');
const Description = z.string().max(8192, 'must be at most 8192 characters').refine(noNul, 'must not contain NUL characters').nullable();
const Location = z.string().max(1024, 'must be at most 1024 characters').refine(noNul, 'must not contain NUL characters').nullable();

const CreateBody = z
  .object({
    title: Title,
    starts_at: IsoDateTime,
    ends_at: IsoDateTime,
    time_zone: TimeZoneName.optional().describe('IANA zone of the appointment (default UTC)'),
    assigned_user_id: Uuid.nullable().optional().describe('a user of the same organisation; null = unassigned'),
    description: Description.optional(),
    location: Location.optional(),
  })
  .strict()
  .refine((b) => Date.parse(b.ends_at) > Date.parse(b.starts_at), { message: 'must be after starts_at', path: ['ends_at'] });

const PatchBody = z
  .object({
    title: Title.optional(),
    starts_at: IsoDateTime.optional(),
    ends_at: IsoDateTime.optional(),
    time_zone: TimeZoneName.optional(),
    assigned_user_id: Uuid.nullable().optional(),
    description: Description.optional(),
    location: Location.optional(),
  })
  .strict()
  .refine((b) => Object.keys(b).length > 0, { message: 'give at least one field to change' });

const ListQuery = z
  .object({
    from: IsoDateTime.optional().describe('only appointments ending after this instant'),
    to: IsoDateTime.optional().describe('only appointments starting before this instant'),
    limit: z.coerce.number({ message: 'must be a number' }).int('must be a whole number').min(1).max(5000).default(1000),
  })
  .refine((q) => !q.from || !q.to || Date.parse(q.to) > Date.parse(q.from), { message: 'must be after from', path: ['to'] });

// The API shape: the row without its V1 columns, which are grouped under `sync`.
export const Appointment = AppointmentRow.omit({ sync_status: true, external_event_id: true, last_synced_at: true, last_error: true }).extend({
  id: z.string().uuid(),
  organisation_id: z.string().uuid(),
  assigned_user_id: z.string().uuid().nullable(),
  sync: z.object({
    status: SyncStatus.describe('disabled: no connected integration targets it, or its sync is off'),
    external_event_id: z.string().nullable(),
    last_synced_at: z.string().nullable(),
    last_error: z.string().nullable(),
  }),
});
export type Appointment = z.infer<typeof Appointment>;

export function toAppointment(row: AppointmentRow): Appointment {
  const { sync_status, external_event_id, last_synced_at, last_error, ...rest } = row;
  return { ...rest, sync: { status: sync_status, external_event_id, last_synced_at, last_error } };
}

export type AppointmentsPluginOptions = { db: Db; auth: Auth };

export const appointmentsPlugin: FastifyPluginAsyncZod<AppointmentsPluginOptions> = async (app, { db, auth }) => {
  app.addHook('onRequest', auth.requireIdentity);
  const tags = ['appointments'];
  const security: Record<string, string[]>[] = [{ bearer: [] }, { cookie: [] }];

  async function checkReferences(conn: Conn, organisationId: string, b: { time_zone?: string; assigned_user_id?: string | null }) {
    if (b.time_zone !== undefined && !(await timeZoneExists(conn, b.time_zone))) {
      throw badRequest(`body.time_zone: '${b.time_zone}' is not a known IANA time zone`);
    }
    if (b.assigned_user_id && !(await userInOrganisation(conn, organisationId, b.assigned_user_id))) {
      // The same answer whether the user does not exist or belongs to another organisation.
      throw badRequest('body.assigned_user_id: no such user in this organisation');
    }
  }

  async function load(organisationId: string, id: string): Promise<Appointment> {
    const row = await findAppointment(db, organisationId, id);
    if (!row) throw notFound('appointment');
    return toAppointment(row);
  }

  app.post(
    '/appointments',
    {
      schema: {
        tags,
        security,
        summary: 'Create an appointment',
        body: CreateBody,
        response: { 201: Appointment, ...errorResponses(400, 401, 403, 413, 415) },
      },
    },
    async (request, reply) => {
      const me = identityOf(request);
      const b = request.body;
      await checkReferences(db, me.organisationId, b);
      const id = await insertAppointment(db, me.organisationId, {
        title: b.title,
        starts_at: b.starts_at,
        ends_at: b.ends_at,
        time_zone: b.time_zone ?? 'UTC',
        assigned_user_id: b.assigned_user_id ?? null,
        description: b.description ?? null,
        location: b.location ?? null,
      });
      return reply.code(201).send(await load(me.organisationId, id));
    },
  );

  app.get(
    '/appointments',
    {
      schema: {
        tags,
        security,
        summary: "The organisation's appointments overlapping [from, to), by start time",
        querystring: ListQuery,
        response: { 200: z.array(Appointment), ...errorResponses(400, 401) },
      },
    },
    async (request) => {
      const me = identityOf(request);
      const rows = await listAppointments(db, me.organisationId, request.query);
      return rows.map(toAppointment);
    },
  );

  app.get(
    '/appointments/:id',
    {
      schema: { tags, security, summary: 'One appointment with its sync state', params: IdParams, response: { 200: Appointment, ...errorResponses(400, 401, 404) } },
    },
    async (request) => load(identityOf(request).organisationId, request.params.id),
  );

  app.patch(
    '/appointments/:id',
    {
      schema: {
        tags,
        security,
        summary: 'Change some fields of an appointment',
        params: IdParams,
        body: PatchBody,
        response: { 200: Appointment, ...errorResponses(400, 401, 403, 404, 413, 415) },
      },
    },
    async (request) => {
      const me = identityOf(request);
      const b = request.body;
      await db.transaction(async (tx) => {
        const current = await lockAppointment(tx, me.organisationId, request.params.id);
        if (!current) throw notFound('appointment');
        await checkReferences(tx, me.organisationId, b);
        const startsAt = b.starts_at ?? current.starts_at;
        const endsAt = b.ends_at ?? current.ends_at;
        if (Date.parse(endsAt) <= Date.parse(startsAt)) {
          throw badRequest(`body.ends_at: must be after starts_at (the appointment would run ${startsAt} to ${endsAt})`);
        }
        await updateAppointment(tx, me.organisationId, request.params.id, b);
      });
      return load(me.organisationId, request.params.id);
    },
  );

  app.post(
    '/appointments/:id/cancel',
    {
      schema: { tags, security, summary: 'Cancel (status = cancelled); the Google event is deleted', params: IdParams, response: { 200: Appointment, ...errorResponses(400, 401, 403, 404) } },
    },
    async (request) => {
      const me = identityOf(request);
      if (!(await cancelAppointment(db, me.organisationId, request.params.id))) throw notFound('appointment');
      return load(me.organisationId, request.params.id);
    },
  );

  app.delete(
    '/appointments/:id',
    {
      schema: { tags, security, summary: 'Hard delete; the Google event is deleted too', params: IdParams, response: { 204: z.null().describe('deleted'), ...errorResponses(400, 401, 403, 404) } },
    },
    async (request, reply) => {
      const me = identityOf(request);
      if (!(await deleteAppointment(db, me.organisationId, request.params.id))) throw notFound('appointment');
      return reply.code(204).send(null);
    },
  );

  app.post(
    '/appointments/:id/sync',
    {
      schema: {
        tags,
        security,
        summary: 'Retry: queue this appointment again now (revives a parked failure)',
        params: IdParams,
        response: { 202: z.object({ queued: z.literal(true), appointment_id: z.string().uuid() }), ...errorResponses(400, 401, 403, 404) },
      },
    },
    async (request, reply) => {
      const me = identityOf(request);
      const queued = await db.transaction((tx) => queueResync(tx, me.organisationId, request.params.id));
      if (!queued) throw notFound('appointment');
      return reply.code(202).send({ queued: true as const, appointment_id: request.params.id });
    },
  );
};
