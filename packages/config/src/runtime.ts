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
  /**
   * The MailDomain is being deleted: the ingress treats the domain as unmanaged (no new mail to,
   * from or through it), while the workers still deliver what is queued with its routes, keys and
   * limits (DomainIndex.managed versus DomainIndex.known).
   */
  draining: z.boolean().default(false),
  /** The domain's MX and submission host names: the SNI names its `tls` certificate is served for. */
  hostnames: z.array(z.string().min(1)).default([]),
  /** Resolved from a Secret (secret: the key); the domain's certificate chain (leaf first) and key. */
  tls: z
    .strictObject({
      certificatePem: z.string().min(1),
      privateKeyPem: z.string().min(1),
    })
    .optional(),
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
  const version =
    typeof json === 'object' && json !== null ? (json as { version?: unknown }).version : undefined;
  if (version !== RUNTIME_CONFIG_VERSION) {
    // Said plainly: the usual cause is an operator newer than this data-plane pod.
    throw new ConfigError(
      ConfigErrorCode.InvalidRuntimeConfig,
      `runtime config ${source} has version ${JSON.stringify(version)}; this build reads version ${RUNTIME_CONFIG_VERSION} only`,
    );
  }
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
  /** Every domain, draining ones included, by lower-case name. */
  readonly #byDomain: Map<string, RuntimeDomain>;
  readonly #byUser: Map<string, { domain: RuntimeDomain; user: RuntimeUser }>;
  readonly #byWebhook: Map<string, { domain: RuntimeDomain; webhook: RuntimeWebhook }>;

  constructor(config: RuntimeConfig) {
    this.config = config;
    this.#byDomain = new Map();
    for (const domain of config.domains) {
      const key = domain.domain.toLowerCase();
      const other = this.#byDomain.get(key);
      // A MailDomain being deleted and its successor (say, moved to another namespace) may be
      // listed together for a while: the live one answers for the name.
      if (other === undefined || (other.draining && !domain.draining)) this.#byDomain.set(key, domain);
    }
    // A draining domain's users can no longer log in (nor send as it).
    this.#byUser = new Map(
      config.domains
        .filter((domain) => !domain.draining)
        .flatMap((domain) => domain.users.map((user) => [user.name, { domain, user }])),
    );
    this.#byWebhook = new Map(
      config.domains.flatMap((domain) => domain.webhooks.map((webhook) => [webhook.id, { domain, webhook }])),
    );
  }

  /** Whether any domain has a webhook subscription (lets consumers skip work when none has). */
  get hasWebhooks(): boolean {
    return this.#byWebhook.size > 0;
  }

  /**
   * The webhook subscriptions of a known domain (compared case-insensitively; draining ones too:
   * their queued mail still produces events); none if unknown.
   */
  webhooks(domain: string): readonly RuntimeWebhook[] {
    return this.known(domain)?.webhooks ?? [];
  }

  /** A webhook subscription by id, with its domain: its current URL and secret. */
  webhook(id: string): { domain: RuntimeDomain; webhook: RuntimeWebhook } | undefined {
    return this.#byWebhook.get(id);
  }

  /**
   * The managed domain for a domain name (compared case-insensitively), if any: one the ingress
   * accepts new mail for. A draining domain is not managed.
   */
  managed(domain: string): RuntimeDomain | undefined {
    const found = this.#byDomain.get(domain.toLowerCase());
    return found?.draining ? undefined : found;
  }

  /**
   * The domain for a domain name whether managed or draining (compared case-insensitively): what
   * delivery of mail already queued uses (routes, DKIM keys, limits, webhooks).
   */
  known(domain: string): RuntimeDomain | undefined {
    return this.#byDomain.get(domain.toLowerCase());
  }

  /**
   * A submission user of a managed (not draining) domain by exact name (names are unique across
   * domains; compile enforces it).
   */
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
  /** Calls `listener` with the new index after every reload; returns the unsubscribe. */
  onReload(listener: (index: DomainIndex) => void): () => void;
  close(): void;
}

export interface RuntimeConfigLog {
  info(fields: object, msg: string): void;
  error(fields: object, msg: string): void;
}

/** Holds the current index and tells the listeners of every new one. */
class Live {
  index: DomainIndex;
  readonly #listeners = new Set<(index: DomainIndex) => void>();
  readonly #log: RuntimeConfigLog;

  constructor(config: RuntimeConfig, log: RuntimeConfigLog) {
    this.index = new DomainIndex(config);
    this.#log = log;
  }

  replace(config: RuntimeConfig): void {
    this.index = new DomainIndex(config);
    this.#log.info(
      { generation: config.generation, domains: config.domains.length },
      'runtime config reloaded',
    );
    for (const listener of this.#listeners) {
      try {
        listener(this.index);
      } catch (error) {
        this.#log.error({ err: error }, 'runtime config reload listener failed');
      }
    }
  }

  domains(close: () => void): LiveDomains {
    return {
      current: () => this.index,
      onReload: (listener) => {
        this.#listeners.add(listener);
        return () => this.#listeners.delete(listener);
      },
      close: () => {
        this.#listeners.clear();
        close();
      },
    };
  }
}

/** The runtime config from a file (local mode): it must exist at start; reloaded when replaced. */
export async function liveDomains(path: string, log: RuntimeConfigLog): Promise<LiveDomains> {
  const live = new Live(await loadRuntimeConfig(path), log);
  const watcher = watchRuntimeConfig(
    path,
    (next) => live.replace(next),
    (error) => log.error({ err: error }, 'runtime config reload failed; keeping the previous one'),
  );
  return live.domains(() => watcher.close());
}

