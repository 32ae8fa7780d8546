import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MailDomainSchema } from './manifests.ts';

const base = {
  apiVersion: 'petrel.dev/v1alpha1',
  kind: 'MailDomain',
  metadata: { name: 'example-org' },
};

test('inbound checks, greylisting and tarpit default when omitted', () => {
  const domain = MailDomainSchema.parse({
    ...base,
    spec: { domain: 'example.org', inbound: { routes: [] } },
  });
  assert.deepEqual(domain.spec.inbound, {
    routes: [],
    checks: { spf: true, dkim: true, dmarc: true, arc: true, dmarcReject: true },
    greylisting: { enabled: false, delaySeconds: 300, expireHours: 36 },
    tarpit: { enabled: false, delayMs: 2000 },
  });
});

test('partial inbound settings keep the other defaults', () => {
  const domain = MailDomainSchema.parse({
    ...base,
    spec: {
      domain: 'example.org',
      inbound: { checks: { dmarcReject: false }, greylisting: { enabled: true } },
    },
  });
  assert.equal(domain.spec.inbound?.checks.dmarcReject, false);
  assert.equal(domain.spec.inbound?.checks.spf, true);
  assert.deepEqual(domain.spec.inbound?.greylisting, { enabled: true, delaySeconds: 300, expireHours: 36 });
});

test('unknown inbound fields and bad values are refused', () => {
  for (const inbound of [
    { checks: { spf: true, bogus: true } },
    { greylisting: { enabled: 'yes' } },
    { greylisting: { delaySeconds: 0 } },
    { tarpit: { delayMs: -1 } },
    { tarpit: { enabled: true, speed: 1 } },
  ]) {
    const result = MailDomainSchema.safeParse({ ...base, spec: { domain: 'example.org', inbound } });
    assert.equal(result.success, false, JSON.stringify(inbound));
  }
});

const hook = {
  name: 'ops',
  url: 'https://hooks.example.com/petrel',
  events: ['delivered', 'bounced'],
  secretRef: { name: 'example-org-webhooks', key: 'secret' },
};

function webhookIssues(webhooks: unknown[]): string[] {
  const result = MailDomainSchema.safeParse({ ...base, spec: { domain: 'example.org', webhooks } });
  return result.success ? [] : result.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
}

test('webhook subscriptions: a valid one is kept as written', () => {
  const domain = MailDomainSchema.parse({ ...base, spec: { domain: 'example.org', webhooks: [hook] } });
  assert.deepEqual(domain.spec.webhooks, [hook]);
  assert.deepEqual(webhookIssues([{ ...hook, url: 'http://127.0.0.1:8080/hooks' }]), []);
});

test('webhook subscriptions: bad URLs, events and names are refused with clear messages', () => {
  const cases: [unknown, string][] = [
    [{ ...hook, url: 'ftp://hooks.example.com/' }, 'spec.webhooks.0.url: must be an http:// or https:// URL'],
    [{ ...hook, url: 'hooks.example.com/petrel' }, 'spec.webhooks.0.url: must be an http:// or https:// URL'],
    [
      { ...hook, events: [] },
      'spec.webhooks.0.events: must name at least one event (delivered, deferred, bounced, expired, suppressed)',
    ],
    [
      { ...hook, events: ['delivered', 'accepted'] },
      'spec.webhooks.0.events.1: must be one of delivered, deferred, bounced, expired, suppressed',
    ],
    [{ ...hook, events: ['bounced', 'bounced'] }, 'spec.webhooks.0.events: must not name an event twice'],
    [{ ...hook, name: 'Ops Team' }, 'spec.webhooks.0.name: must be a DNS label (a-z, 0-9 and -, at most 63)'],
    [
      { ...hook, secretRef: undefined },
      'spec.webhooks.0.secretRef: Invalid input: expected object, received undefined',
    ],
    [{ ...hook, headers: {} }, 'spec.webhooks.0: Unrecognized key: "headers"'],
  ];
  for (const [webhook, message] of cases) assert.deepEqual(webhookIssues([webhook]), [message]);
  assert.deepEqual(webhookIssues([hook, { ...hook, url: 'https://other.example/' }]), [
    'spec.webhooks.1.name: webhook name ops is used twice; names must be unique within the MailDomain',
  ]);
});
