import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { test } from 'node:test';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { ensureStreams } from '@petrel/queue';
import { migrate } from '@petrel/store';
import { createLogger } from '@petrel/telemetry';
import { startNats, startPostgres, tempDir } from '@petrel/test-harness';
import pg from 'pg';
import { delivered } from '../../test/stories.ts';
import { EventWriter } from '../writer.ts';
import { openApiDocument } from './openapi.ts';
import { apiRoutes, createApi } from './server.ts';
import { openApiStores } from './stores.ts';
import { TokenSource } from './tokens.ts';

async function fixture(t: import('node:test').TestContext, tokens: TokenSource) {
  const postgres = await startPostgres(t.after.bind(t));
  await migrate(postgres.databaseUrl);
  const nats = await startNats(t.after.bind(t));
  const nc = await connect({ servers: nats.url });
  await ensureStreams(await jetstreamManager(nc), { replicas: 1 });
  const js = jetstream(nc);
  const db = new pg.Pool({ connectionString: postgres.databaseUrl });
  db.on('error', () => undefined); // idle connections of a stopped server
  const stores = await openApiStores(js, 1);
  const deps = {
    db,
    nc,
    js,
    suppressions: stores.suppressions,
    controls: stores.controls,
    tokens,
    log: createLogger('api-test', { level: 'silent' }),
    retentionDays: 30,
  };
  const http = createServer(createApi(deps));
  await new Promise<void>((r) => http.listen({ host: '127.0.0.1', port: 0 }, () => r()));
  const address = http.address();
  const base = `http://127.0.0.1:${typeof address === 'object' && address !== null ? address.port : 0}`;
  const close = async () => {
    http.close();
    stores.stop();
    await nc.close();
    await db.end();
  };
  return { base, db, deps, close, postgres };
}

async function call(base: string, path: string, init: RequestInit & { token?: string } = {}) {
  const headers: Record<string, string> = { ...(init.headers as Record<string, string>) };
  if (init.token !== undefined) headers['authorization'] = `Bearer ${init.token}`;
  const res = await fetch(`${base}${path}`, { ...init, headers });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text.startsWith('{') ? JSON.parse(text) : text };
}

test('the API refuses requests without the right bearer token, and takes a rotated Secret without a restart', async (t) => {
  const dir = await tempDir('api-token');
  const file = join(dir, 'token');
  await writeFile(file, '# rotated by the Secret\nfirst-token\n');
  const f = await fixture(t, new TokenSource({ file }));
  try {
    const story = delivered(Date.now() - 60_000);
    await new EventWriter(f.db).write(story.events);
    const path = `/v1/messages/${story.queueId}`;

    const none = await call(f.base, path);
    assert.equal(none.status, 401);
    assert.equal(none.body.error.code, 'PETREL_ERR_API_UNAUTHORIZED');
    assert.match(none.body.error.message, /missing bearer token/);
    assert.match(none.headers.get('www-authenticate') ?? '', /^Bearer/);
    const wrong = await call(f.base, path, { token: 'first-token-but-longer' });
    assert.equal(wrong.status, 401);
    assert.match(wrong.body.error.message, /not valid/);
    const basic = await call(f.base, path, { headers: { authorization: 'Basic Zmlyc3Q6dG9rZW4=' } });
    assert.equal(basic.status, 401);
    // Not even the existence of a route is told without a token.
    assert.equal((await call(f.base, '/v1/queue/example.org/purge')).status, 401);

    const ok = await call(f.base, path, { token: 'first-token' });
    assert.equal(ok.status, 200);
    assert.equal(ok.body.message.queueId, story.queueId);
    assert.deepEqual(
      ok.body.timeline.map((e: { event: string }) => e.event),
      ['accepted', 'delivered'],
    );

    // The Secret rotated: the new token works, the old one no longer does.
    await writeFile(file, 'second-token\n');
    const { utimes } = await import('node:fs/promises');
    await utimes(file, new Date(), new Date(Date.now() + 5_000));
    assert.equal((await call(f.base, path, { token: 'second-token' })).status, 200);
    assert.equal((await call(f.base, path, { token: 'first-token' })).status, 401);

    // Health, metrics and the OpenAPI document need no token; unknown paths are 404 after auth.
    assert.equal((await call(f.base, '/healthz')).status, 200);
    assert.equal((await call(f.base, '/openapi.json')).body.openapi, '3.1.0');
    assert.equal((await call(f.base, '/v1/nothing', { token: 'second-token' })).status, 404);
    const method = await call(f.base, path, { token: 'second-token', method: 'DELETE' });
    assert.equal(method.status, 405);
    assert.equal(method.body.error.code, 'PETREL_ERR_API_METHOD_NOT_ALLOWED');
    const missing = await call(f.base, `/v1/messages/${'0'.repeat(26)}`, { token: 'second-token' });
    assert.equal(missing.status, 404);
    assert.equal(missing.body.error.code, 'PETREL_ERR_API_NOT_FOUND');
  } finally {
    await f.close();
  }
});

