import {
  checkRuntimeConfigSource,
  RuntimeConfigSourceEnv,
  RuntimeConfigSourceSettings,
  settingsFromEnv,
} from '@petrel/config';
import { z } from 'zod';

/** A listener port; "off" disables the listener. */
const listenerPort = z.union([z.literal('off'), z.coerce.number().int().min(0).max(65535)]);

/** Comma-separated CIDR list, e.g. "10.0.0.0/8,fd00::/8"; empty means none. */
const networks = z
  .string()
  .default('')
  .transform((s, ctx) => {
    const list = s
      .split(',')
      .map((x) => x.trim())
      .filter((x) => x !== '');
    for (const cidr of list) {
      if (!/^[0-9a-fA-F:.]+\/\d{1,3}$/.test(cidr)) {
        ctx.addIssue({ code: 'custom', message: `not a CIDR network: ${cidr}` });
      }
    }
    return list;
  });

const bool = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'])
  .default('false')
  .transform((v) => v === 'true' || v === '1' || v === 'yes');

/**
 * The ingress's own settings, from the environment (set by the Helm chart or by `petrel dev`).
 * Domains, users and certificates are not here: they come from the runtime config and the
 * certificate directory, both reloaded without a restart.
 */
export const IngressConfigSchema = z.strictObject({
  natsUrl: z.string().min(1),
  /** PETREL_RUNTIME_CONFIG (a file), or PETREL_RUNTIME_CONFIG_STORE with PETREL_CONFIG_KEY_FILE. */
  ...RuntimeConfigSourceSettings,
  smtpHost: z.string().default('0.0.0.0'),
  /** Port-25 semantics (MX). */
  smtpPort: listenerPort.default(25),
  /** Port-587 semantics (submission: STARTTLS, then AUTH). */
  submissionPort: listenerPort.default(587),
  /** Port-465 semantics (implicit TLS, AUTH). */
  smtpsPort: listenerPort.default(465),
  /** Liveness and readiness over HTTP; "off" disables it. */
  healthPort: listenerPort.default(8080),
  healthHost: z.string().default('0.0.0.0'),
  hostname: z.string().min(1).default('localhost'),
  /** Where RCPT TO:<Postmaster> without a domain goes (RFC 5321 §4.5.1); default postmaster@<hostname>. */
  postmaster: z.string().min(3).optional(),
  /** Kubernetes TLS-Secret-style directory: <dir>/<name>/tls.crt + tls.key. */
  tlsDir: z.string().default('/etc/petrel/tls'),
  /** Local mode: generate a self-signed certificate when the directory has none. */
  tlsSelfSigned: bool,
  /** Load-balancer networks whose connections start with a PROXY header, per listener. */
  smtpProxyNetworks: networks,
  submissionProxyNetworks: networks,
  smtpsProxyNetworks: networks,
  /** Networks allowed to use ETRN without authenticating (RFC 1985). */
  etrnNetworks: networks,
  /**
   * Networks whose clients may relay to any domain without AUTH on the MX listener (Postfix's
   * mynetworks): the organisation's own senders. Empty (the default): none, loopback included.
   */
  relayNetworks: networks,
  maxMessageSize: z.coerce
    .number()
    .int()
    .positive()
    .default(25 * 1024 * 1024),
  maxRecipients: z.coerce.number().int().positive().default(100),
  maxConnections: z.coerce.number().int().positive().default(10_000),
  maxConnectionsPerAddress: z.coerce.number().int().positive().default(50),
  maxErrors: z.coerce.number().int().positive().default(20),
  maxCommands: z.coerce.number().int().positive().default(100_000),
  idleTimeoutMs: z.coerce.number().int().positive().default(300_000),
  dataTimeoutMs: z.coerce.number().int().positive().default(180_000),
  minDataRate: z.coerce.number().int().nonnegative().default(128),
  bareLineEndings: z.enum(['reject', 'normalize']).default('reject'),
  /** Name the authenticated identity in the Received field (off by default: privacy). */
  receivedAuthIdentity: bool,
  /** DNS servers (host:port, comma-separated) for SPF/DKIM/DMARC; empty: the system's. */
  dnsServers: z.string().default(''),
  publishTimeoutMs: z.coerce.number().int().positive().default(10_000),
  shutdownGraceMs: z.coerce.number().int().nonnegative().default(30_000),
  streamReplicas: z.coerce.number().int().min(1).max(5).default(1),
});
export type IngressConfig = z.infer<typeof IngressConfigSchema>;

const ENV: Record<keyof IngressConfig, string> = {
  natsUrl: 'PETREL_NATS_URL',
  ...RuntimeConfigSourceEnv,
  smtpHost: 'PETREL_SMTP_HOST',
  smtpPort: 'PETREL_SMTP_PORT',
  submissionPort: 'PETREL_SUBMISSION_PORT',
  smtpsPort: 'PETREL_SMTPS_PORT',
  healthPort: 'PETREL_HEALTH_PORT',
  healthHost: 'PETREL_HEALTH_HOST',
  hostname: 'PETREL_HOSTNAME',
  postmaster: 'PETREL_POSTMASTER',
  tlsDir: 'PETREL_TLS_DIR',
  tlsSelfSigned: 'PETREL_TLS_SELF_SIGNED',
  smtpProxyNetworks: 'PETREL_SMTP_PROXY_NETWORKS',
  submissionProxyNetworks: 'PETREL_SUBMISSION_PROXY_NETWORKS',
  smtpsProxyNetworks: 'PETREL_SMTPS_PROXY_NETWORKS',
  etrnNetworks: 'PETREL_ETRN_NETWORKS',
  relayNetworks: 'PETREL_RELAY_NETWORKS',
  maxMessageSize: 'PETREL_MAX_MESSAGE_SIZE',
  maxRecipients: 'PETREL_MAX_RECIPIENTS',
  maxConnections: 'PETREL_MAX_CONNECTIONS',
  maxConnectionsPerAddress: 'PETREL_MAX_CONNECTIONS_PER_ADDRESS',
  maxErrors: 'PETREL_MAX_ERRORS',
  maxCommands: 'PETREL_MAX_COMMANDS',
  idleTimeoutMs: 'PETREL_IDLE_TIMEOUT_MS',
  dataTimeoutMs: 'PETREL_DATA_TIMEOUT_MS',
  minDataRate: 'PETREL_MIN_DATA_RATE',
  bareLineEndings: 'PETREL_BARE_LINE_ENDINGS',
  receivedAuthIdentity: 'PETREL_RECEIVED_AUTH_IDENTITY',
  dnsServers: 'PETREL_DNS_SERVERS',
  publishTimeoutMs: 'PETREL_PUBLISH_TIMEOUT_MS',
  shutdownGraceMs: 'PETREL_SHUTDOWN_GRACE_MS',
  streamReplicas: 'PETREL_STREAM_REPLICAS',
};

export function ingressConfigFromEnv(env: NodeJS.ProcessEnv): IngressConfig {
  return settingsFromEnv('ingress', IngressConfigSchema.superRefine(checkRuntimeConfigSource), ENV, env);
}
