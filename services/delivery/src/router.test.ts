import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DomainIndex, parseRuntimeConfig, type RuntimePolicy } from '@petrel/config';
import { newEnvelope } from '@petrel/queue';
import type { RouteResolver } from './mx.ts';
import { PolicyIndex } from './policies.ts';
import { route } from './router.ts';

// Routing that ends before DNS: any lookup is a test failure.
const noDns = new Proxy({} as RouteResolver, {
  get: () => () => assert.fail('no DNS lookup expected'),
});
const domains = () => new DomainIndex(parseRuntimeConfig({ version: 1, generation: 1, domains: [] }, 'test'));
const relayPolicy: RuntimePolicy = {
  source: 'mail/partner',
  domains: ['*.partner.example'],
  mxHostSuffixes: [],
  tls: 'opportunistic',
  adaptive: false,
  relay: { host: 'relay.partner.example', port: 587, username: 'petrel', password: 's3cret' },
};
const envelope = (domain: string) =>
  newEnvelope({ messageId: 'm1', sender: 'a@b.example', destinationDomain: domain, recipients: [] });

test('a DeliveryPolicy relay host (with its AUTH) replaces MX lookup for the domains it names', async () => {
  const routing = await route(envelope('eu.partner.example'), {
    domains,
    resolver: noDns,
    mxPort: 25,
    policies: new PolicyIndex([relayPolicy]),
  });
  assert.deepEqual(routing, {
    kind: 'targets',
    targets: [
      {
        host: 'relay.partner.example',
        port: 587,
        name: 'relay.partner.example',
        lmtp: false,
        auth: { username: 'petrel', password: 's3cret' },
      },
    ],
  });
});

test('the smarthost (with AUTH from the worker settings) wins over every other route', async () => {
  const routing = await route(envelope('eu.partner.example'), {
    domains,
    resolver: noDns,
    mxPort: 25,
    policies: new PolicyIndex([relayPolicy]),
    smarthost: { host: '127.0.0.1', port: 2525, auth: { username: 'u', password: 'p' } },
  });
  assert.equal(routing.kind === 'targets' && routing.targets[0]?.host, '127.0.0.1');
  assert.deepEqual(routing.kind === 'targets' && routing.targets[0]?.auth, { username: 'u', password: 'p' });
});
