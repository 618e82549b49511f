// pino JSON logs. Anything that may hold a token or a session is redacted at every depth we
// log at, so a token never reaches a log line even by accident.
import pino, { type Logger } from 'pino';

export type { Logger };

export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'res.headers["set-cookie"]',
  '*.access_token',
  '*.refresh_token',
  '*.id_token',
  '*.accessToken',
  '*.refreshToken',
  '*.token',
  '*.client_secret',
  '*.code_verifier',
  '*.codeVerifier',
  '*.authorization',
  '*.Authorization',
  'access_token',
  'refresh_token',
  'headers.Authorization',
  'config.headers.Authorization',
  'err.config.headers',
  'err.response.config',
];

export function createLogger(name: string, level = process.env.LOG_LEVEL ?? 'info'): Logger {
  return pino({ name, level, redact: { paths: REDACT_PATHS, censor: '[REDACTED]' } });
}
