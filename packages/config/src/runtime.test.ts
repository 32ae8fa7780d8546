import assert from 'node:assert/strict';
import { test } from 'node:test';
import { z } from 'zod';
import { ConfigError } from './errors.ts';
import {
  checkRuntimeConfigSource,
  DomainIndex,
  liveDomainsFrom,
  parseRuntimeConfig,
  RuntimeConfigSourceSettings,
  type RuntimeConfigWatch,
  runtimeConfigSource,
} from './runtime.ts';

const inbound = {
  checks: { spf: true, dkim: true, dmarc: true, arc: true, dmarcReject: true },
  greylisting: { enabled: false, delaySeconds: 300, expireSeconds: 129_600 },
  tarpit: { enabled: false, delayMs: 2000 },
};

const config = {
  version: 1,
  generation: 4,
  domains: [
    {
      source: 'default/a',
      domain: 'a.example',
      inboundRoutes: [],
      users: [{ name: 'app@a.example', password: 'pw-a', allowedSenders: ['*@a.example'] }],
      inbound,
    },
    {
      source: 'default/b',
      domain: 'b.example',
      inboundRoutes: [{ host: 'store.b.example', port: 24, protocol: 'lmtp' }],
      users: [{ name: 'bot', password: 'pw-b', allowedSenders: ['bot@b.example'] }],
      inbound: { ...inbound, tarpit: { enabled: true, delayMs: 10 } },
    },
  ],
};

test('DomainIndex finds managed domains case-insensitively and users by exact name', () => {
  const index = new DomainIndex(parseRuntimeConfig(config, 'test'));
  assert.equal(index.managed('a.example')?.source, 'default/a');
  assert.equal(index.managed('B.Example')?.inbound.tarpit.delayMs, 10);
  assert.equal(index.managed('c.example'), undefined);
  const bot = index.user('bot');
  assert.equal(bot?.domain.domain, 'b.example');
  assert.equal(bot?.user.password, 'pw-b');
  assert.equal(index.user('app@a.example')?.domain.domain, 'a.example');
  assert.equal(index.user('BOT'), undefined);
  assert.equal(index.user('nobody'), undefined);
});

test('the parsed runtime config is frozen', () => {
  const parsed = parseRuntimeConfig(config, 'test');
  assert.ok(Object.isFrozen(parsed.domains[0]?.users[0]));
  assert.ok(Object.isFrozen(parsed.domains[0]?.inbound.checks));
});

test('a runtime config without passwords or inbound settings is refused', () => {
  const withoutPassword = structuredClone(config);
  const user: { password?: string } | undefined = withoutPassword.domains[0]?.users[0];
  if (user !== undefined) delete user.password;
  const withoutInbound = structuredClone(config);
  const domain: { inbound?: unknown } | undefined = withoutInbound.domains[1];
  if (domain !== undefined) delete domain.inbound;
  for (const bad of [withoutPassword, withoutInbound]) {
    assert.throws(
      () => parseRuntimeConfig(bad, 'bad.json'),
      (error: unknown) => error instanceof ConfigError && error.code === 'PETREL_ERR_INVALID_RUNTIME_CONFIG',
    );
  }
});

