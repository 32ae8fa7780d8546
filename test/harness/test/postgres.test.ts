import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { loadMigrations, migrate, StoreError } from '@petrel/store';
import pg from 'pg';
import { startPostgres } from '../src/index.ts';

test('Postgres starts on a free loopback port, runs the migrations (concurrently, once) and stops', async (t) => {
  const server = await startPostgres(t.after.bind(t));
  assert.match(server.databaseUrl, /^postgres:\/\/postgres@127\.0\.0\.1:\d+\/petrel$/);
  const known = await loadMigrations();
  assert.ok(known.length >= 1);

  // Two processes' worth of migrators at once: the advisory lock lets exactly one apply each file.
  const [a, b] = await Promise.all([migrate(server.databaseUrl), migrate(server.databaseUrl)]);
  assert.deepEqual([...a.applied, ...b.applied].sort(), known.map((m) => m.version).sort());
  assert.equal(a.version, known.at(-1)?.version);

  const client = new pg.Client({ connectionString: server.databaseUrl });
  await client.connect();
  try {
    const { rows } = await client.query<{ table_name: string }>(
      "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY table_name",
    );
    assert.deepEqual(
      rows.map((r) => r.table_name),
      [
        'attempts',
        'events',
        'messages',
        'petrel_migrations',
        'petrel_partitioned',
        'recipients',
        'suppressions',
        'webhook_deliveries',
      ],
    );
    // Re-running is a no-op.
    assert.deepEqual((await migrate(server.databaseUrl)).applied, []);

    // A newer, breaking schema (from a later release) makes this build refuse to run.
    await client.query(
      "INSERT INTO petrel_migrations (version, name, breaking) VALUES (999999, 'future', true)",
    );
    await assert.rejects(migrate(server.databaseUrl), (error: unknown) => {
      assert.ok(error instanceof StoreError);
      assert.equal(error.code, 'PETREL_ERR_SCHEMA_TOO_NEW');
      return true;
    });
  } finally {
    await client.end();
  }

  await server.stop();
  assert.equal(server.process.running, false);
});

test('migrations run concurrently from two processes: each file applied once, both processes succeed', async (t) => {
  const server = await startPostgres(t.after.bind(t));
  const known = await loadMigrations();
  // Two separate Node processes, as two pods starting together, each running the migrator.
  const script = `import { migrate } from '@petrel/store';
    const r = await migrate(process.argv[1]);
    process.stdout.write(JSON.stringify(r));`;
  const run = () =>
    promisify(execFile)(process.execPath, ['--input-type=module', '-e', script, server.databaseUrl], {
      timeout: 120_000,
    });
  const results = (await Promise.all([run(), run()])).map(
    (r) => JSON.parse(r.stdout) as { applied: number[]; version: number },
  );
  assert.deepEqual(
    results.flatMap((r) => r.applied).sort(),
    known.map((m) => m.version).sort(),
    'every migration applied by exactly one of the two',
  );
  for (const r of results) assert.equal(r.version, known.at(-1)?.version);
  const client = new pg.Client({ connectionString: server.databaseUrl });
  await client.connect();
  try {
    const { rows } = await client.query<{ version: number }>(
      'SELECT version FROM petrel_migrations ORDER BY version',
    );
    assert.deepEqual(
      rows.map((r) => r.version),
      known.map((m) => m.version),
    );
  } finally {
    await client.end();
  }
});
