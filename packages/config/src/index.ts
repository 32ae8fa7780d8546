export { settingsFromEnv } from './env.ts';
export { ConfigError, ConfigErrorCode } from './errors.ts';
export {
  API_GROUP,
  API_VERSION,
  InboundRouteSchema,
  type MailDomain,
  MailDomainSchema,
  MailDomainSpecSchema,
  type Secret,
  SecretKeyRefSchema,
  SecretSchema,
  SubmissionUserSchema,
} from './manifests.ts';
export {
  DomainIndex,
  type LiveDomains,
  liveDomains,
  loadRuntimeConfig,
  parseRuntimeConfig,
  RUNTIME_CONFIG_VERSION,
  type RuntimeConfig,
  RuntimeConfigSchema,
  type RuntimeDomain,
  watchRuntimeConfig,
} from './runtime.ts';
