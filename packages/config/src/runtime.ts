import { watch } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { z } from 'zod';
import { ConfigError, ConfigErrorCode } from './errors.ts';
import { WEBHOOK_EVENTS } from './manifests.ts';

/**
 * The runtime config: what the operator (or `petrel dev`'s local mode) compiles from the
 * manifests and what the data plane (ingress, delivery) loads and hot-reloads, without any
 * Kubernetes API access. Versioned: a data-plane pod refuses a config version it does not know.
 */
export const RUNTIME_CONFIG_VERSION = 1;

export const RuntimeRouteSchema = z.strictObject({
  host: z.string().min(1),
  port: z.number().int().min(1).max(65535),
  protocol: z.enum(['smtp', 'lmtp']),
});

export const RuntimeUserSchema = z.strictObject({
  name: z.string().min(1),
  /** Resolved from the referenced Secret at compile time; hence the file is mode 0600. */
  password: z.string().min(1),
  allowedSenders: z.array(z.string()),
});

export const RuntimeInboundSchema = z.strictObject({
  checks: z.strictObject({
    spf: z.boolean(),
    dkim: z.boolean(),
    dmarc: z.boolean(),
    arc: z.boolean(),
    dmarcReject: z.boolean(),
  }),
  greylisting: z.strictObject({
    enabled: z.boolean(),
    delaySeconds: z.number().int().positive(),
    expireSeconds: z.number().int().positive(),
  }),
  tarpit: z.strictObject({ enabled: z.boolean(), delayMs: z.number().int().nonnegative() }),
});

/** A webhook subscription of a domain (MailDomain spec.webhooks), its secret resolved. */
export const RuntimeWebhookSchema = z.strictObject({
  /** `<namespace>/<maildomain>/<name>`: stable across compiles; the jobs and the delivery log use it. */
  id: z.string().min(1),
  name: z.string().min(1),
  url: z.url({ protocol: /^https?$/ }),
  events: z.array(z.enum(WEBHOOK_EVENTS)).min(1),
  /** Resolved from the referenced Secret at compile time (the file is mode 0600); the HMAC key. */
  secret: z.string().min(1),
});

export const RuntimeDomainSchema = z.strictObject({
  /** Namespace/name of the MailDomain this came from. */
  source: z.string(),
  domain: z.string().min(1),
  inboundRoutes: z.array(RuntimeRouteSchema),
  users: z.array(RuntimeUserSchema),
  inbound: RuntimeInboundSchema,
  /** Resolved from Secrets at compile time (the file is mode 0600); signs mail from this domain. */
  dkimKeys: z
    .array(
      z.strictObject({
        selector: z.string().min(1),
        algorithm: z.enum(['rsa-sha256', 'ed25519-sha256']),
        privateKeyPem: z.string().min(1),
      }),
    )
    .default([]),
  /** Outbound limits of this domain's senders (MailDomain spec.outbound). */
  outbound: z
    .strictObject({
      ratePerSecond: z.number().positive().optional(),
      queueLifetimeMs: z.number().int().positive().optional(),
    })
    .default({}),
  webhooks: z.array(RuntimeWebhookSchema).default([]),
});

/** A DeliveryPolicy compiled for the workers (Secrets resolved, durations in ms). */
export const RuntimePolicySchema = z.strictObject({
  /** Namespace/name of the DeliveryPolicy; also the key of its cluster-wide limits. */
  source: z.string().min(1),
  domains: z.array(z.string().min(1)),
  mxHostSuffixes: z.array(z.string().min(1)),
  ratePerSecond: z.number().positive().optional(),
  maxConnections: z.number().int().positive().optional(),
  messagesPerConnection: z.number().int().positive().optional(),
  tls: z.enum(['opportunistic', 'encrypted', 'verified']),
  retryDelaysMs: z.array(z.number().int().positive()).optional(),
  adaptive: z.boolean(),
  relay: z
    .strictObject({
      host: z.string().min(1),
      port: z.number().int().min(1).max(65535),
      username: z.string().min(1).optional(),
      password: z.string().min(1).optional(),
    })
    .optional(),
});

export const RuntimeConfigSchema = z.strictObject({
  version: z.literal(RUNTIME_CONFIG_VERSION),
  /** Increases with every compile; lets the data plane log which config it runs. */
  generation: z.number().int().nonnegative(),
  domains: z.array(RuntimeDomainSchema),
  policies: z.array(RuntimePolicySchema).default([]),
});
export type RuntimeConfig = z.infer<typeof RuntimeConfigSchema>;
export type RuntimeDomain = z.infer<typeof RuntimeDomainSchema>;
export type RuntimeUser = z.infer<typeof RuntimeUserSchema>;
export type RuntimeInbound = z.infer<typeof RuntimeInboundSchema>;
export type RuntimePolicy = z.infer<typeof RuntimePolicySchema>;
export type RuntimeWebhook = z.infer<typeof RuntimeWebhookSchema>;

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object') {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}

