import { readdir, readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import pg from 'pg';

/** Arbitrary constant key for pg_advisory_lock: serialises migrations across pods starting together. */
const MIGRATION_LOCK_KEY = 0x7e7e1;
const FILE = /^(\d{6})_([a-z0-9_]+)\.sql$/;
/** A migration whose first line is this marker cannot be run against by older code. */
const BREAKING_MARKER = '-- petrel:breaking';

export const StoreErrorCode = {
  SchemaTooNew: 'PETREL_ERR_SCHEMA_TOO_NEW',
  MigrationFailed: 'PETREL_ERR_MIGRATION_FAILED',
} as const;
export type StoreErrorCode = (typeof StoreErrorCode)[keyof typeof StoreErrorCode];

export class StoreError extends Error {
  readonly code: StoreErrorCode;
  constructor(code: StoreErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'StoreError';
    this.code = code;
  }
}

export interface Migration {
  readonly version: number;
  readonly name: string;
  readonly sql: string;
  readonly breaking: boolean;
}

export const MIGRATIONS_DIR = fileURLToPath(new URL('../sql/', import.meta.url));

export async function loadMigrations(dir = MIGRATIONS_DIR): Promise<Migration[]> {
  const files = (await readdir(dir)).filter((f) => FILE.test(f)).sort();
  return await Promise.all(
    files.map(async (file) => {
      const [, version = '', name = ''] = FILE.exec(file) ?? [];
      const sql = await readFile(`${dir}/${file}`, 'utf8');
      return { version: Number(version), name, sql, breaking: sql.startsWith(BREAKING_MARKER) };
    }),
  );
}

export interface MigrateResult {
  readonly applied: number[];
  readonly version: number;
}

/**
 * Applies pending migrations in order, each in its own transaction, under an advisory lock so
 * that several processes may call this at once. Refuses to run when the database carries a
 * breaking migration this code does not know (an older pod against a newer schema).
 */
export async function migrate(
  databaseUrl: string,
  migrations?: readonly Migration[],
): Promise<MigrateResult> {
  const known = migrations ?? (await loadMigrations());
  const latestKnown = known.at(-1)?.version ?? 0;
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK_KEY]);
    await client.query(`CREATE TABLE IF NOT EXISTS petrel_migrations (
      version integer PRIMARY KEY, name text NOT NULL, breaking boolean NOT NULL,
      applied_at timestamptz NOT NULL DEFAULT now())`);
    const { rows } = await client.query<{ version: number; breaking: boolean }>(
      'SELECT version, breaking FROM petrel_migrations ORDER BY version',
    );
    const newerBreaking = rows.find((r) => r.version > latestKnown && r.breaking);
    if (newerBreaking) {
      throw new StoreError(
        StoreErrorCode.SchemaTooNew,
        `database schema has breaking migration ${newerBreaking.version}; this build knows up to ${latestKnown}: upgrade Petrel`,
      );
    }
    const done = new Set(rows.map((r) => r.version));
    const applied: number[] = [];
    for (const m of known) {
      if (done.has(m.version)) continue;
      try {
        await client.query('BEGIN');
        await client.query(m.sql);
        await client.query('INSERT INTO petrel_migrations (version, name, breaking) VALUES ($1, $2, $3)', [
          m.version,
          m.name,
          m.breaking,
        ]);
        await client.query('COMMIT');
      } catch (error) {
        await client.query('ROLLBACK');
        throw new StoreError(StoreErrorCode.MigrationFailed, `migration ${m.version}_${m.name} failed`, {
          cause: error,
        });
      }
      applied.push(m.version);
    }
    const version = Math.max(latestKnown, ...rows.map((r) => r.version));
    return { applied, version };
  } finally {
    await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY]).catch(() => undefined);
    await client.end();
  }
}

/** Creates a database if it does not exist (CREATE DATABASE cannot run in a transaction or take parameters). */
export async function ensureDatabase(serverUrl: string, name: string): Promise<void> {
  if (!/^[a-z_][a-z0-9_]*$/.test(name)) throw new TypeError(`invalid database name ${name}`);
  const client = new pg.Client({ connectionString: serverUrl });
  await client.connect();
  try {
    const { rowCount } = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    if (rowCount === 0) {
      await client.query(`CREATE DATABASE ${name}`).catch((error: unknown) => {
        // A concurrent creator won: fine.
        if (!(error instanceof Error && 'code' in error && error.code === '42P04')) throw error;
      });
    }
  } finally {
    await client.end();
  }
}
