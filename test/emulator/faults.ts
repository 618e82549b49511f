// Fault injection (CONTRACT §8 POST /__emulator/faults): the next `count` matching calls, or
// those during `for_ms`, answer an error, wait, or commit and then drop the connection.

import { REASONS, REASON_FOR_STATUS, unavailableBody, JSON_CONTENT_TYPE } from './errors.js';
import type { Reply } from './http.js';

export interface Fault {
  id: string;
  /** Upper-case HTTP method, or undefined for any. */
  method?: string;
  /** Prefix of the URL as received (percent-encoded path, then query). */
  pathPrefix?: string;
  status?: number;
  reason?: string;
  /** Calls still to affect; null when only `for_ms` bounds the fault. */
  remaining: number | null;
  /** Emulator-clock instant after which the fault is inactive; null when only `count` bounds it. */
  until: number | null;
  latencyMs: number;
  /** Perform the change, then destroy the socket without an answer. */
  dropAfterCommit: boolean;
  /** Destroy the socket without performing anything (a plain network error). */
  dropBeforeCommit: boolean;
  /** Per-fault Retry-After seconds (else the global switch applies to rate-limit answers). */
  retryAfterS?: number;
  hits: number;
}

export interface FaultInput {
  method?: string;
  path_prefix?: string;
  status?: number;
  reason?: string;
  count?: number;
  for_ms?: number;
  latency_ms?: number;
  drop_after_commit?: boolean;
  drop_before_commit?: boolean;
  retry_after_s?: number;
}

let faultSeq = 0;

export function makeFault(input: FaultInput, now: number): Fault {
  const status = input.status ?? (input.reason !== undefined ? REASONS[input.reason]?.status : undefined);
  const reason = input.reason ?? (status !== undefined ? REASON_FOR_STATUS[status] : undefined);
  const fault: Fault = {
    id: `fault-${++faultSeq}`,
    remaining: input.count ?? (input.for_ms !== undefined ? null : 1),
    until: input.for_ms !== undefined ? now + input.for_ms : null,
    latencyMs: input.latency_ms ?? 0,
    dropAfterCommit: input.drop_after_commit ?? false,
    dropBeforeCommit: input.drop_before_commit ?? false,
    hits: 0,
  };
  if (input.method !== undefined) fault.method = input.method.toUpperCase();
  if (input.path_prefix !== undefined) fault.pathPrefix = input.path_prefix;
  if (status !== undefined) fault.status = status;
  if (reason !== undefined) fault.reason = reason;
  if (input.retry_after_s !== undefined) fault.retryAfterS = input.retry_after_s;
  return fault;
}

function isActive(f: Fault, now: number): boolean {
  if (f.remaining !== null && f.remaining <= 0) return false;
  if (f.until !== null && now >= f.until) return false;
  return true;
}

/** Takes the first active fault matching this call, consuming one of its uses. */
export function takeFault(faults: Fault[], method: string, rawUrl: string, now: number): Fault | undefined {
  for (let i = 0; i < faults.length; i++) {
    const f = faults[i];
    if (!f) continue;
    if (!isActive(f, now)) {
      faults.splice(i, 1);
      i--;
      continue;
    }
    if (f.method !== undefined && f.method !== method.toUpperCase()) continue;
    if (f.pathPrefix !== undefined && !rawUrl.startsWith(f.pathPrefix)) continue;
    f.hits++;
    if (f.remaining !== null) f.remaining--;
    if (!isActive(f, now)) faults.splice(i, 1);
    return { ...f };
  }
  return undefined;
}

export function pruneFaults(faults: Fault[], now: number): Fault[] {
  return faults.filter((f) => isActive(f, now));
}

const OAUTH_PATHS = ['/token', '/revoke', '/o/oauth2/', '/tokeninfo'];

/** The answer of a fault with a status: Google's error body for its reason, in the endpoint's dialect. */
export function faultReply(fault: Fault, path: string, globalRetryAfterS: number | null): Reply {
  const status = fault.status ?? 500;
  const headers: Record<string, string> = { 'Content-Type': JSON_CONTENT_TYPE };
  const retryAfter = fault.retryAfterS ?? (isRateLimit(status, fault.reason) ? globalRetryAfterS : null);
  if (retryAfter !== null && retryAfter !== undefined) headers['Retry-After'] = String(retryAfter);
  if (OAUTH_PATHS.some((p) => path === p || path.startsWith(p))) {
    // OAuth endpoints speak {"error","error_description"} (§1.2).
    const error = fault.reason ?? (status >= 500 ? 'internal_failure' : 'invalid_request');
    return { status, headers, body: JSON.stringify({ error, error_description: 'Emulated fault.' }) };
  }
  if (status === 503 && (fault.reason === undefined || REASONS[fault.reason] === undefined)) {
    return { status, headers, body: JSON.stringify(unavailableBody()) };
  }
  const reason = fault.reason ?? 'backendError';
  const spec = REASONS[reason];
  const item = { domain: spec?.domain ?? 'global', reason, message: spec?.message ?? reason };
  const error: Record<string, unknown> = { errors: [item], code: status, message: item.message };
  if (spec?.grpcStatus !== undefined) error['status'] = spec.grpcStatus;
  if (status === 401) {
    headers['WWW-Authenticate'] = 'Bearer realm="https://accounts.google.com/", error=invalid_token';
  }
  return { status, headers, body: JSON.stringify({ error }) };
}

function isRateLimit(status: number, reason: string | undefined): boolean {
  return status === 429 || reason === 'rateLimitExceeded' || reason === 'userRateLimitExceeded' || reason === 'quotaExceeded';
}
