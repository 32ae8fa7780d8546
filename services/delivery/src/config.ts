import { settingsFromEnv } from '@petrel/config';
import { z } from 'zod';

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
  runtimeConfigPath: z.string().min(1),
  /** Deliver every message here instead of routing (local mode --smarthost). */
  smarthost: hostPort.optional(),
  hostname: z.string().min(1).default('localhost'),
  concurrency: z.coerce.number().int().min(1).max(1000).default(32),
  ackWaitMs: z.coerce.number().int().min(1000).default(60_000),
  connectTimeoutMs: z.coerce.number().int().positive().default(30_000),
  /** Delay before the n-th retry; the last one repeats. The full schedule comes with the delivery issue. */
  retryDelaysMs: z
    .string()
    .default('1000,5000,15000,30000,60000')
    .transform((s) => s.split(',').map(Number))
    .pipe(z.array(z.number().int().positive()).min(1)),
  streamReplicas: z.coerce.number().int().min(1).max(5).default(1),
  /** DNS servers (HOST:PORT, comma-separated) for MX/A/AAAA/TXT/TLSA; empty: the system's. */
  dnsServers: z.string().default(''),
  /** Port of MX hosts (25; tests and benchmarks point it at loopback sinks, local mode --mx-port). */
  mxPort: z.coerce.number().int().min(1).max(65535).default(25),
});
export type DeliveryConfig = z.infer<typeof DeliveryConfigSchema>;

const ENV: Record<keyof DeliveryConfig, string> = {
  natsUrl: 'PETREL_NATS_URL',
  runtimeConfigPath: 'PETREL_RUNTIME_CONFIG',
  smarthost: 'PETREL_SMARTHOST',
  hostname: 'PETREL_HOSTNAME',
  concurrency: 'PETREL_DELIVERY_CONCURRENCY',
  ackWaitMs: 'PETREL_ACK_WAIT_MS',
  connectTimeoutMs: 'PETREL_CONNECT_TIMEOUT_MS',
  retryDelaysMs: 'PETREL_RETRY_DELAYS_MS',
  streamReplicas: 'PETREL_STREAM_REPLICAS',
  dnsServers: 'PETREL_DNS_SERVERS',
  mxPort: 'PETREL_MX_PORT',
};

export function deliveryConfigFromEnv(env: NodeJS.ProcessEnv): DeliveryConfig {
  return settingsFromEnv('delivery', DeliveryConfigSchema, ENV, env);
}
