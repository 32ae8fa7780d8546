export { LocalEnvError, LocalEnvErrorCode } from './errors.ts';
export { buildWithGo, cacheDir, type GoBuildOptions } from './go-build.ts';
export {
  type FindNatsServerOptions,
  findNatsServer,
  NATS_SERVER_VERSION,
  type NatsServerHandle,
  type NatsServerOptions,
  startNatsServer,
} from './nats.ts';
export { freePort } from './ports.ts';
export { type PostgresHandle, type PostgresOptions, startPostgres } from './postgres.ts';
export { ManagedProcess, type ManagedProcessOptions } from './process.ts';
