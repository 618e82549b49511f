// Google's error shapes (google-api.md §5 for the Calendar API, §1.2 / §1.4 for OAuth).
// Handlers throw these; the HTTP layer renders them.

export const JSON_CONTENT_TYPE = 'application/json; charset=UTF-8';

/** One row of google-api.md §5: what a given `reason` looks like on the wire. */
export interface ReasonSpec {
  status: number;
  domain: string;
  message: string;
  /** Newer front-ends add a gRPC-style `status` to some bodies (§5). */
  grpcStatus?: string;
}

// §5 table. Faults with only a `reason` take their status from here.
export const REASONS: Record<string, ReasonSpec> = {
  badRequest: { status: 400, domain: 'global', message: 'Bad Request' },
  invalid: { status: 400, domain: 'global', message: 'Invalid Value' },
  required: { status: 400, domain: 'global', message: 'Required' },
  parseError: { status: 400, domain: 'global', message: 'Parse Error' },
  timeRangeEmpty: { status: 400, domain: 'calendar', message: 'The specified time range is empty.' },
  authError: {
    status: 401,
    domain: 'global',
    message: 'Invalid Credentials',
    grpcStatus: 'UNAUTHENTICATED',
  },
  insufficientPermissions: {
    status: 403,
    domain: 'global',
    message: 'Insufficient Permission',
    grpcStatus: 'PERMISSION_DENIED',
  },
  forbidden: { status: 403, domain: 'global', message: 'Forbidden' },
  requiredAccessLevel: {
    status: 403,
    domain: 'calendar',
    message: 'You need to have writer access to this calendar.',
  },
  forbiddenForNonOrganizer: {
    status: 403,
    domain: 'calendar',
    message: 'Shared properties can only be changed by the organizer of the event.',
  },
  userRateLimitExceeded: { status: 403, domain: 'usageLimits', message: 'User Rate Limit Exceeded' },
  rateLimitExceeded: { status: 403, domain: 'usageLimits', message: 'Rate Limit Exceeded' },
  quotaExceeded: { status: 403, domain: 'usageLimits', message: 'Calendar usage limits exceeded.' },
  notFound: { status: 404, domain: 'global', message: 'Not Found' },
  duplicate: { status: 409, domain: 'global', message: 'The requested identifier already exists.' },
  conflict: { status: 409, domain: 'global', message: 'Conflict' },
  fullSyncRequired: {
    status: 410,
    domain: 'calendar',
    message: 'Sync token is no longer valid, a full sync is required.',
  },
  updatedMinTooLongAgo: {
    status: 410,
    domain: 'calendar',
    message: 'The requested minimum modification time lies too far in the past.',
  },
  deleted: { status: 410, domain: 'global', message: 'Resource has been deleted' },
  conditionNotMet: { status: 412, domain: 'global', message: 'Precondition Failed' },
  backendError: { status: 500, domain: 'global', message: 'Backend Error' },
  internalError: { status: 500, domain: 'global', message: 'Internal Error' },
};

/** Default reason for a fault that names only a status. */
export const REASON_FOR_STATUS: Record<number, string> = {
  400: 'badRequest',
  401: 'authError',
  403: 'rateLimitExceeded',
  404: 'notFound',
  409: 'duplicate',
  410: 'deleted',
  412: 'conditionNotMet',
  429: 'rateLimitExceeded',
  500: 'backendError',
};

export interface ErrorItem {
  domain: string;
  reason: string;
  message: string;
  locationType?: string;
  location?: string;
}

/** A Calendar API error in Google's classic shape, optionally with `status` and `details`. */
export class ApiError extends Error {
  readonly status: number;
  readonly item: ErrorItem;
  readonly topMessage: string;
  readonly grpcStatus: string | undefined;
  readonly details: unknown[] | undefined;
  readonly headers: Record<string, string>;

  constructor(
    status: number,
    item: ErrorItem,
    extra: {
      topMessage?: string;
      grpcStatus?: string;
      details?: unknown[];
      headers?: Record<string, string>;
    } = {},
  ) {
    super(item.message);
    this.status = status;
    this.item = item;
    this.topMessage = extra.topMessage ?? item.message;
    this.grpcStatus = extra.grpcStatus;
    this.details = extra.details;
    this.headers = extra.headers ?? {};
  }

