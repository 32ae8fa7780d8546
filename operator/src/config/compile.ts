import {
  type DeliveryPolicy,
  InboundSchema,
  type MailDomain,
  parseDuration,
  RUNTIME_CONFIG_VERSION,
  type RuntimeConfig,
  RuntimeConfigSchema,
  type RuntimeDomain,
  type RuntimeInbound,
  type RuntimePolicy,
  type RuntimeWebhook,
  type Secret,
} from '@petrel/config';

/** A resource and where it came from (a file and document, or a Kubernetes object), for messages. */
export interface Located<T> {
  readonly value: T;
  readonly where: string;
}

/**
 * What the operator made for a MailDomain beyond its spec: the DKIM keys it generated (those
 * that sign now), the TLS certificate, the host names, and whether it is being deleted.
 */
export interface DomainMaterial {
  readonly dkimKeys: readonly { selector: string; algorithm: string; privateKeyPem: string }[];
  readonly tls?: { certificatePem: string; privateKeyPem: string } | undefined;
  readonly hostnames: readonly string[];
  readonly draining: boolean;
}

export interface CompileInput {
  /** In order of precedence: when two declare the same domain or user, the first keeps it. */
  readonly domains: readonly Located<MailDomain>[];
  readonly policies: readonly Located<DeliveryPolicy>[];
  /** A Secret in a namespace (local mode has one namespace, `default`). */
  secret(namespace: string, name: string): Secret | undefined;
  /** The operator-made material of a domain; none in local mode without generated keys. */
  material?(domain: MailDomain): DomainMaterial | undefined;
  readonly generation: number;
}

/** A problem of one resource; the resource is left out of the runtime config. */
export interface CompileProblem {
  /** `<namespace>/<name>` of the resource. */
  readonly source: string;
  readonly kind: 'MailDomain' | 'DeliveryPolicy';
  readonly where: string;
  readonly message: string;
}

export interface CompileResult {
  readonly config: RuntimeConfig;
  readonly problems: readonly CompileProblem[];
  /** Sources (`<namespace>/<name>`) left out because of their problems. */
  readonly excluded: ReadonlySet<string>;
}

export function sourceOf(resource: MailDomain | DeliveryPolicy): string {
  return `${resource.metadata.namespace ?? 'default'}/${resource.metadata.name}`;
}

/** The parts of a Secret (a manifest, or one read from the API server) its values come from. */
export interface SecretValues {
  data?: Record<string, string> | undefined;
  stringData?: Record<string, string> | undefined;
}

/** A Secret's value as Kubernetes resolves it: stringData wins over base64 data. */
export function secretValue(secret: SecretValues | undefined, key: string): string | undefined {
  const text = secret?.stringData?.[key];
  if (text !== undefined) return text;
  const encoded = secret?.data?.[key];
  return encoded === undefined ? undefined : Buffer.from(encoded, 'base64').toString('utf8');
}

/** A Secret's `data` for text values (base64, as the API server stores them). */
export function secretData(values: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(values).map(([k, v]) => [k, Buffer.from(v).toString('base64')]));
}

const MIN_WEBHOOK_SECRET = 16;

/**
 * Compiles MailDomains and DeliveryPolicies, with the Secrets they reference and the
 * operator's material, into the runtime config the data plane loads. The same code serves the
 * operator in a cluster and its local mode. A resource with a problem is left out and the
 * problem reported with where it came from; the rest still compiles (local mode refuses the
 * whole directory instead, see local/compile.ts).
 */
