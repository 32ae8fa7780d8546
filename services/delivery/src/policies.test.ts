import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { RuntimePolicy } from '@petrel/config';
import { PolicyIndex } from './policies.ts';

const policy = (source: string, domains: string[], mxHostSuffixes: string[] = []): RuntimePolicy => ({
  source,
  domains,
  mxHostSuffixes,
  tls: 'opportunistic',
  adaptive: true,
});

test('a policy naming the domain wins over a roll-up; exact beats wildcard, the nearest parent wins', () => {
  const index = new PolicyIndex([
    policy('ns/exact', ['mail.example.com']),
    policy('ns/wild', ['*.example.com']),
    policy('ns/deeper', ['*.eu.example.com']),
    policy('ns/google', [], ['google.com']),
    policy('ns/mx-google', [], ['aspmx.l.google.com']),
  ]);
  assert.equal(index.match('MAIL.example.com', [])?.policy.source, 'ns/exact');
  assert.equal(index.match('a.example.com', ['aspmx.l.google.com'])?.policy.source, 'ns/wild');
  assert.equal(index.match('x.eu.example.com', [])?.policy.source, 'ns/deeper');
  assert.equal(index.match('example.com', []), undefined, '*.example.com does not cover example.com');
  const rollup = index.match('customer.org', ['alt1.aspmx.l.google.com.', 'other.net']);
  assert.deepEqual(rollup && { scope: rollup.scope, source: rollup.policy.source }, {
    scope: 'rollup',
    source: 'ns/mx-google',
  });
  assert.equal(index.match('customer.org', ['mx.notgoogle.com']), undefined, 'suffix on a label boundary');
  assert.equal(index.match('x.org', ['smtp.google.com'])?.scope, 'rollup');
});
