/**
 * The runtime config in a JetStream Object Store, against a real nats-server: what the operator
 * publishes is what a pod reads, once per change; unusable versions leave the previous config.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { Objm } from '@nats-io/obj';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { ConfigError, ConfigErrorCode, type RuntimeConfig } from '@petrel/config';
import { runtimeConfigOf, runtimeDomain } from '@petrel/config/testing';
import { startNats, tempDir, waitFor } from '@petrel/test-harness';
import {
  CONFIG_STORE_BUCKET,
  ConfigStoreError,
  ConfigStoreErrorCode,
  ConfigStoreMetadata,
  configKeyId,
  decryptRuntimeConfig,
  encryptRuntimeConfig,
  liveDomainsFromStore,
  loadConfigKey,
  publishRuntimeConfig,
  RUNTIME_CONFIG_OBJECT,
  readRuntimeConfig,
  watchRuntimeConfigStore,
} from './config-store.ts';

const WAIT = { timeoutMs: 15_000 };
const SECRET = 'pw-0f9c1e-do-not-leak';

function runtimeConfig(generation: number, domains = ['a.example']): RuntimeConfig {
  return runtimeConfigOf(
    domains.map((domain) =>
      runtimeDomain(domain, {
        users: [{ name: `app@${domain}`, password: SECRET, allowedSenders: [`*@${domain}`] }],
      }),
    ),
    generation,
  );
}

async function nats(t: TestContext): Promise<NatsConnection> {
  const server = await startNats(t.after.bind(t));
  const nc = await connect({ servers: server.url });
  t.after(() => nc.close());
  return nc;
}

const silent = { info: () => undefined, error: () => undefined };

test('a published config reads back equal, encrypted at rest, tagged with its key id and generation', async (t) => {
  const nc = await nats(t);
  const key = randomBytes(32);
  const config = runtimeConfig(3);
  const published = await publishRuntimeConfig(nc, config, { key });
  assert.equal(published.changed, true);
  const read = await readRuntimeConfig(nc, { key });
  assert.deepEqual(read?.config, config);
  assert.equal(read?.revision, published.revision);

  const store = await new Objm(nc).open(CONFIG_STORE_BUCKET);
  const raw = Buffer.from((await store.getBlob(RUNTIME_CONFIG_OBJECT)) ?? new Uint8Array());
  assert.equal(raw.subarray(0, 4).toString('ascii'), 'PTRC');
  assert.ok(!raw.includes(SECRET), 'the password is not in the stored bytes');
  assert.ok(!raw.includes('a.example'), 'nor is anything else of the config');
  const info = await store.info(RUNTIME_CONFIG_OBJECT);
  assert.equal(info?.metadata?.[ConfigStoreMetadata.keyId], configKeyId(key));
  assert.equal(info?.metadata?.[ConfigStoreMetadata.generation], '3');
  assert.ok(!JSON.stringify(info).includes(SECRET));
  const status = await store.status();
  assert.equal(status.replicas, 1);
});

test('there is nothing to read before the operator published (no bucket, then an empty one)', async (t) => {
  const nc = await nats(t);
  const key = randomBytes(32);
  assert.equal(await readRuntimeConfig(nc, { key }), undefined);
  await new Objm(nc).create(CONFIG_STORE_BUCKET);
  assert.equal(await readRuntimeConfig(nc, { key }), undefined);
});

test('unchanged content is not put again; a changed config or a new key is', async (t) => {
  const nc = await nats(t);
  const key = randomBytes(32);
  const first = await publishRuntimeConfig(nc, runtimeConfig(1), { key, bucket: 'CFG' });
  const again = await publishRuntimeConfig(nc, runtimeConfig(1), { key, bucket: 'CFG' });
  assert.deepEqual(again, { changed: false, revision: first.revision });
  const changed = await publishRuntimeConfig(nc, runtimeConfig(2), { key, bucket: 'CFG' });
  assert.equal(changed.changed, true);
  assert.ok(changed.revision > first.revision);
  // The same content under a rotated key must be re-encrypted, or pods with the new key could not read it.
  const newKey = randomBytes(32);
  const rotated = await publishRuntimeConfig(nc, runtimeConfig(2), { key: newKey, bucket: 'CFG' });
  assert.equal(rotated.changed, true);
  assert.equal((await readRuntimeConfig(nc, { key: newKey, bucket: 'CFG' }))?.config.generation, 2);
  // One version is kept: the bucket holds the current object's metadata and chunks only.
  const status = await (await new Objm(nc).open('CFG')).status();
  assert.equal(status.streamInfo.state.messages, 2);
});

test('an invalid config is never published', async (t) => {
  const nc = await nats(t);
  const bad = { ...runtimeConfig(1), version: 2 } as unknown as RuntimeConfig;
  await assert.rejects(
    publishRuntimeConfig(nc, bad, { key: randomBytes(32) }),
    (error: unknown) => error instanceof ConfigError && error.code === ConfigErrorCode.InvalidRuntimeConfig,
  );
});

test('a watcher started before anything exists waits, then gets the first config and every new version', async (t) => {
  const nc = await nats(t);
  const key = randomBytes(32);
  const seen: number[] = [];
  const errors: unknown[] = [];
  let waiting = 0;
  const watcher = watchRuntimeConfigStore(
    nc,
    { key, pollMs: 50, onWaiting: () => waiting++ },
    (config) => seen.push(config.generation),
    (error) => errors.push(error),
  );
  t.after(() => watcher.close());
  await waitFor(() => waiting > 0 || undefined, WAIT);
  await publishRuntimeConfig(nc, runtimeConfig(1), { key });
  await waitFor(() => seen.includes(1) || undefined, WAIT);
  await publishRuntimeConfig(nc, runtimeConfig(1), { key }); // unchanged: no new version
  await publishRuntimeConfig(nc, runtimeConfig(2, ['a.example', 'b.example']), { key });
  await waitFor(() => seen.includes(2) || undefined, WAIT);
  assert.deepEqual(seen, [1, 2]);
  assert.equal(waiting, 1, 'waiting is said once');
  assert.deepEqual(errors, []);
});

test('a version under another key, tampered with or invalid is reported and the previous config stays', async (t) => {
  const nc = await nats(t);
  const key = randomBytes(32);
  await publishRuntimeConfig(nc, runtimeConfig(1), { key });
  const errors: unknown[] = [];
  const domains = await liveDomainsFromStore(
    nc,
    { key },
    { ...silent, error: (fields) => errors.push(fields) },
  );
  t.after(() => domains.close());
  assert.equal(domains.current().config.generation, 1);
  assert.ok(domains.current().managed('a.example'));

  const code = (n: number) => (errors[n] as { err?: { code?: string } } | undefined)?.err?.code ?? '';
  // Another key.
  const other = randomBytes(32);
  await publishRuntimeConfig(nc, runtimeConfig(2, ['b.example']), { key: other });
  await waitFor(() => errors.length >= 1 || undefined, WAIT);
  assert.equal(code(0), ConfigStoreErrorCode.KeyMismatch);
  const mismatch = (errors[0] as { err: Error }).err;
  assert.match(mismatch.message, new RegExp(`${configKeyId(other)}.*${configKeyId(key)}`));

  const store = await new Objm(nc).open(CONFIG_STORE_BUCKET);
  // Tampered with: one bit of the ciphertext flipped.
  const sealed = encryptRuntimeConfig(JSON.stringify(runtimeConfig(3, ['c.example'])), key);
  sealed[sealed.length - 1] = (sealed[sealed.length - 1] ?? 0) ^ 1;
  await store.putBlob({ name: RUNTIME_CONFIG_OBJECT }, sealed);
  await waitFor(() => errors.length >= 2 || undefined, WAIT);
  assert.equal(code(1), ConfigStoreErrorCode.Corrupt);
  // Well encrypted but not a config this build reads.
  const future = { ...JSON.parse(JSON.stringify(runtimeConfig(4))), version: 2 };
  await store.putBlob({ name: RUNTIME_CONFIG_OBJECT }, encryptRuntimeConfig(JSON.stringify(future), key));
  await waitFor(() => errors.length >= 3 || undefined, WAIT);
  assert.equal(code(2), ConfigErrorCode.InvalidRuntimeConfig);
  // Not our format at all.
  await store.putBlob({ name: RUNTIME_CONFIG_OBJECT }, new TextEncoder().encode('{"version":1}'));
  await waitFor(() => errors.length >= 4 || undefined, WAIT);
  assert.equal(code(3), ConfigStoreErrorCode.Corrupt);

  assert.equal(domains.current().config.generation, 1, 'the previous config is still in force');
  assert.ok(domains.current().managed('a.example'));
  // And the watch goes on: the next good version is applied.
  const reloaded: number[] = [];
  domains.onReload((index) => reloaded.push(index.config.generation));
  await publishRuntimeConfig(nc, runtimeConfig(5, ['e.example']), { key });
  await waitFor(() => domains.current().config.generation === 5 || undefined, WAIT);
  assert.deepEqual(reloaded, [5]);
  assert.equal(domains.current().managed('a.example'), undefined);
  assert.equal(errors.length, 4);
});

test('two publishers creating the bucket at once both succeed', async (t) => {
  const nc = await nats(t);
  const other = await connect({ servers: nc.getServer() });
  t.after(() => other.close());
  const key = randomBytes(32);
  const results = await Promise.all([
    publishRuntimeConfig(nc, runtimeConfig(7), { key }),
    publishRuntimeConfig(other, runtimeConfig(7), { key }),
  ]);
  assert.ok(results.some((r) => r.changed));
  assert.equal((await readRuntimeConfig(nc, { key }))?.config.generation, 7);
  assert.equal((await new Objm(nc).list().next()).length, 1, 'one bucket');
});

test('encryption: the header is authenticated, and the key must be 32 bytes', () => {
  const key = randomBytes(32);
  const sealed = encryptRuntimeConfig('{"a":1}', key);
  assert.equal(decryptRuntimeConfig(sealed, key), '{"a":1}');
  // Two encryptions of the same text differ (fresh nonce).
  assert.notDeepEqual(encryptRuntimeConfig('{"a":1}', key), sealed);
  const nonceFlipped = Buffer.from(sealed);
  nonceFlipped[12] = (nonceFlipped[12] ?? 0) ^ 1;
  assert.throws(
    () => decryptRuntimeConfig(nonceFlipped, key),
    (e: unknown) => e instanceof ConfigStoreError && e.code === ConfigStoreErrorCode.Corrupt,
  );
  const versionChanged = Buffer.from(sealed);
  versionChanged[4] = 9;
  assert.throws(() => decryptRuntimeConfig(versionChanged, key), /format 9/);
  assert.throws(
    () => encryptRuntimeConfig('{}', randomBytes(16)),
    (e: unknown) => e instanceof ConfigStoreError && e.code === ConfigStoreErrorCode.KeyInvalid,
  );
});

test('loadConfigKey reads 32 raw bytes, 64 hex characters or base64, and refuses anything else', async () => {
  const dir = await tempDir('config-key');
  const key = randomBytes(32);
  const write = async (name: string, content: string | Buffer) => {
    const path = join(dir, name);
    await writeFile(path, content);
    return path;
  };
  assert.deepEqual(await loadConfigKey(await write('raw', key)), key);
  assert.deepEqual(await loadConfigKey(await write('hex', `${key.toString('hex')}\n`)), key);
  assert.deepEqual(await loadConfigKey(await write('b64', ` ${key.toString('base64')}\n`)), key);
  assert.deepEqual(
    await loadConfigKey(await write('b64-unpadded', key.toString('base64').replace(/=$/, ''))),
    key,
  );
  for (const bad of ['too-short', randomBytes(31).toString('hex'), randomBytes(24).toString('base64')]) {
    await assert.rejects(loadConfigKey(await write('bad', bad)), (e: unknown) => {
      assert.ok(e instanceof ConfigStoreError);
      assert.equal(e.code, ConfigStoreErrorCode.KeyInvalid);
      assert.ok(!e.message.includes(bad), 'the content is not echoed');
      return true;
    });
  }
  await assert.rejects(
    loadConfigKey(join(dir, 'missing')),
    (e: unknown) => e instanceof ConfigStoreError && e.code === ConfigStoreErrorCode.KeyUnreadable,
  );
});
