import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ingressConfigFromEnv } from './config.ts';

test('ingress settings come from PETREL_* variables with defaults, frozen', () => {
  const config = ingressConfigFromEnv({
    PETREL_NATS_URL: 'nats://127.0.0.1:4222',
    PETREL_RUNTIME_CONFIG: '/x.json',
  });
  assert.equal(config.smtpPort, 25);
  assert.equal(config.publishTimeoutMs, 10_000);
  assert.deepEqual(config.relayNetworks, []);
  assert.ok(Object.isFrozen(config));
});

test('every invalid or missing setting is reported by its variable name', () => {
  assert.throws(
    () => ingressConfigFromEnv({ PETREL_SMTP_PORT: '70000', PETREL_RUNTIME_CONFIG: '/x.json' }),
    (error: unknown) => {
      assert.ok(error instanceof Error);
      assert.match(error.message, /^invalid ingress configuration:/);
      assert.match(error.message, /PETREL_NATS_URL: /);
      assert.match(error.message, /PETREL_SMTP_PORT: /);
      return true;
    },
  );
});

test('relay networks are a CIDR list', () => {
  const env = { PETREL_NATS_URL: 'nats://127.0.0.1:4222', PETREL_RUNTIME_CONFIG: '/x.json' };
  const config = ingressConfigFromEnv({ ...env, PETREL_RELAY_NETWORKS: '10.0.0.0/8, fd00::/8' });
  assert.deepEqual(config.relayNetworks, ['10.0.0.0/8', 'fd00::/8']);
  assert.throws(
    () => ingressConfigFromEnv({ ...env, PETREL_RELAY_NETWORKS: '10.0.0.1' }),
    /PETREL_RELAY_NETWORKS: not a CIDR network/,
  );
});