export function compileRuntimeConfig(input: CompileInput): CompileResult {
  const problems: CompileProblem[] = [];
  const domainNames = new Map<string, string>();
  const userNames = new Map<string, string>();
  const webhookIds = new Map<string, string>();
  const domains: RuntimeDomain[] = [];

  for (const { value, where } of input.domains) {
    const source = sourceOf(value);
    const namespace = value.metadata.namespace ?? 'default';
    const found: string[] = [];
    const label = `${where}: MailDomain ${value.metadata.name}`;
    const other = domainNames.get(value.spec.domain);
    if (other !== undefined)
      found.push(`${where}: domain ${value.spec.domain} is already declared in ${other}`);
    // Claimed even by a resource with problems: the first declaration keeps the name, so a later
    // one never silently takes over a domain whose owner is being repaired.
    domainNames.set(value.spec.domain, where);

    const users: RuntimeDomain['users'] = [];
    for (const user of value.spec.submission?.users ?? []) {
      const userLabel = `${label}: user ${user.name}`;
      const otherUser = userNames.get(user.name);
      if (otherUser !== undefined) found.push(`${userLabel}: user name is already declared in ${otherUser}`);
      userNames.set(user.name, where);
      const ref = user.passwordSecretRef;
      const secret = input.secret(namespace, ref.name);
      const password = secret === undefined ? undefined : secretValue(secret, ref.key);
      if (secret === undefined) found.push(`${userLabel}: Secret ${ref.name} not found`);
      else if (password === undefined) found.push(`${userLabel}: Secret ${ref.name} has no key ${ref.key}`);
      else if (password === '') found.push(`${userLabel}: Secret ${ref.name} key ${ref.key} is empty`);
      else users.push({ name: user.name, password, allowedSenders: user.allowedSenders });
    }

    const material = input.material?.(value);
    const dkimKeys: RuntimeDomain['dkimKeys'] = [...(material?.dkimKeys ?? [])].map((k) => ({
      selector: k.selector,
      algorithm: k.algorithm as 'rsa-sha256' | 'ed25519-sha256',
      privateKeyPem: k.privateKeyPem,
    }));
    for (const key of value.spec.dkim?.keys ?? []) {
      const keyLabel = `${label}: DKIM key ${key.selector}`;
      const ref = key.privateKeySecretRef;
      const secret = input.secret(namespace, ref.name);
      const pem = secret === undefined ? undefined : secretValue(secret, ref.key);
      if (secret === undefined) found.push(`${keyLabel}: Secret ${ref.name} not found`);
      else if (pem === undefined) found.push(`${keyLabel}: Secret ${ref.name} has no key ${ref.key}`);
      else if (!/-----BEGIN (RSA )?PRIVATE KEY-----/.test(pem)) {
        found.push(`${keyLabel}: Secret ${ref.name} key ${ref.key} is not an unencrypted PEM private key`);
      } else dkimKeys.push({ selector: key.selector, algorithm: key.algorithm, privateKeyPem: pem });
    }

    const webhooks: RuntimeWebhook[] = [];
    for (const hook of value.spec.webhooks ?? []) {
      const hookLabel = `${label}: webhook ${hook.name}`;
      const id = `${source}/${hook.name}`;
      const otherHook = webhookIds.get(id);
      if (otherHook !== undefined)
        found.push(`${hookLabel}: webhook id ${id} is already declared in ${otherHook}`);
      webhookIds.set(id, where);
      const ref = hook.secretRef;
      const secret = input.secret(namespace, ref.name);
      const signingSecret = secret === undefined ? undefined : secretValue(secret, ref.key);
      if (secret === undefined) found.push(`${hookLabel}: Secret ${ref.name} not found`);
      else if (signingSecret === undefined)
        found.push(`${hookLabel}: Secret ${ref.name} has no key ${ref.key}`);
      else if (signingSecret.length < MIN_WEBHOOK_SECRET) {
        // A short HMAC key can be guessed from signed payloads; receivers trust what it signs.
        found.push(
          `${hookLabel}: Secret ${ref.name} key ${ref.key} is shorter than ${MIN_WEBHOOK_SECRET} characters; use a random secret of 32 or more`,
        );
      } else
        webhooks.push({ id, name: hook.name, url: hook.url, events: hook.events, secret: signingSecret });
    }

    if (found.length > 0) {
      for (const message of found) problems.push({ source, kind: 'MailDomain', where, message });
      continue;
    }
    domains.push({
      source,
      domain: value.spec.domain,
      inboundRoutes: value.spec.inbound?.routes ?? [],
      users,
      inbound: runtimeInbound(value),
      dkimKeys,
      outbound: {
        ...(value.spec.outbound?.ratePerSecond === undefined
          ? {}
          : { ratePerSecond: value.spec.outbound.ratePerSecond }),
        ...(value.spec.outbound?.queueLifetime === undefined
          ? {}
          : { queueLifetimeMs: parseDuration(value.spec.outbound.queueLifetime) }),
      },
      webhooks,
      ...(material === undefined
        ? {}
        : {
            draining: material.draining,
            hostnames: [...material.hostnames],
            ...(material.tls === undefined ? {} : { tls: material.tls }),
          }),
    } as RuntimeDomain);
  }

  const policies = compilePolicies(input, problems);
  const excluded = new Set(problems.map((p) => p.source));
  const config = RuntimeConfigSchema.parse({
    version: RUNTIME_CONFIG_VERSION,
    generation: input.generation,
    domains,
    policies: policies.filter((p) => !excluded.has(p.source)),
  });
  return { config, problems, excluded };
}

