// One error shape for every 4xx/5xx answer: {"error": {"code", "message"}}. Fastify's own
// errors (validation, malformed JSON, body too large, unsupported media type, route not found)
// are mapped onto it; anything unexpected is a 500 with a generic message (logged with the
// request id, never sent: no stack trace leaves the server).
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { hasZodFastifySchemaValidationErrors } from 'fastify-type-provider-zod';
import { z } from 'zod';

export const ErrorBody = z.object({
  error: z.object({
    code: z.string().describe('stable machine-readable code, e.g. invalid_request, not_found, needs_reconnect'),
    message: z.string().describe('what went wrong, for people'),
  }),
});
export type ErrorBody = z.infer<typeof ErrorBody>;

/** An error with its HTTP answer: throw it from a handler. */
export class HttpError extends Error {
  constructor(
    readonly statusCode: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'HttpError';
  }
}

export const badRequest = (message: string, code = 'invalid_request') => new HttpError(400, code, message);
export const notFound = (what = 'resource') => new HttpError(404, 'not_found', `${what} not found`);
export const forbidden = (message: string) => new HttpError(403, 'forbidden', message);
export const conflict = (code: string, message: string) => new HttpError(409, code, message);

export function errorBody(code: string, message: string): ErrorBody {
  return { error: { code, message } };
}

/** The `{status: ErrorBody}` map used in route schemas, for the OpenAPI document. */
export function errorResponses(...statuses: number[]): Record<number, typeof ErrorBody> {
  return Object.fromEntries(statuses.map((s) => [s, ErrorBody]));
}

type ValidationIssue = { instancePath?: string; message?: string; params?: { issue?: z.ZodIssue } };

function describeValidation(error: FastifyError & { validation?: ValidationIssue[]; validationContext?: string }): string {
  const context = error.validationContext ?? 'request';
  const parts = ((error.validation ?? []) as ValidationIssue[]).slice(0, 5).map((v) => {
    const issue = v.params?.issue as z.ZodIssue | undefined;
    const path = issue ? issue.path.join('.') : (v.instancePath ?? '').replace(/^\//, '').replaceAll('/', '.');
    let message = issue?.message ?? v.message ?? 'is invalid';
    if (issue?.code === 'unrecognized_keys') message = `unknown field(s): ${issue.keys.join(', ')}`;
    return `${context}${path ? `.${path}` : ''}: ${message}`;
  });
  return parts.length > 0 ? parts.join('; ') : `${context} is invalid`;
}

// Fastify's error codes for requests it could not even parse, with ours.
const FASTIFY_CODES: Record<string, [number, string, string?]> = {
  FST_ERR_CTP_INVALID_JSON_BODY: [400, 'malformed_json', 'the request body is not valid JSON'],
  FST_ERR_CTP_EMPTY_JSON_BODY: [400, 'malformed_json', 'the request body is empty but Content-Type is application/json'],
  FST_ERR_CTP_BODY_TOO_LARGE: [413, 'payload_too_large'],
  FST_ERR_CTP_INVALID_MEDIA_TYPE: [415, 'unsupported_media_type', 'Content-Type must be application/json'],
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: [400, 'invalid_request', 'Content-Length does not match the body'],
  FST_ERR_CTP_INVALID_CONTENT_TYPE: [415, 'unsupported_media_type', 'Content-Type must be application/json'],
};

// PostgreSQL SQLSTATE classes that mean "the input was bad", should a check slip past the
// schemas: 22 data exception (e.g. a date out of range), 23 integrity constraint.
function postgresState(error: unknown): string | null {
  let e: unknown = error;
  for (let i = 0; i < 4 && e && typeof e === 'object'; i++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code)) return code;
    e = (e as { cause?: unknown }).cause;
  }
  return null;
}

export function toErrorReply(error: unknown): { status: number; body: ErrorBody; unexpected: boolean } {
  if (error instanceof HttpError) return { status: error.statusCode, body: errorBody(error.code, error.message), unexpected: false };
  const e = error as FastifyError & { validation?: ValidationIssue[]; validationContext?: string };
  if (hasZodFastifySchemaValidationErrors(e) || Array.isArray(e?.validation)) {
    return { status: 400, body: errorBody('invalid_request', describeValidation(e)), unexpected: false };
  }
  const known = e?.code ? FASTIFY_CODES[e.code] : undefined;
  if (known) return { status: known[0], body: errorBody(known[1], known[2] ?? e.message), unexpected: false };
  const state = postgresState(error);
  if (state?.startsWith('22')) return { status: 400, body: errorBody('invalid_request', 'a value is out of range or malformed'), unexpected: false };
  if (state === '23503' || state === '23514') {
    return { status: 400, body: errorBody('invalid_request', 'the request breaks a data constraint'), unexpected: false };
  }
  if (state === '23505') return { status: 409, body: errorBody('conflict', 'the resource already exists'), unexpected: false };
  const status = typeof e?.statusCode === 'number' ? e.statusCode : 500;
  if (status >= 400 && status < 500) {
    // Other client errors fastify raises (e.g. prototype poisoning, bad URL): keep its message,
    // which names the problem and never carries a stack.
    const code = status === 404 ? 'not_found' : status === 405 ? 'method_not_allowed' : 'invalid_request';
    return { status, body: errorBody(code, e.message || 'bad request'), unexpected: false };
  }
  return { status: 500, body: errorBody('internal_error', 'an unexpected error occurred; it has been logged'), unexpected: true };
}

export function registerErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((error: unknown, request: FastifyRequest, reply: FastifyReply) => {
    const { status, body, unexpected } = toErrorReply(error);
    if (unexpected) request.log.error({ err: error }, 'unhandled error');
    else if (status >= 500) request.log.warn({ code: body.error.code }, body.error.message);
    void reply.code(status).type('application/json; charset=utf-8').send(body);
  });
  app.setNotFoundHandler((request, reply) => {
    void reply
      .code(404)
      .type('application/json; charset=utf-8')
      .send(errorBody('not_found', `route ${request.method} ${(request.url.split('?')[0] ?? '').slice(0, 200)} not found`));
  });
}
