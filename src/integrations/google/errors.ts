// What a failed Google call means for us (google-api.md §5, §6, §8.3). One classification,
// used by the relay (retry / pause / reconnect / give up) and by the server (API answers).
export type GoogleFailureKind =
  | 'transient' // network, timeout, 5xx: retry with backoff
  | 'rate_limited' // 429, 403 rateLimitExceeded / userRateLimitExceeded: pause the account
  | 'usage_limited' // 403 quotaExceeded: the account's calendar is read-only for hours
  | 'auth' // 401: refresh once, then reconnect
  | 'reconnect' // invalid_grant, missing scope: the user must reconnect
  | 'not_found' // 404
  | 'gone' // 410
  | 'duplicate' // 409
  | 'precondition' // 412
  | 'permanent'; // 400, 403 requiredAccessLevel, ...: record, do not retry

export type GoogleFailure = {
  kind: GoogleFailureKind;
  status: number | null;
  reason: string | null;
  message: string;
  retryAfterMs: number | null;
};

type MaybeGaxiosError = Error & {
  status?: number;
  code?: string | number;
  response?: { status?: number; data?: unknown; headers?: { get?: (name: string) => string | null } | Record<string, string> };
};

function header(headers: unknown, name: string): string | null {
  if (!headers) return null;
  if (typeof (headers as { get?: unknown }).get === 'function') return (headers as { get: (n: string) => string | null }).get(name);
  const value = (headers as Record<string, unknown>)[name];
  return typeof value === 'string' ? value : null;
}

function retryAfterMs(value: string | null): number | null {
  if (!value) return null;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const at = Date.parse(value);
  return Number.isNaN(at) ? null : Math.max(0, at - Date.now());
}

export function classifyGoogleError(error: unknown): GoogleFailure {
  const e = error as MaybeGaxiosError;
  const status = e?.response?.status ?? (typeof e?.status === 'number' ? e.status : null);
  const data = e?.response?.data as
    | { error?: string | { errors?: { reason?: string; message?: string }[]; message?: string; status?: string }; error_description?: string }
    | undefined;
  let reason: string | null = null;
  let message = e?.message ?? String(error);
  if (data && typeof data.error === 'object') {
    reason = data.error.errors?.[0]?.reason ?? data.error.status ?? null;
    message = data.error.message ?? data.error.errors?.[0]?.message ?? message;
  } else if (data && typeof data.error === 'string') {
    // OAuth endpoints: {"error":"invalid_grant","error_description":"..."}
    reason = data.error;
    message = data.error_description ? `${data.error}: ${data.error_description}` : data.error;
  }
  const after = retryAfterMs(header(e?.response?.headers, 'retry-after'));
  const failure = (kind: GoogleFailureKind): GoogleFailure => ({ kind, status, reason, message, retryAfterMs: after });

  if (status === null) return failure('transient'); // no response: network error, timeout, reset
  if (reason === 'invalid_grant') return failure('reconnect');
  if (reason === 'insufficientPermissions' || reason === 'ACCESS_TOKEN_SCOPE_INSUFFICIENT') return failure('reconnect');
  if (status === 429 || reason === 'rateLimitExceeded' || reason === 'userRateLimitExceeded') return failure('rate_limited');
  if (reason === 'quotaExceeded') return failure('usage_limited');
  if (status === 401) return failure('auth');
  if (status === 404) return failure('not_found');
  if (status === 410) return failure('gone');
  if (status === 409) return failure('duplicate');
  if (status === 412) return failure('precondition');
  if (status === 408 || status >= 500) return failure('transient');
  return failure('permanent');
}

/** A sentence for people (settings page, last_error): Google's reason and message. */
export function describeGoogleFailure(f: GoogleFailure): string {
  const explanation: Partial<Record<string, string>> = {
    requiredAccessLevel: 'the Google account has only read access to this calendar; choose a calendar it can write to',
    notFound: 'Google could not find this calendar or event (it may have been deleted or unshared)',
    invalid_grant: 'Google refused the saved authorization (revoked or expired); reconnect the account',
    insufficientPermissions: 'the Google account did not grant calendar access; reconnect and allow every permission',
    quotaExceeded: 'Google made this calendar read-only for a while (usage limits); sync resumes automatically',
    rateLimitExceeded: 'Google rate limit reached; retrying automatically',
    userRateLimitExceeded: 'Google rate limit for this account reached; retrying automatically',
  };
  const reason = f.reason ?? (f.status ? `HTTP ${f.status}` : 'network error');
  const human = (f.reason && explanation[f.reason]) || f.message;
  return `Google ${f.status ?? 'unreachable'} ${reason}: ${human}`.slice(0, 1000);
}
