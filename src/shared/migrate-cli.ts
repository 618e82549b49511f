// `npm run migrate`: applies pending migrations to DATABASE_URL. Safe to run from several hosts at once.
import { migrate } from './migrate';

const databaseUrl = process.env.DATABASE_URL;
if (!databaseUrl) {
  console.error('DATABASE_URL is required: the PostgreSQL (>= 15) database to migrate, e.g. postgres://user@host:5432/cassius');
  process.exit(1);
}
try {
  const applied = await migrate(databaseUrl, { log: (m) => console.log(m) });
  console.log(applied.length ? `applied ${applied.length} migration(s): ${applied.join(', ')}` : 'schema is up to date');
} catch (error) {
  console.error(`migration failed: ${(error as Error).message}`);
  process.exit(1);
}
