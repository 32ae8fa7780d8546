import { chmod, readdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import {
  ConfigError,
  ConfigErrorCode,
  type DeliveryPolicy,
  DeliveryPolicySchema,
  InboundSchema,
  type MailDomain,
  MailDomainSchema,
  parseDuration,
  RUNTIME_CONFIG_VERSION,
  type RuntimeConfig,
  RuntimeConfigSchema,
  type RuntimeInbound,
  type RuntimePolicy,
  type RuntimeWebhook,
  type Secret,
  SecretSchema,
} from '@petrel/config';
import { parseAllDocuments } from 'yaml';
import { z } from 'zod';

/** A manifest and where it came from, for error messages. */
interface Located<T> {
  value: T;
  where: string;
}

const MANIFEST_FILE = /\.(ya?ml|json)$/i;

async function manifestFiles(dir: string): Promise<string[]> {
  let entries: string[];
  try {
    entries = await readdir(dir, { recursive: true });
  } catch (error) {
    throw new ConfigError(ConfigErrorCode.ConfigDirUnreadable, `cannot read config directory ${dir}`, {
      cause: error,
    });
  }
  return entries.filter((e) => MANIFEST_FILE.test(e)).sort();
}

/**
 * Local mode of the operator: reads MailDomain and Secret manifests from a directory and compiles
 * them into the runtime config the data plane loads. Every problem in every file is reported at
 * once; nothing is compiled from a directory with errors.
 */
export async function compileDirectory(dir: string, generation: number): Promise<RuntimeConfig> {
  const problems: string[] = [];
  const domains: Located<MailDomain>[] = [];
  const policies: Located<DeliveryPolicy>[] = [];
  const secrets = new Map<string, Secret>();

  for (const file of await manifestFiles(dir)) {
    const text = await readFile(join(dir, file), 'utf8');
    const docs = parseAllDocuments(text);
    const list = Array.isArray(docs) ? docs : [docs];
    list.forEach((doc, index) => {
      const where = `${relative(dir, join(dir, file))}#${index + 1}`;
      if (doc.errors.length > 0) {
        problems.push(`${where}: YAML error: ${doc.errors[0]?.message ?? 'unknown'}`);
        return;
      }
      const value: unknown = doc.toJS();
      if (value === null || value === undefined) return;
      const kind =
        typeof value === 'object' && 'kind' in value ? (value as { kind: unknown }).kind : undefined;
      if (kind === 'MailDomain') {
        const parsed = MailDomainSchema.safeParse(value);
        if (parsed.success) domains.push({ value: parsed.data, where });
        else problems.push(`${where}: invalid MailDomain:\n${z.prettifyError(parsed.error)}`);
      } else if (kind === 'DeliveryPolicy') {
        const parsed = DeliveryPolicySchema.safeParse(value);
        if (parsed.success) policies.push({ value: parsed.data, where });
        else problems.push(`${where}: invalid DeliveryPolicy:\n${z.prettifyError(parsed.error)}`);
      } else if (kind === 'Secret') {
        const parsed = SecretSchema.safeParse(value);
        if (parsed.success) secrets.set(parsed.data.metadata.name, parsed.data);
        else problems.push(`${where}: invalid Secret:\n${z.prettifyError(parsed.error)}`);
      } else {
        problems.push(
          `${where}: unsupported kind ${JSON.stringify(kind)} (expected MailDomain, DeliveryPolicy or Secret)`,
        );
      }
    });
  }

  const seen = new Map<string, string>();
  const userSeen = new Map<string, string>();
  const passwords = new Map<MailDomain, Map<string, string>>();
  for (const { value, where } of domains) {
    const other = seen.get(value.spec.domain);
    if (other !== undefined)
      problems.push(`${where}: domain ${value.spec.domain} is already declared in ${other}`);
    seen.set(value.spec.domain, where);
    const resolved = new Map<string, string>();
    passwords.set(value, resolved);
    for (const user of value.spec.submission?.users ?? []) {
      const label = `${where}: MailDomain ${value.metadata.name}: user ${user.name}`;
      const otherUser = userSeen.get(user.name);
      if (otherUser !== undefined) problems.push(`${label}: user name is already declared in ${otherUser}`);
      userSeen.set(user.name, where);
      const ref = user.passwordSecretRef;
      const secret = secrets.get(ref.name);
      const password = secret === undefined ? undefined : secretValue(secret, ref.key);
      if (secret === undefined) {
        problems.push(`${label}: Secret ${ref.name} not found`);
      } else if (password === undefined) {
        problems.push(`${label}: Secret ${ref.name} has no key ${ref.key}`);
      } else if (password === '') {
        problems.push(`${label}: Secret ${ref.name} key ${ref.key} is empty`);
      } else {
        resolved.set(user.name, password);
      }
    }
  }
  const dkimKeys = new Map<MailDomain, { selector: string; algorithm: string; privateKeyPem: string }[]>();
  for (const { value, where } of domains) {
    const keys: { selector: string; algorithm: string; privateKeyPem: string }[] = [];
    dkimKeys.set(value, keys);
    for (const key of value.spec.dkim?.keys ?? []) {
      const label = `${where}: MailDomain ${value.metadata.name}: DKIM key ${key.selector}`;
      const ref = key.privateKeySecretRef;
      const secret = secrets.get(ref.name);
      const pem = secret === undefined ? undefined : secretValue(secret, ref.key);
      if (secret === undefined) problems.push(`${label}: Secret ${ref.name} not found`);
      else if (pem === undefined) problems.push(`${label}: Secret ${ref.name} has no key ${ref.key}`);
      else if (!/-----BEGIN (RSA )?PRIVATE KEY-----/.test(pem)) {
        problems.push(`${label}: Secret ${ref.name} key ${ref.key} is not an unencrypted PEM private key`);
      } else keys.push({ selector: key.selector, algorithm: key.algorithm, privateKeyPem: pem });
    }
  }
  const webhooks = compileWebhooks(domains, secrets, problems);
  const runtimePolicies = compilePolicies(policies, secrets, problems);
  if (problems.length > 0) {
    throw new ConfigError(
      ConfigErrorCode.InvalidManifest,
      `config directory ${dir}:\n${problems.join('\n')}`,
    );
  }

  return RuntimeConfigSchema.parse({
    version: RUNTIME_CONFIG_VERSION,
    generation,
    domains: domains.map(({ value }) => ({
      source: `${value.metadata.namespace ?? 'default'}/${value.metadata.name}`,
      domain: value.spec.domain,
      inboundRoutes: value.spec.inbound?.routes ?? [],
      users: (value.spec.submission?.users ?? []).map((u) => ({
        name: u.name,
        password: passwords.get(value)?.get(u.name),
        allowedSenders: u.allowedSenders,
      })),
      inbound: runtimeInbound(value),
      dkimKeys: dkimKeys.get(value) ?? [],
      outbound: {
        ...(value.spec.outbound?.ratePerSecond === undefined
          ? {}
          : { ratePerSecond: value.spec.outbound.ratePerSecond }),
        ...(value.spec.outbound?.queueLifetime === undefined
          ? {}
          : { queueLifetimeMs: parseDuration(value.spec.outbound.queueLifetime) }),
      },
      webhooks: webhooks.get(value) ?? [],
    })),
    policies: runtimePolicies,
  });
}

const MIN_WEBHOOK_SECRET = 16;

/**
 * The webhook subscriptions of every MailDomain with their signing secrets resolved. The id
 * `<namespace>/<maildomain>/<name>` names a subscription in the jobs and the delivery log, so it
 * must be unique across the directory (two MailDomains of one name would share it).
 */
function compileWebhooks(
  domains: readonly Located<MailDomain>[],
  secrets: ReadonlyMap<string, Secret>,
  problems: string[],
): Map<MailDomain, RuntimeWebhook[]> {
  const out = new Map<MailDomain, RuntimeWebhook[]>();
  const ids = new Map<string, string>();
  for (const { value, where } of domains) {
    const hooks: RuntimeWebhook[] = [];
    out.set(value, hooks);
    for (const hook of value.spec.webhooks ?? []) {
      const label = `${where}: MailDomain ${value.metadata.name}: webhook ${hook.name}`;
      const id = `${value.metadata.namespace ?? 'default'}/${value.metadata.name}/${hook.name}`;
      const other = ids.get(id);
      if (other !== undefined) problems.push(`${label}: webhook id ${id} is already declared in ${other}`);
      ids.set(id, where);
      const ref = hook.secretRef;
      const secret = secrets.get(ref.name);
      const signingSecret = secret === undefined ? undefined : secretValue(secret, ref.key);
      if (secret === undefined) problems.push(`${label}: Secret ${ref.name} not found`);
      else if (signingSecret === undefined)
        problems.push(`${label}: Secret ${ref.name} has no key ${ref.key}`);
      else if (signingSecret.length < MIN_WEBHOOK_SECRET) {
        // A short HMAC key can be guessed from signed payloads; receivers trust what it signs.
        problems.push(
          `${label}: Secret ${ref.name} key ${ref.key} is shorter than ${MIN_WEBHOOK_SECRET} characters; use a random secret of 32 or more`,
        );
      } else hooks.push({ id, name: hook.name, url: hook.url, events: hook.events, secret: signingSecret });
    }
  }
  return out;
}

/**
 * DeliveryPolicies with their relay passwords resolved. A destination may be matched by one
 * policy only (per domain pattern and per MX suffix), so that its limits are never ambiguous.
 */
function compilePolicies(
  policies: readonly Located<DeliveryPolicy>[],
  secrets: ReadonlyMap<string, Secret>,
  problems: string[],
): RuntimePolicy[] {
  const claimed = new Map<string, string>();
  const out: RuntimePolicy[] = [];
  for (const { value, where } of policies) {
    const label = `${where}: DeliveryPolicy ${value.metadata.name}`;
    const { spec } = value;
    for (const key of [
      ...spec.match.domains.map((d) => `domain ${d}`),
      ...spec.match.mxHostSuffixes.map((s) => `MX host suffix ${s}`),
    ]) {
      const other = claimed.get(key);
      if (other !== undefined) problems.push(`${label}: ${key} is already matched by ${other}`);
      claimed.set(key, label);
    }
    let password: string | undefined;
    const auth = spec.relay?.auth;
    if (auth !== undefined) {
      const secret = secrets.get(auth.passwordSecretRef.name);
      password = secret === undefined ? undefined : secretValue(secret, auth.passwordSecretRef.key);
      if (secret === undefined) problems.push(`${label}: Secret ${auth.passwordSecretRef.name} not found`);
      else if (password === undefined || password === '')
        problems.push(
          `${label}: Secret ${auth.passwordSecretRef.name} has no value for ${auth.passwordSecretRef.key}`,
        );
    }
    out.push({
      source: `${value.metadata.namespace ?? 'default'}/${value.metadata.name}`,
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

/** A Secret's value as Kubernetes resolves it: stringData wins over base64 data. */
function secretValue(secret: Secret, key: string): string | undefined {
  const text = secret.stringData?.[key];
  if (text !== undefined) return text;
  const encoded = secret.data?.[key];
  return encoded === undefined ? undefined : Buffer.from(encoded, 'base64').toString('utf8');
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

/**
 * Writes the runtime config atomically (readers never see a half-written file), readable by its
 * owner only: it holds the submission passwords.
 */
export async function writeRuntimeConfig(path: string, config: RuntimeConfig): Promise<void> {
  const staging = `${path}.${process.pid}.tmp`;
  await writeFile(staging, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 });
  // The mode of writeFile applies only to a new file; a stale staging file keeps its own.
  await chmod(staging, 0o600);
  await rename(staging, path);
}