test('DomainIndex finds webhook subscriptions by domain and by id; a bad one is refused', () => {
  const withHooks = structuredClone(config) as typeof config & {
    domains: { webhooks?: unknown[] }[];
  };
  const hook = {
    id: 'default/b/ops',
    name: 'ops',
    url: 'https://hooks.b.example/petrel',
    events: ['delivered', 'bounced'],
    secret: 'b-secret-0123456789',
  };
  const b = withHooks.domains[1];
  if (b !== undefined) b.webhooks = [hook];
  const index = new DomainIndex(parseRuntimeConfig(withHooks, 'test'));
  assert.equal(index.hasWebhooks, true);
  assert.deepEqual(index.webhooks('B.example'), [hook]);
  assert.deepEqual(index.webhooks('a.example'), []);
  assert.deepEqual(index.webhooks('c.example'), []);
  assert.equal(index.webhook('default/b/ops')?.domain.domain, 'b.example');
  assert.equal(index.webhook('default/b/ops')?.webhook.secret, 'b-secret-0123456789');
  assert.equal(index.webhook('default/a/ops'), undefined);
  assert.equal(new DomainIndex(parseRuntimeConfig(config, 'test')).hasWebhooks, false);

  for (const bad of [
    { ...hook, secret: '' },
    { ...hook, events: ['accepted'] },
    { ...hook, url: 'ftp://x.example/' },
  ]) {
    const copy = structuredClone(withHooks);
    const d = copy.domains[1];
    if (d !== undefined) d.webhooks = [bad];
    assert.throws(() => parseRuntimeConfig(copy, 'bad.json'), ConfigError);
  }
});

test('older configs load with the new fields defaulted: not draining, no host names, no certificate', () => {
  const [a] = parseRuntimeConfig(config, 'test').domains;
  assert.equal(a?.draining, false);
  assert.deepEqual(a?.hostnames, []);
  assert.equal(a?.tls, undefined);
});

test('a config of another version is refused, saying which version this build reads', () => {
  assert.throws(
    () => parseRuntimeConfig({ ...config, version: 2 }, 'next.json'),
    (error: unknown) =>
      error instanceof ConfigError &&
      error.code === 'PETREL_ERR_INVALID_RUNTIME_CONFIG' &&
      /next\.json has version 2; this build reads version 1 only/.test(error.message),
  );
});

test('a draining domain is known but not managed: its users cannot log in, its webhooks still fire', () => {
  const hook = {
    id: 'default/a/ops',
    name: 'ops',
    url: 'https://hooks.a.example/petrel',
    events: ['delivered'],
    secret: 'a-secret-0123456789',
  };
  const [a, b] = config.domains;
  const draining = {
    ...config,
    domains: [{ ...a, draining: true, webhooks: [hook] }, b],
  };
  const index = new DomainIndex(parseRuntimeConfig(draining, 'test'));
  assert.equal(index.managed('a.example'), undefined);
  assert.equal(index.known('A.example')?.source, 'default/a');
  assert.equal(index.user('app@a.example'), undefined);
  assert.deepEqual(
    index.webhooks('a.example').map((w) => w.id),
    ['default/a/ops'],
  );
  assert.equal(index.webhook('default/a/ops')?.domain.domain, 'a.example');
  assert.equal(index.managed('b.example')?.source, 'default/b');
  assert.equal(index.known('b.example')?.source, 'default/b');
  assert.equal(index.user('bot')?.domain.domain, 'b.example');
  assert.equal(index.known('c.example'), undefined);
});

test('when a draining domain and its successor are both listed, the live one answers', () => {
  const [a] = config.domains;
  for (const order of [
    [
      { ...a, source: 'old/a', draining: true },
      { ...a, source: 'new/a', users: [] },
    ],
    [
      { ...a, source: 'new/a', users: [] },
      { ...a, source: 'old/a', draining: true },
    ],
  ]) {
    const index = new DomainIndex(parseRuntimeConfig({ ...config, domains: order }, 'test'));
    assert.equal(index.managed('a.example')?.source, 'new/a');
    assert.equal(index.known('a.example')?.source, 'new/a');
    // The old one's users are gone with it.
    assert.equal(index.user('app@a.example'), undefined);
  }
});

test('a domain carries its host names and certificate; an empty certificate is refused', () => {
  const [a] = config.domains;
  const tls = { certificatePem: 'CERT', privateKeyPem: 'KEY' };
  const parsed = parseRuntimeConfig(
    { ...config, domains: [{ ...a, hostnames: ['mx.a.example', 'smtp.a.example'], tls }] },
    'test',
  );
  assert.deepEqual(parsed.domains[0]?.hostnames, ['mx.a.example', 'smtp.a.example']);
  assert.deepEqual(parsed.domains[0]?.tls, tls);
  assert.throws(
    () =>
      parseRuntimeConfig(
        { ...config, domains: [{ ...a, tls: { certificatePem: '', privateKeyPem: 'K' } }] },
        'x',
      ),
    ConfigError,
  );
});

