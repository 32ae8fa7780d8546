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