/**
 * DeliveryPolicies with their relay passwords resolved. A destination may be matched by one
 * policy only (per domain pattern and per MX suffix), so that its limits are never ambiguous.
 */
function compilePolicies(input: CompileInput, problems: CompileProblem[]): RuntimePolicy[] {
  const claimed = new Map<string, string>();
  const out: RuntimePolicy[] = [];
  for (const { value, where } of input.policies) {
    const source = sourceOf(value);
    const label = `${where}: DeliveryPolicy ${value.metadata.name}`;
    const found: string[] = [];
    const { spec } = value;
    const keys = [
      ...spec.match.domains.map((d) => `domain ${d}`),
      ...spec.match.mxHostSuffixes.map((s) => `MX host suffix ${s}`),
    ];
    for (const key of keys) {
      const other = claimed.get(key);
      if (other !== undefined) found.push(`${label}: ${key} is already matched by ${other}`);
      claimed.set(key, label);
    }
    let password: string | undefined;
    const auth = spec.relay?.auth;
    if (auth !== undefined) {
      const secret = input.secret(value.metadata.namespace ?? 'default', auth.passwordSecretRef.name);
      password = secret === undefined ? undefined : secretValue(secret, auth.passwordSecretRef.key);
      if (secret === undefined) found.push(`${label}: Secret ${auth.passwordSecretRef.name} not found`);
      else if (password === undefined || password === '')
        found.push(
          `${label}: Secret ${auth.passwordSecretRef.name} has no value for ${auth.passwordSecretRef.key}`,
        );
    }
    if (found.length > 0) {
      for (const message of found) problems.push({ source, kind: 'DeliveryPolicy', where, message });
      continue;
    }
    out.push({
      source,
      domains: spec.match.domains,
      mxHostSuffixes: spec.match.mxHostSuffixes,
      ...(spec.ratePerSecond === undefined ? {} : { ratePerSecond: spec.ratePerSecond }),
      ...(spec.maxConnections === undefined ? {} : { maxConnections: spec.maxConnections }),
      ...(spec.messagesPerConnection === undefined
        ? {}
        : { messagesPerConnection: spec.messagesPerConnection }),
      tls: spec.tls,
      ...(spec.retryDelays === undefined ? {} : { retryDelaysMs: spec.retryDelays.map(parseDuration) }),
      adaptive: spec.adaptive,
      ...(spec.relay === undefined
        ? {}
        : {
            relay: {
              host: spec.relay.host,
              port: spec.relay.port,
              ...(auth === undefined ? {} : { username: auth.username }),
              ...(password ? { password } : {}),
            },
          }),
    });
  }
  return out;
}

/** The inbound settings of a domain with every default filled in. */
function runtimeInbound(domain: MailDomain): RuntimeInbound {
  const inbound = InboundSchema.parse(domain.spec.inbound ?? {});
  return {
    checks: inbound.checks,
    greylisting: {
      enabled: inbound.greylisting.enabled,
      delaySeconds: inbound.greylisting.delaySeconds,
      expireSeconds: inbound.greylisting.expireHours * 3600,
    },
    tarpit: inbound.tarpit,
  };
}
