// Configuration is read and validated once at start. A bad or missing variable stops the
// process with one line naming it (CONTRACT section 2).
import { z } from 'zod';

const url = (name: string) =>
  z.string({ required_error: `${name} is required` }).url(`${name} must be a URL`);
const base64Key = z
  .string({ required_error: 'TOKEN_ENCRYPTION_KEY is required outside demo mode (32 random bytes, base64)' })
  .refine((v) => Buffer.from(v, 'base64').length === 32, 'TOKEN_ENCRYPTION_KEY must be 32 bytes encoded as base64 (e.g. `openssl rand -base64 32`)');
const positiveInt = (name: string, fallback: number) =>
  z.coerce.number({ invalid_type_error: `${name} must be a number` }).int(`${name} must be a whole number`).positive(`${name} must be positive`).default(fallback);

const common = {
  DATABASE_URL: url('DATABASE_URL').refine((v) => /^postgres(ql)?:\/\//.test(v), 'DATABASE_URL must be a postgres:// URL'),
  TOKEN_ENCRYPTION_KEY: base64Key,
  // Former keys, comma-separated base64, still accepted for decryption during a key rotation.
  TOKEN_ENCRYPTION_OLD_KEYS: z.string().optional(),
  GOOGLE_CLIENT_ID: z.string({ required_error: 'GOOGLE_CLIENT_ID is required outside demo mode' }).min(1, 'GOOGLE_CLIENT_ID must not be empty'),
  GOOGLE_CLIENT_SECRET: z.string({ required_error: 'GOOGLE_CLIENT_SECRET is required outside demo mode' }).min(1, 'GOOGLE_CLIENT_SECRET must not be empty'),
  GOOGLE_AUTH_URL: url('GOOGLE_AUTH_URL').default('https://accounts.google.com/o/oauth2/v2/auth'),
  GOOGLE_TOKEN_URL: url('GOOGLE_TOKEN_URL').default('https://oauth2.googleapis.com/token'),
  GOOGLE_REVOKE_URL: url('GOOGLE_REVOKE_URL').default('https://oauth2.googleapis.com/revoke'),
  // The Google client library keeps only the origin of its rootUrl (google-api.md §8.1).
  GOOGLE_API_URL: url('GOOGLE_API_URL')
    .default('https://www.googleapis.com/')
    .transform((v) => (v.endsWith('/') ? v : `${v}/`)),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], { message: 'LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent' }).default('info'),
  DEMO_MODE: z.enum(['0', '1', 'true', 'false'], { message: 'DEMO_MODE must be 0 or 1' }).default('0').transform((v) => v === '1' || v === 'true'),
};

const serverSchema = z.object({
  ...common,
  PORT: z.coerce.number({ invalid_type_error: 'PORT must be a number' }).int().min(0, 'PORT must be 0-65535').max(65535, 'PORT must be 0-65535').default(3000),
  HOST: z.string().min(1, 'HOST must not be empty').default('127.0.0.1'),
  PUBLIC_URL: url('PUBLIC_URL').optional(),
  APP_SECRET: z
    .string({ required_error: 'APP_SECRET is required outside demo mode (at least 32 bytes)' })
    .refine((v) => Buffer.byteLength(v) >= 32, 'APP_SECRET must be at least 32 bytes'),
});

const relaySchema = z.object({
  ...common,
  RELAY_ID: z.string().min(1).optional(),
  RELAY_METRICS_PORT: z.coerce.number({ invalid_type_error: 'RELAY_METRICS_PORT must be a number' }).int().min(0).max(65535).optional(),
  RELAY_METRICS_HOST: z.string().default('127.0.0.1'),
  // Appointments processed at once by one relay (Google calls in flight).
  RELAY_CONCURRENCY: positiveInt('RELAY_CONCURRENCY', 16),
  // Outbox rows claimed per statement.
  RELAY_BATCH_SIZE: positiveInt('RELAY_BATCH_SIZE', 64),
  // Claim attempts before a row is parked as failed (dead letter).
  RELAY_MAX_ATTEMPTS: positiveInt('RELAY_MAX_ATTEMPTS', 8),
  // How long a claim is owned; a killed relay's rows are claimable again after this.
  RELAY_LEASE_MS: positiveInt('RELAY_LEASE_MS', 30_000),
  // Fallback poll when no notification arrives (a lost NOTIFY never strands a row).
  RELAY_POLL_MS: positiveInt('RELAY_POLL_MS', 1_000),
  // Google quotas: 600/min per user and 10,000/min per project (google-api.md §6); stay well under.
  GOOGLE_RATE_LIMIT_PER_ACCOUNT_PER_MIN: positiveInt('GOOGLE_RATE_LIMIT_PER_ACCOUNT_PER_MIN', 300),
  GOOGLE_RATE_LIMIT_PER_PROJECT_PER_MIN: positiveInt('GOOGLE_RATE_LIMIT_PER_PROJECT_PER_MIN', 6_000),
  // Per-call timeout for Google requests.
  GOOGLE_TIMEOUT_MS: positiveInt('GOOGLE_TIMEOUT_MS', 15_000),
});

export type ServerConfig = z.infer<typeof serverSchema> & { PUBLIC_URL: string };
export type RelayConfig = z.infer<typeof relaySchema>;

export class ConfigError extends Error {}

function parse<S extends z.ZodTypeAny>(schema: S, env: NodeJS.ProcessEnv): z.infer<S> {
  // Empty strings count as unset, as in most shells' `VAR= cmd`.
  const cleaned = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const result = schema.safeParse(cleaned);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    const name = String(issue.path[0] ?? '');
    const message = issue.message.includes(name) ? issue.message : `${name}: ${issue.message}`;
    throw new ConfigError(`Configuration error: ${message}`);
  }
  return result.data;
}

export function loadServerConfig(env: NodeJS.ProcessEnv = process.env): ServerConfig {
  const config = parse(serverSchema, env);
  return { ...config, PUBLIC_URL: (config.PUBLIC_URL ?? `http://localhost:${config.PORT}`).replace(/\/$/, '') };
}

export function loadRelayConfig(env: NodeJS.ProcessEnv = process.env): RelayConfig {
  return parse(relaySchema, env);
}

/** For entry points: prints the one-line reason and exits 1 on a ConfigError. */
export function orExit<T>(load: () => T): T {
  try {
    return load();
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(error.message);
      process.exit(1);
    }
    throw error;
  }
}
