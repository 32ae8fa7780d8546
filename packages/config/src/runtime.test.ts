import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConfigError } from './errors.ts';
import { DomainIndex, parseRuntimeConfig } from './runtime.ts';

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