test('with no token configured every API request is refused', async (t) => {
  const f = await fixture(t, new TokenSource({ file: '/nonexistent/petrel-token' }));
  try {
    const r = await call(f.base, '/v1/queue', { token: 'anything' });
    assert.equal(r.status, 401);
    assert.match(r.body.error.message, /no token configured/);
  } finally {
    await f.close();
  }
});

test('bad input gets a precise 400; suppressions are added, listed and removed; no worker: 503', async (t) => {
  const f = await fixture(t, new TokenSource({ token: 'tok' }));
  try {
    const bad = async (path: string, init: RequestInit = {}) => {
      const r = await call(f.base, path, { ...init, token: 'tok' });
      assert.equal(r.status, 400, `${path}: ${JSON.stringify(r.body)}`);
      assert.equal(r.body.error.code, 'PETREL_ERR_API_BAD_REQUEST');
      return r.body.error.message as string;
    };
    assert.match(await bad('/v1/messages?since=yesterday'), /since must be an RFC 3339 time/);
    assert.match(await bad('/v1/messages?limit=0'), /limit must be a whole number/);
    assert.match(
      await bad('/v1/messages?since=2026-02-01T00:00:00Z&until=2026-01-01T00:00:00Z'),
      /since must be before until/,
    );
    assert.match(await bad('/v1/queue/not_a..domain'), /not a domain/);
    // Regression: these were 500s (URIError; times Postgres refuses).
    assert.match(await bad('/v1/messages/%E0'), /malformed percent-encoding/);
    assert.match(await bad('/v1/messages?until=%2B010000-01-01T00:00:00Z'), /years 1 to 9999/);
    assert.match(await bad('/v1/messages?since=-000100-01-01T00:00:00Z'), /years 1 to 9999/);
    const post = (body: string) => ({
      method: 'POST',
      body,
      headers: { 'content-type': 'application/json' },
    });
    assert.match(await bad('/v1/suppressions', post('{')), /not JSON/);
    assert.match(await bad('/v1/suppressions', post('[]')), /JSON object/);
    assert.match(await bad('/v1/suppressions', post('{"address":"nope"}')), /email address/);
    assert.match(
      await bad('/v1/suppressions', post('{"address":"a@example.org","expiresAt":"2001-01-01T00:00:00Z"}')),
      /in the future/,
    );
    assert.match(await bad('/v1/queue/example.org/suspend', post('{"until":"soon"}')), /until must be/);

    const added = await call(f.base, '/v1/suppressions', {
      ...post('{"address":"Bob@Example.org","reason":"asked to stop"}'),
      token: 'tok',
    });
    assert.equal(added.status, 201);
    assert.equal(added.body.suppression.address, 'bob@example.org');
    assert.equal(added.body.suppression.source, 'manual');
    const listed = await call(f.base, '/v1/suppressions?address=bob', { token: 'tok' });
    assert.equal(listed.body.total, 1);
    assert.equal(listed.body.suppressions[0].reason, 'asked to stop');
    // Mirrored to Postgres by the recorder in production; here the KV is the truth the API lists.
    assert.equal(
      (await call(f.base, '/v1/suppressions/bob@example.org', { method: 'DELETE', token: 'tok' })).status,
      200,
    );
    const gone = await call(f.base, '/v1/suppressions/bob@example.org', { method: 'DELETE', token: 'tok' });
    assert.equal(gone.status, 404);

    // No delivery worker listens for queue operations.
    const retry = await call(f.base, '/v1/queue/example.org/retry', { ...post('{}'), token: 'tok' });
    assert.equal(retry.status, 503);
    assert.equal(retry.body.error.code, 'PETREL_ERR_API_NO_WORKERS');

    // Postgres gone: 503 with a stable code, not a hang or a 500.
    await f.postgres.stop();
    const down = await call(f.base, '/v1/messages?q=a@example.org', { token: 'tok' });
    assert.equal(down.status, 503);
    assert.equal(down.body.error.code, 'PETREL_ERR_API_DATABASE_UNAVAILABLE');
  } finally {
    await f.close();
  }
});

test('the OpenAPI document describes exactly the routes the server has', () => {
  const routes = apiRoutes({} as never)
    .map((r) => `${r.method} ${r.path}`)
    .sort();
  const documented = Object.entries(openApiDocument.paths)
    .flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`))
    .sort();
  assert.deepEqual(routes, documented);
});