  toBody(): unknown {
    const error: Record<string, unknown> = {
      errors: [this.item],
      code: this.status,
      message: this.topMessage,
    };
    if (this.grpcStatus !== undefined) error['status'] = this.grpcStatus;
    if (this.details !== undefined) error['details'] = this.details;
    return { error };
  }
}

/** An error for a §5 reason, with an optional message override and parameter location. */
export function apiError(
  reason: string,
  opts: { message?: string; status?: number; location?: string; locationType?: string } = {},
): ApiError {
  const spec = REASONS[reason] ?? { status: opts.status ?? 400, domain: 'global', message: reason };
  const item: ErrorItem = {
    domain: spec.domain,
    reason,
    message: opts.message ?? spec.message,
  };
  if (opts.location !== undefined) {
    item.locationType = opts.locationType ?? 'parameter';
    item.location = opts.location;
  }
  const extra: { grpcStatus?: string } = {};
  if (spec.grpcStatus !== undefined) extra.grpcStatus = spec.grpcStatus;
  return new ApiError(opts.status ?? spec.status, item, extra);
}

const AUTH_ERROR_MESSAGE =
  'Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.';

/** §5 row 401: expired, revoked or unknown access token. */
export function invalidCredentials(): ApiError {
  return new ApiError(
    401,
    {
      domain: 'global',
      reason: 'authError',
      message: 'Invalid Credentials',
      locationType: 'header',
      location: 'Authorization',
    },
    {
      topMessage: AUTH_ERROR_MESSAGE,
      grpcStatus: 'UNAUTHENTICATED',
      headers: {
        'WWW-Authenticate': 'Bearer realm="https://accounts.google.com/", error=invalid_token',
      },
    },
  );
}

/** No credentials at all (not in google-api.md; Google's usual "Login Required" answer). */
export function loginRequired(): ApiError {
  return new ApiError(
    401,
    {
      domain: 'global',
      reason: 'required',
      message: 'Login Required.',
      locationType: 'header',
      location: 'Authorization',
    },
    {
      topMessage:
        'Request is missing required authentication credential. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.',
      grpcStatus: 'UNAUTHENTICATED',
      headers: { 'WWW-Authenticate': 'Bearer realm="https://accounts.google.com/"' },
    },
  );
}

/** §5 row 403 insufficientPermissions, with the ErrorInfo detail and the scope challenge (§2.1). */
export function insufficientScopes(rpcMethod: string, acceptedScopes: readonly string[]): ApiError {
  return new ApiError(
    403,
    { domain: 'global', reason: 'insufficientPermissions', message: 'Insufficient Permission' },
    {
      topMessage: 'Request had insufficient authentication scopes.',
      grpcStatus: 'PERMISSION_DENIED',
      details: [
        {
          '@type': 'type.googleapis.com/google.rpc.ErrorInfo',
          reason: 'ACCESS_TOKEN_SCOPE_INSUFFICIENT',
          domain: 'googleapis.com',
          metadata: { service: 'calendar-json.googleapis.com', method: rpcMethod },
        },
      ],
      headers: {
        'WWW-Authenticate': `Bearer realm="https://accounts.google.com/", error="insufficient_scope", scope="${acceptedScopes.join(' ')}"`,
      },
    },
  );
}

/** §5 row 503: no errors[] array in Google's answer (UNCONFIRMED body, as the doc prescribes). */
export function unavailableBody(): unknown {
  return { error: { code: 503, message: 'The service is currently unavailable.', status: 'UNAVAILABLE' } };
}

/** An OAuth endpoint error: `{"error","error_description"}` (§1.2, §1.4). */
export class OAuthError extends Error {
  constructor(
    readonly status: number,
    readonly error: string,
    readonly description: string,
  ) {
    super(`${error}: ${description}`);
  }
  toBody(): unknown {
    return { error: this.error, error_description: this.description };
  }
}

/** A request error on the authorization endpoint: Google shows its own page, never redirects (§1.1). */
export class AuthPageError extends Error {
  constructor(
    readonly error: string,
    readonly description: string,
  ) {
    super(`${error}: ${description}`);
  }
}

/** A bad control-surface request; rendered as `{"error": message, "field": ...}`. */
export class ControlError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly field?: string,
  ) {
    super(message);
  }
}
