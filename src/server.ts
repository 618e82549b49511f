// `npm run server`: the API server alone (production piece). Configuration is validated once
// at start: a bad or missing variable prints one line naming it and exits 1. SIGTERM / SIGINT
// stop it gracefully (in-flight requests finish, then the pool closes).
import { realpathSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import { buildApp, type AppDeps } from './app';
import { loadServerConfig, orExit, type ServerConfig } from './shared/config';
import { createDb } from './shared/db';

export type RunningServer = { url: string; app: FastifyInstance; close(): Promise<void> };

export async function startServer(config: ServerConfig, options: Pick<AppDeps, 'logger'> = {}): Promise<RunningServer> {
  const db = await createDb(config.DATABASE_URL, { applicationName: 'cassius-server' });
  let app: FastifyInstance;
  try {
    app = await buildApp({ config, db, ...options });
    await app.listen({ port: config.PORT, host: config.HOST });
  } catch (error) {
    await db.end();
    throw error;
  }
  const address = app.server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  let closing: Promise<void> | undefined;
  return {
    url: `http://${host}:${address.port}`,
    app,
    close() {
      closing ??= (async () => {
        await app.close();
        await db.end();
      })();
      return closing;
    },
  };
}

function isMain(): boolean {
  const entry = process.argv[1];
  if (!entry) return false;
  try {
    return realpathSync(entry) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isMain()) {
  const config = orExit(() => loadServerConfig());
  const server = await startServer(config);
  server.app.log.info(`API server listening on ${server.url} (public URL ${config.PUBLIC_URL}; OpenAPI at /docs)`);
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    server.app.log.info(`${signal} received, shutting down`);
    const force = setTimeout(() => process.exit(1), 10_000);
    force.unref();
    server.close().then(
      () => process.exit(0),
      (error: unknown) => {
        console.error(error);
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
}