export function parseRuntimeConfig(json: unknown, source: string): RuntimeConfig {
  const result = RuntimeConfigSchema.safeParse(json);
  if (!result.success) {
    throw new ConfigError(
      ConfigErrorCode.InvalidRuntimeConfig,
      `invalid runtime config ${source}:\n${z.prettifyError(result.error)}`,
    );
  }
  return deepFreeze(result.data);
}

export async function loadRuntimeConfig(path: string): Promise<RuntimeConfig> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new ConfigError(ConfigErrorCode.RuntimeConfigUnreadable, `cannot read runtime config ${path}`, {
      cause: error,
    });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new ConfigError(ConfigErrorCode.InvalidRuntimeConfig, `runtime config ${path} is not JSON`, {
      cause: error,
    });
  }
  return parseRuntimeConfig(json, path);
}

/** Fast lookups over a runtime config, rebuilt on every reload. */
export class DomainIndex {
  readonly config: RuntimeConfig;
  readonly #byDomain: Map<string, RuntimeDomain>;
  readonly #byUser: Map<string, { domain: RuntimeDomain; user: RuntimeUser }>;
  readonly #byWebhook: Map<string, { domain: RuntimeDomain; webhook: RuntimeWebhook }>;

  constructor(config: RuntimeConfig) {
    this.config = config;
    this.#byDomain = new Map(config.domains.map((d) => [d.domain, d]));
    this.#byUser = new Map(
      config.domains.flatMap((domain) => domain.users.map((user) => [user.name, { domain, user }])),
    );
    this.#byWebhook = new Map(
      config.domains.flatMap((domain) => domain.webhooks.map((webhook) => [webhook.id, { domain, webhook }])),
    );
  }

  /** Whether any domain has a webhook subscription (lets consumers skip work when none has). */
  get hasWebhooks(): boolean {
    return this.#byWebhook.size > 0;
  }

  /** The webhook subscriptions of a managed domain (compared case-insensitively); none if unmanaged. */
  webhooks(domain: string): readonly RuntimeWebhook[] {
    return this.managed(domain)?.webhooks ?? [];
  }

  /** A webhook subscription by id, with its domain: its current URL and secret. */
  webhook(id: string): { domain: RuntimeDomain; webhook: RuntimeWebhook } | undefined {
    return this.#byWebhook.get(id);
  }

  /** The managed domain for a domain name (compared case-insensitively), if any. */
  managed(domain: string): RuntimeDomain | undefined {
    return this.#byDomain.get(domain.toLowerCase());
  }

  /** A submission user by exact name (names are unique across domains; compile enforces it). */
  user(name: string): { domain: RuntimeDomain; user: RuntimeUser } | undefined {
    return this.#byUser.get(name);
  }
}

/**
 * Reloads the runtime config whenever its file is replaced (the writer renames a new file into
 * place, so the directory is watched, not the old inode). An invalid new file is reported and
 * the previous config stays in force.
 */
export function watchRuntimeConfig(
  path: string,
  onChange: (config: RuntimeConfig) => void,
  onError: (error: unknown) => void,
): { close(): void } {
  const dir = dirname(path);
  const file = basename(path);
  let timer: NodeJS.Timeout | undefined;
  const watcher = watch(dir, (_event, name) => {
    if (name !== file) return;
    clearTimeout(timer);
    timer = setTimeout(() => {
      loadRuntimeConfig(path).then(onChange, onError);
    }, 50);
  });
  watcher.on('error', onError);
  return {
    close() {
      clearTimeout(timer);
      watcher.close();
    },
  };
}

/** The current domains of a running service: loaded once, then replaced on every valid reload. */
export interface LiveDomains {
  current(): DomainIndex;
  close(): void;
}

export async function liveDomains(
  path: string,
  log: { info(fields: object, msg: string): void; error(fields: object, msg: string): void },
): Promise<LiveDomains> {
  let index = new DomainIndex(await loadRuntimeConfig(path));
  const watcher = watchRuntimeConfig(
    path,
    (next) => {
      index = new DomainIndex(next);
      log.info({ generation: next.generation, domains: next.domains.length }, 'runtime config reloaded');
    },
    (error) => log.error({ err: error }, 'runtime config reload failed; keeping the previous one'),
  );
  return { current: () => index, close: () => watcher.close() };
}
