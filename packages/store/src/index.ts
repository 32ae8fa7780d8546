export {
  ensureDatabase,
  loadMigrations,
  MIGRATIONS_DIR,
  type MigrateResult,
  type Migration,
  migrate,
  StoreError,
  StoreErrorCode,
} from './migrate.ts';
