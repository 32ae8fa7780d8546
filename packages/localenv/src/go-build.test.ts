import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { buildWithGo, type GoBuildOptions } from './go-build.ts';

/** The build writes `bin` holding `label`; a build is complete when `bin` is there. */
function options(dir: string, label: string): GoBuildOptions {
  return {
    dir,
    what: 'test',
    takes: 'no time',
    build: async (staging) => await writeFile(join(staging, 'bin'), label),
    complete: async () =>
      await readFile(join(dir, 'bin')).then(
        () => true,
        () => false,
      ),
    error: (kind, cause) => new Error(kind, { cause }),
  };
}

async function parent(t: { after(fn: () => Promise<void>): void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'petrel-go-build-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

test('a build is renamed into place; one that lost the race leaves the winner where it is', async (t) => {
  const root = await parent(t);
  const dir = join(root, 'tool');
  await buildWithGo(options(dir, 'first'));
  assert.equal(await readFile(join(dir, 'bin'), 'utf8'), 'first');
  // A second build finishing later: the finished one stays (it used to be removed, then replaced).
  await buildWithGo(options(dir, 'second'));
  assert.equal(await readFile(join(dir, 'bin'), 'utf8'), 'first');
  assert.deepEqual(await readdir(root), ['tool'], 'no staging directory left');
});

test('a partial build left by a crash is replaced', async (t) => {
  const root = await parent(t);
  const dir = join(root, 'tool');
  await mkdir(dir);
  await writeFile(join(dir, 'half'), '');
  await buildWithGo(options(dir, 'whole'));
  assert.deepEqual(await readdir(dir), ['bin']);
  assert.equal(await readFile(join(dir, 'bin'), 'utf8'), 'whole');
});
