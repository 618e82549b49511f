// The node:http layer: reads requests, applies faults, dispatches to the OAuth, Calendar and
// control handlers, logs calls, and writes (or drops) the answer. Handlers return a Reply
// instead of writing, so a fault can commit a change and then destroy the socket.

import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { EmulatorState, CallLogEntry } from './state.js';
import {
  ApiError,
  AuthPageError,
  ControlError,
  JSON_CONTENT_TYPE,
  OAuthError,
  apiError,
} from './errors.js';
import { faultReply, takeFault } from './faults.js';
import { handleOAuth } from './oauth.js';
import { handleCalendar } from './calendar.js';
import { handleControl } from './control-http.js';
import { errorPage } from './consent-page.js';

export interface Reply {
  status: number;
  headers?: Record<string, string>;
  body?: string | Buffer;
}

export interface EmuRequest {
  method: string;
  /** Path and query exactly as received. */
  rawUrl: string;
  /** Path as received (percent-encoded), no query. */
  rawPath: string;
  /** Decoded path segments, without the leading empty one. */
  segments: string[];
  query: URLSearchParams;
  headers: IncomingHttpHeaders;
  bodyText: string;
  /** Origin the client used, e.g. http://127.0.0.1:4010 (no trailing slash). */
  origin: string;
  /** Extras a handler wants in the call log (account, body, sendUpdates). */
  log: Partial<CallLogEntry>;
}

const MAX_BODY_BYTES = 5 * 1024 * 1024;

export function json(status: number, body: unknown, headers: Record<string, string> = {}): Reply {
  return { status, headers: { 'Content-Type': JSON_CONTENT_TYPE, ...headers }, body: JSON.stringify(body) };
}

export function html(status: number, body: string): Reply {
  return { status, headers: { 'Content-Type': 'text/html; charset=utf-8' }, body };
}

export function redirect(location: string): Reply {
  return { status: 302, headers: { Location: location, 'Content-Type': 'text/html; charset=UTF-8' }, body: '' };
}

function renderError(err: unknown): Reply {
  if (err instanceof ApiError) return json(err.status, err.toBody(), err.headers);
  if (err instanceof OAuthError) return json(err.status, err.toBody());
  if (err instanceof AuthPageError) return html(400, errorPage(err.error, err.description));
  if (err instanceof ControlError) {
    const body: Record<string, unknown> = { error: err.message };
    if (err.field !== undefined) body['field'] = err.field;
    return json(err.status, body);
  }
  // Never crash on a bad request: anything unexpected is Google's 500 backendError.
  console.error('[emulator] internal error:', err);
  return json(500, apiError('backendError').toBody());
}

function readBody(req: IncomingMessage): Promise<string | null> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let tooBig = false;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY_BYTES) tooBig = true;
      else chunks.push(c);
    });
    req.on('end', () => resolve(tooBig ? null : Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function queryObject(q: URLSearchParams): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [k, v] of q) {
    const prev = out[k];
    if (prev === undefined) out[k] = v;
    else if (Array.isArray(prev)) prev.push(v);
    else out[k] = [prev, v];
  }
  return out;
}

function splitSegments(rawPath: string): string[] | null {
  try {
    return rawPath
      .split('/')
      .slice(1)
      .map((s) => decodeURIComponent(s));
  } catch {
    return null;
  }
}

function write(res: ServerResponse, reply: Reply): void {
  const body = reply.body ?? '';
  const headers: Record<string, string | number> = { ...reply.headers };
  if (reply.status !== 304 && reply.status !== 204) headers['Content-Length'] = Buffer.byteLength(body);
  res.writeHead(reply.status, headers);
  res.end(reply.status === 304 || reply.status === 204 ? undefined : body);
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function dispatchGoogle(state: EmulatorState, req: EmuRequest): Promise<Reply> {
  const oauth = await handleOAuth(state, req);
  if (oauth) return oauth;
  const first = req.segments[0];
  if (first === 'calendar' && req.segments[1] === 'v3') return handleCalendar(state, req);
  // Everything else, /batch/... included (§6: no batch), is Google's 404.
  return json(404, apiError('notFound').toBody());
}

export function createEmulatorServer(state: EmulatorState): Server {
  const server = createServer((req, res) => {
    void handle(state, req, res).catch((err: unknown) => {
      console.error('[emulator] failed to answer:', err);
      if (!res.headersSent) write(res, json(500, apiError('backendError').toBody()));
      else res.destroy();
    });
  });
  // Keep-alive sockets must not keep close() waiting.
  server.keepAliveTimeout = 5_000;
  return server;
}

async function handle(state: EmulatorState, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const started = Date.now();
  const method = (req.method ?? 'GET').toUpperCase();
  const rawUrl = req.url ?? '/';
  const qIndex = rawUrl.indexOf('?');
  const rawPath = qIndex === -1 ? rawUrl : rawUrl.slice(0, qIndex);
  const query = new URLSearchParams(qIndex === -1 ? '' : rawUrl.slice(qIndex + 1));
  const bodyText = await readBody(req);
  const origin = `http://${req.headers.host ?? '127.0.0.1'}`;
  const isControl = rawPath === '/__emulator' || rawPath.startsWith('/__emulator/');
  const segments = splitSegments(rawPath);

  if (isControl) {
    let reply: Reply;
    try {
      if (bodyText === null) throw new ControlError(413, 'body too large');
      if (segments === null) throw new ControlError(400, 'malformed percent-encoding in path');
      reply = await handleControl(state, {
        method,
        rawUrl,
        rawPath,
        segments,
        query,
        headers: req.headers,
        bodyText,
        origin,
        log: {},
      });
    } catch (err) {
      reply = renderError(err);
    }
    write(res, reply);
    return;
  }

  const entry: CallLogEntry = {
    method,
    path: rawPath,
    status: 0,
    at: new Date(state.now()).toISOString(),
    query: queryObject(query),
  };
  const fault = takeFault(state.faults, method, rawUrl, state.now());
  if (fault) entry.fault = fault.id;
  if (fault && fault.latencyMs > 0) await sleep(fault.latencyMs);

  let reply: Reply;
  let drop = false;
  if (fault?.dropBeforeCommit) {
    drop = true;
    reply = { status: 0 };
  } else if (fault?.status !== undefined && !fault.dropAfterCommit) {
    reply = faultReply(fault, rawPath, state.config.retryAfterS);
  } else {
    const emuReq: EmuRequest = {
      method,
      rawUrl,
      rawPath,
      segments: segments ?? [],
      query,
      headers: req.headers,
      bodyText: bodyText ?? '',
      origin,
      log: {},
    };
    try {
      if (bodyText === null) {
        throw apiError('badRequest', { status: 413, message: 'Request Entity Too Large' });
      }
      if (segments === null) throw apiError('notFound');
      reply = await dispatchGoogle(state, emuReq);
    } catch (err) {
      reply = renderError(err);
    }
    Object.assign(entry, emuReq.log);
    drop = fault?.dropAfterCommit ?? false;
  }

  entry.status = reply.status;
  entry.ms = Date.now() - started;
  if (drop) entry.dropped = true;
  state.recordCall(entry);
  if (drop) {
    req.socket.destroy();
    return;
  }
  write(res, reply);
}
