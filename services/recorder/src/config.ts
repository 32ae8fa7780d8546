import {
  checkRuntimeConfigSource,
  RuntimeConfigSourceEnv,
  RuntimeConfigSourceSettings,
  settingsFromEnv,
} from '@petrel/config';
import { z } from 'zod';

/** The recorder's settings, from the environment (docs/operations.md lists them). */
export const RecorderConfigSchema = z.strictObject({
  natsUrl: z.string().min(1),
  databaseUrl: z.string().min(1),
  /**
   * The runtime config (webhook subscriptions per MailDomain): PETREL_RUNTIME_CONFIG (a file), or
   * PETREL_RUNTIME_CONFIG_STORE with PETREL_CONFIG_KEY_FILE.
   */
  ...RuntimeConfigSourceSettings,
  httpHost: z.string().min(1).default('0.0.0.0'),
  httpPort: z.coerce.number().int().min(0).max(65535).default(8080),
  /** The API's bearer tokens, one per line: a mounted Secret (re-read when it changes). */
  apiTokenFile: z.string().default(''),
  /** A single token given directly (local mode writes it to the data dir instead). */
  apiToken: z.string().default(''),
  /** Days the state tables keep (whole day partitions are dropped after). */
  retentionDays: z.coerce.number().int().min(1).max(3650).default(30),
  /** Events per Postgres transaction. */
  batchEvents: z.coerce.number().int().min(1).max(50_000).default(5_000),
  streamReplicas: z.coerce.number().int().min(1).max(5).default(1),
  /** Default expiry of a suppression added through the API. */
  suppressionMs: z.coerce
    .number()
    .int()
    .positive()
    .default(30 * 86_400_000),
  /** Run webhooks in this process (one deployment may leave them to another). */
  webhooks: z
    .enum(['true', 'false'])
    .default('true')
    .transform((v) => v === 'true'),
});
export type RecorderConfig = z.infer<typeof RecorderConfigSchema>;

const ENV: Record<keyof RecorderConfig, string> = {
  natsUrl: 'PETREL_NATS_URL',
  databaseUrl: 'PETREL_DATABASE_URL',
  ...RuntimeConfigSourceEnv,
  httpHost: 'PETREL_HTTP_HOST',
  httpPort: 'PETREL_HTTP_PORT',
  apiTokenFile: 'PETREL_API_TOKEN_FILE',
  apiToken: 'PETREL_API_TOKEN',
  retentionDays: 'PETREL_RETENTION_DAYS',
  batchEvents: 'PETREL_RECORDER_BATCH_EVENTS',
  streamReplicas: 'PETREL_STREAM_REPLICAS',
  suppressionMs: 'PETREL_SUPPRESSION_MS',
  webhooks: 'PETREL_WEBHOOKS',
};

export function recorderConfigFromEnv(env: NodeJS.ProcessEnv): RecorderConfig {
  return settingsFromEnv('recorder', RecorderConfigSchema.superRefine(checkRuntimeConfigSource), ENV, env);
}
