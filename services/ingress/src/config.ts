import { settingsFromEnv } from '@petrel/config';
import { z } from 'zod';

/**
 * The ingress's own settings, from the environment (set by the Helm chart or by `petrel dev`).
 * Domains, users and certificates are not here: they come from the runtime config.
 */
export const IngressConfigSchema = z.strictObject({
  natsUrl: z.string().min(1),
  runtimeConfigPath: z.string().min(1),
  smtpHost: z.string().default('0.0.0.0'),
  smtpPort: z.coerce.number().int().min(0).max(65535).default(25),
  hostname: z.string().min(1).default('localhost'),
  maxMessageSize: z.coerce
    .number()
    .int()
    .positive()
    .default(900 * 1024),
  publishTimeoutMs: z.coerce.number().int().positive().default(10_000),
  shutdownGraceMs: z.coerce.number().int().nonnegative().default(30_000),
  streamReplicas: z.coerce.number().int().min(1).max(5).default(1),
});
export type IngressConfig = z.infer<typeof IngressConfigSchema>;

const ENV: Record<keyof IngressConfig, string> = {
  natsUrl: 'PETREL_NATS_URL',
  runtimeConfigPath: 'PETREL_RUNTIME_CONFIG',
  smtpHost: 'PETREL_SMTP_HOST',
  smtpPort: 'PETREL_SMTP_PORT',
  hostname: 'PETREL_HOSTNAME',
  maxMessageSize: 'PETREL_MAX_MESSAGE_SIZE',
  publishTimeoutMs: 'PETREL_PUBLISH_TIMEOUT_MS',
  shutdownGraceMs: 'PETREL_SHUTDOWN_GRACE_MS',
  streamReplicas: 'PETREL_STREAM_REPLICAS',
};

export function ingressConfigFromEnv(env: NodeJS.ProcessEnv): IngressConfig {
  return settingsFromEnv('ingress', IngressConfigSchema, ENV, env);
}
