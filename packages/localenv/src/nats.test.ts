import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const INDEX = fileURLToPath(new URL('./index.ts', import.meta.url));

/** Runs findNatsServer in a child with a controlled PATH and cache, returning its error or result. */
async function findIn(
  path: string,
  cache: string,
): Promise<{ code?: string; message?: string; binary?: string }> {
  const script = `import { findNatsServer } from ${JSON.stringify(INDEX)};
try { console.log(JSON.stringify({ binary: await findNatsServer() })); }
catch (e) { console.log(JSON.stringify({ code: e.code, message: e.message })); }`;
  const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script], {
    env: { PATH: path, PETREL_CACHE_DIR: cache, HOME: cache },
  });
  return JSON.parse(stdout);
}

test('without a new-enough nats-server and without Go, findNatsServer fails with instructions', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'petrel-find-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const bin = join(dir, 'bin');
  await run('mkdir', ['-p', bin]);
  // An old nats-server on PATH (like Debian's 2.9) must not be used.
  await writeFile(join(bin, 'nats-server'), '#!/bin/sh\necho "nats-server: v2.9.10"\n');
  await chmod(join(bin, 'nats-server'), 0o755);
  const result = await findIn(bin, join(dir, 'cache'));
  assert.equal(result.code, 'PETREL_ERR_NATS_SERVER_UNAVAILABLE');
  assert.match(result.message ?? '', /found on PATH: nats-server: v2\.9\.10/);
  assert.match(result.message ?? '', /go install github\.com\/nats-io\/nats-server\/v2@v2\.12\.\d+/);
  assert.match(result.message ?? '', /PETREL_NATS_SERVER/);
});

test('a nats-server >= 2.12 on PATH is used as it is', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'petrel-find-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, 'nats-server'), '#!/bin/sh\necho "nats-server: v2.12.3"\n');
  await chmod(join(dir, 'nats-server'), 0o755);
  assert.deepEqual(await findIn(dir, join(dir, 'cache')), { binary: 'nats-server' });
});
