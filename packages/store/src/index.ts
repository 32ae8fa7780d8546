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
export {
  DEFAULT_RETENTION_DAYS,
  dropExpiredPartitions,
  ensurePartitions,
  utcDay,
} from './partitions.ts';
export { pgText } from './text.ts';