const SourceSchema = z.strictObject({ ...RuntimeConfigSourceSettings }).superRefine(checkRuntimeConfigSource);

test('the runtime config source: a file, or a store with its key file; anything else says what to set', () => {
  assert.deepEqual(runtimeConfigSource(SourceSchema.parse({ runtimeConfigPath: '/x.json' })), {
    kind: 'file',
    path: '/x.json',
  });
  assert.deepEqual(
    runtimeConfigSource(SourceSchema.parse({ runtimeConfigStore: 'PETREL_CONFIG', configKeyFile: '/k' })),
    { kind: 'store', bucket: 'PETREL_CONFIG', keyFile: '/k' },
  );
  const problems = (settings: object) => {
    const result = SourceSchema.safeParse(settings);
    return result.success ? [] : result.error.issues.map((i) => `${String(i.path[0])}: ${i.message}`);
  };
  assert.match(problems({})[0] ?? '', /^runtimeConfigPath: required: .*PETREL_RUNTIME_CONFIG_STORE/);
  assert.match(
    problems({ runtimeConfigPath: '/x', runtimeConfigStore: 'B', configKeyFile: '/k' })[0] ?? '',
    /^runtimeConfigPath: set either PETREL_RUNTIME_CONFIG .* not both/,
  );
  assert.match(problems({ runtimeConfigStore: 'B' })[0] ?? '', /^configKeyFile: required with/);
  assert.match(
    problems({ runtimeConfigPath: '/x', configKeyFile: '/k' })[0] ?? '',
    /^configKeyFile: only used/,
  );
  assert.match(
    problems({ runtimeConfigStore: 'a.b', configKeyFile: '/k' })[0] ?? '',
    /^runtimeConfigStore: /,
  );
  assert.throws(
    () => runtimeConfigSource({}),
    (error: unknown) =>
      error instanceof ConfigError && /^PETREL_RUNTIME_CONFIG: required/.test(error.message),
  );
});

test('liveDomainsFrom waits for the first valid config (saying so once), then follows reloads', async () => {
  const lines: string[] = [];
  const log = {
    info: (_: object, msg: string) => lines.push(`info ${msg}`),
    error: (_: object, msg: string) => lines.push(`error ${msg}`),
  };
  let handlers: Parameters<RuntimeConfigWatch>[0] | undefined;
  let closed = false;
  const live = liveDomainsFrom(
    (h) => {
      handlers = h;
      return { close: () => (closed = true) };
    },
    log,
    'test source',
  );
  assert.ok(handlers);
  handlers.onWaiting();
  handlers.onWaiting();
  handlers.onError(new Error('bad'));
  let resolved = false;
  void live.then(() => (resolved = true));
  await Promise.resolve();
  assert.equal(resolved, false);
  handlers.onChange(parseRuntimeConfig(config, 'test'));
  const domains = await live;
  const seen: number[] = [];
  domains.onReload((index) => seen.push(index.config.generation));
  handlers.onError(new Error('worse'));
  handlers.onChange(parseRuntimeConfig({ ...config, generation: 5, domains: [] }, 'test'));
  assert.deepEqual(seen, [5]);
  assert.equal(domains.current().managed('a.example'), undefined);
  assert.deepEqual(lines, [
    "info waiting for the operator's runtime config",
    'error runtime config unusable; waiting for a valid one',
    'info runtime config loaded',
    'error runtime config reload failed; keeping the previous one',
    'info runtime config reloaded',
  ]);
  domains.close();
  assert.equal(closed, true);
});
