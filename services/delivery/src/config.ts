import {
  checkRuntimeConfigSource,
  RuntimeConfigSourceEnv,
  RuntimeConfigSourceSettings,
  settingsFromEnv,
} from '@petrel/config';
import { z } from 'zod';
import { parseDelays } from './schedule.ts';

const hostPort = z
  .string()
  .regex(/^(\[[0-9a-fA-F:.]+\]|[^:\s]+):\d{1,5}$/, 'must be HOST:PORT')
  .transform((s) => {
    const i = s.lastIndexOf(':');
    return { host: s.slice(0, i).replace(/^\[(.*)\]$/, '$1'), port: Number(s.slice(i + 1)) };
  });

/** The delivery worker's own settings, from the environment. */
export const DeliveryConfigSchema = z.strictObject({
  natsUrl: z.string().min(1),
  /** PETREL_RUNTIME_CONFIG (a file), or PETREL_RUNTIME_CONFIG_STORE with PETREL_CONFIG_KEY_FILE. */
  ...RuntimeConfigSourceSettings,
  /** Deliver every message here instead of routing (local mode --smarthost). */
  smarthost: hostPort.optional(),
  /** SMTP AUTH at the smarthost (only over TLS; the password from a Secret in a cluster). */
  smarthostUsername: z.string().default(''),
  smarthostPassword: z.string().default(''),
  hostname: z.string().min(1).default('localhost'),
  concurrency: z.coerce.number().int().min(1).max(1000).default(100),
  ackWaitMs: z.coerce.number().int().min(1000).default(60_000),
  connectTimeoutMs: z.coerce.number().int().positive().default(30_000),
  /**
   * Delay before the n-th retry (30s, 5m, 4h, 2d or plain ms); the last one repeats. Default:
   * 1m, 5m, 15m, 30m, 1h, 2h, 4h, then every 4h (docs/queue-model.md).
   */
  retryDelaysMs: z
    .string()
    .default('1m,5m,15m,30m,1h,2h,4h')
    .transform((s, ctx) => {
      try {
        return parseDelays(s);
      } catch (error) {
        ctx.addIssue({ code: 'custom', message: (error as Error).message });
        return z.NEVER;
      }
    }),
  /** Queue lifetime: deferred mail bounces (expiry DSN) this long after acceptance. */
  queueLifetimeMs: z
    .string()
    .default('5d')
    .transform((s, ctx) => {
      try {
        return parseDelays(s)[0] as number;
      } catch (error) {
        ctx.addIssue({ code: 'custom', message: (error as Error).message });
        return z.NEVER;
      }
    }),
  /** Open connections per destination host at most (a DeliveryPolicy may lower it). */
  maxConnectionsPerHost: z.coerce.number().int().min(1).max(1000).default(20),
  /** Transactions per connection before it is closed and a new one opened. */
  messagesPerConnection: z.coerce.number().int().min(1).default(100),
  /** An idle pooled connection is closed after this long. */
  connectionIdleMs: z.coerce.number().int().min(0).default(5_000),
  /** HTTPS port of MTA-STS policy hosts (443; tests use a loopback server). */
  mtaStsPort: z.coerce.number().int().min(1).max(65535).default(443),
  /** PEM file of extra CA certificates to trust for next hops and MTA-STS hosts (tests, private CAs). */
  tlsCaFile: z.string().default(''),
  /** Hard-bounced addresses (5.1.1 and kin) are suppressed this long; 0 disables the list. */
  suppressionMs: z.coerce
    .number()
    .int()
    .min(0)
    .default(7 * 24 * 3600 * 1000),
  /** How often shard leases are renewed and rebalanced (their TTL is 15 s; tests shorten this). */
  leaseRenewMs: z.coerce.number().int().min(200).max(5_000).default(5_000),
  streamReplicas: z.coerce.number().int().min(1).max(5).default(1),
  /** DNS servers (HOST:PORT, comma-separated) for MX/A/AAAA/TXT/TLSA; empty: the system's. */
  dnsServers: z.string().default(''),
  /**
   * Trusted DNSSEC-validating resolvers (HOST:PORT, comma-separated) for DANE TLSA lookups (RFC
   * 7672); empty: DANE off. Their AD flag is believed, so they must be local or reached securely.
   */
  daneResolvers: z.string().default(''),
  /** Port of MX hosts (25; tests and benchmarks point it at loopback sinks, local mode --mx-port). */
  mxPort: z.coerce.number().int().min(1).max(65535).default(25),
});
export type DeliveryConfig = z.infer<typeof DeliveryConfigSchema>;

const ENV: Record<keyof DeliveryConfig, string> = {
  natsUrl: 'PETREL_NATS_URL',
  ...RuntimeConfigSourceEnv,
  smarthost: 'PETREL_SMARTHOST',
  smarthostUsername: 'PETREL_SMARTHOST_USERNAME',
  smarthostPassword: 'PETREL_SMARTHOST_PASSWORD',
  hostname: 'PETREL_HOSTNAME',
  concurrency: 'PETREL_DELIVERY_CONCURRENCY',
  ackWaitMs: 'PETREL_ACK_WAIT_MS',
  connectTimeoutMs: 'PETREL_CONNECT_TIMEOUT_MS',
  retryDelaysMs: 'PETREL_RETRY_DELAYS_MS',
  queueLifetimeMs: 'PETREL_QUEUE_LIFETIME',
  suppressionMs: 'PETREL_SUPPRESSION_MS',
  mtaStsPort: 'PETREL_MTA_STS_PORT',
  tlsCaFile: 'PETREL_TLS_CA_FILE',
  maxConnectionsPerHost: 'PETREL_MAX_CONNECTIONS_PER_HOST',
  messagesPerConnection: 'PETREL_MESSAGES_PER_CONNECTION',
  connectionIdleMs: 'PETREL_CONNECTION_IDLE_MS',
  streamReplicas: 'PETREL_STREAM_REPLICAS',
  leaseRenewMs: 'PETREL_LEASE_RENEW_MS',
  dnsServers: 'PETREL_DNS_SERVERS',
  mxPort: 'PETREL_MX_PORT',
  daneResolvers: 'PETREL_DANE_RESOLVERS',
};

export function deliveryConfigFromEnv(env: NodeJS.ProcessEnv): DeliveryConfig {
  return settingsFromEnv('delivery', DeliveryConfigSchema.superRefine(checkRuntimeConfigSource), ENV, env);
}