/**
 * A source of runtime configs that delivers the current one (if any) and every later one;
 * `onWaiting` when there is none yet. `onError` for one that cannot be used.
 */
export type RuntimeConfigWatch = (handlers: {
  onChange(config: RuntimeConfig): void;
  onError(error: unknown): void;
  onWaiting(): void;
}) => { close(): void };

/**
 * The runtime config from a watched source (the operator's Object Store in a cluster). Resolves
 * at the first valid config, however long that takes: a pod started before the operator has
 * published anything waits (saying so once) instead of failing and being restarted over and over.
 * Later invalid configs are reported and the previous one stays in force.
 */
export function liveDomainsFrom(
  watch: RuntimeConfigWatch,
  log: RuntimeConfigLog,
  source: string,
): Promise<LiveDomains> {
  return new Promise((resolve) => {
    let live: Live | undefined;
    let waitingLogged = false;
    const watcher = watch({
      onChange(config) {
        if (live !== undefined) {
          live.replace(config);
          return;
        }
        live = new Live(config, log);
        log.info(
          { source, generation: config.generation, domains: config.domains.length },
          'runtime config loaded',
        );
        resolve(live.domains(() => watcher.close()));
      },
      onError(error) {
        log.error(
          { source, err: error },
          live === undefined
            ? 'runtime config unusable; waiting for a valid one'
            : 'runtime config reload failed; keeping the previous one',
        );
      },
      onWaiting() {
        if (live !== undefined || waitingLogged) return;
        waitingLogged = true;
        log.info({ source }, "waiting for the operator's runtime config");
      },
    });
  });
}

/** Object Store bucket names (as NATS allows them). */
const BUCKET_NAME = /^[A-Za-z0-9_-]+$/;

/**
 * The settings that choose where a data-plane service's runtime config comes from: spread into
 * its settings schema (with `.superRefine(checkRuntimeConfigSource)`) and its variable names.
 */
export const RuntimeConfigSourceSettings = {
  /** Local mode: the file `petrel dev` writes. */
  runtimeConfigPath: z.string().min(1).optional(),
  /** In a cluster: the Object Store bucket the operator publishes to. */
  runtimeConfigStore: z
    .string()
    .regex(BUCKET_NAME, 'must be an Object Store bucket name (letters, digits, - and _)')
    .optional(),
  /** The 32-byte key the store's config is encrypted with (a mounted Secret). */
  configKeyFile: z.string().min(1).optional(),
};

export const RuntimeConfigSourceEnv = {
  runtimeConfigPath: 'PETREL_RUNTIME_CONFIG',
  runtimeConfigStore: 'PETREL_RUNTIME_CONFIG_STORE',
  configKeyFile: 'PETREL_CONFIG_KEY_FILE',
} as const;

export type RuntimeConfigSourceSettings = {
  runtimeConfigPath?: string | undefined;
  runtimeConfigStore?: string | undefined;
  configKeyFile?: string | undefined;
};

export type RuntimeConfigSource =
  | { readonly kind: 'file'; readonly path: string }
  | { readonly kind: 'store'; readonly bucket: string; readonly keyFile: string };

/** The source the settings name, or what is wrong with them (and under which setting). */
function resolveSource(
  settings: RuntimeConfigSourceSettings,
): RuntimeConfigSource | { problem: string; key: keyof RuntimeConfigSourceSettings } {
  const { runtimeConfigPath: path, runtimeConfigStore: bucket, configKeyFile: keyFile } = settings;
  const env = RuntimeConfigSourceEnv;
  if (path !== undefined && bucket !== undefined) {
    return {
      key: 'runtimeConfigPath',
      problem: `set either ${env.runtimeConfigPath} (a file) or ${env.runtimeConfigStore} (an Object Store bucket), not both`,
    };
  }
  if (path !== undefined) {
    return keyFile === undefined
      ? { kind: 'file', path }
      : { key: 'configKeyFile', problem: `only used with ${env.runtimeConfigStore}, not with a file` };
  }
  if (bucket !== undefined) {
    return keyFile !== undefined
      ? { kind: 'store', bucket, keyFile }
      : {
          key: 'configKeyFile',
          problem: `required with ${env.runtimeConfigStore} (the key file of the config)`,
        };
  }
  return {
    key: 'runtimeConfigPath',
    problem: `required: the runtime config file, or ${env.runtimeConfigStore} with ${env.configKeyFile} for the operator's Object Store`,
  };
}

/** For a settings schema's superRefine: exactly one source, and the key file with the store only. */
export function checkRuntimeConfigSource(settings: RuntimeConfigSourceSettings, ctx: z.RefinementCtx): void {
  const source = resolveSource(settings);
  if ('problem' in source) ctx.addIssue({ code: 'custom', message: source.problem, path: [source.key] });
}

/** The runtime config source of checked settings (throws for unchecked, inconsistent ones). */
export function runtimeConfigSource(settings: RuntimeConfigSourceSettings): RuntimeConfigSource {
  const source = resolveSource(settings);
  if ('problem' in source) {
    throw new ConfigError(
      ConfigErrorCode.InvalidRuntimeConfig,
      `${RuntimeConfigSourceEnv[source.key]}: ${source.problem}`,
    );
  }
  return source;
}
