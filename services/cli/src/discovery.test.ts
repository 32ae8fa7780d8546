import assert from 'node:assert/strict';
import { resolve } from 'node:path';
import { test } from 'node:test';
import { type DiscoveryInput, resolveApi } from './discovery.ts';
import { CliError, CliErrorCode } from './errors.ts';

const CWD = '/home/me/project';

/** resolveApi over a set of files (absolute path → text). */
function resolveWith(files: Record<string, string>, input: Partial<DiscoveryInput>) {
  return resolveApi({
    dataDir: './.petrel',
    env: {},
    cwd: CWD,
    readText: (path) => files[path],
    ...input,
  });
}

const devFiles = {
  [resolve(CWD, '.petrel/api.json')]: JSON.stringify({
    url: 'http://127.0.0.1:8026',
    tokenFile: '/home/me/project/.petrel/api-token',
    pid: 42,
  }),
  '/home/me/project/.petrel/api-token': '# made by petrel dev\n\nlocal-token\n',
};

function code(expected: CliErrorCode) {
  return (error: unknown) => error instanceof CliError && error.code === expected;
}

test('flags, then the environment, then the data dir; each source named', () => {
  const env = { PETREL_API: 'https://api.example.net/petrel', PETREL_TOKEN: 'env-token' };
  const flags = resolveWith(devFiles, { api: 'https://other.example.net', token: 'flag-token', env });
  assert.equal(flags.url.href, 'https://other.example.net/');
  assert.deepEqual([flags.urlFrom, flags.token, flags.tokenFrom], ['--api', 'flag-token', '--token']);
  assert.equal(flags.local, undefined);

  const fromEnv = resolveWith(devFiles, { env });
  // A path prefix is kept, as a directory: the API's paths are relative to it.
  assert.equal(fromEnv.url.href, 'https://api.example.net/petrel/');
  assert.deepEqual(
    [fromEnv.urlFrom, fromEnv.token, fromEnv.tokenFrom],
    ['PETREL_API', 'env-token', 'PETREL_TOKEN'],
  );

  const local = resolveWith(devFiles, {});
  assert.equal(local.url.href, 'http://127.0.0.1:8026/');
  assert.equal(local.urlFrom, '.petrel/api.json');
  assert.equal(local.token, 'local-token');
  assert.equal(local.tokenFrom, "/home/me/project/.petrel/api-token (petrel dev's token)");
  assert.deepEqual(local.local, { dataDir: './.petrel', apiFile: '.petrel/api.json', pid: 42 });

  // The URL from the data dir, the token from the environment.
  assert.equal(resolveWith(devFiles, { env: { PETREL_TOKEN: 'env-token' } }).tokenFrom, 'PETREL_TOKEN');
});

test("petrel dev's token goes to loopback addresses only", () => {
  const files = { [resolve(CWD, '.petrel/api-token')]: 'local-token\n' };
  assert.equal(resolveWith(files, { api: 'http://localhost:9000' }).token, 'local-token');
  assert.equal(resolveWith(files, { api: 'http://127.0.0.2:9000' }).token, 'local-token');
  assert.throws(() => resolveWith(files, { api: 'https://petrel.example.net' }), code(CliErrorCode.NoToken));
  assert.throws(() => resolveWith({}, { api: 'http://127.0.0.1:9000' }), code(CliErrorCode.NoToken));
});

test('nothing found, or broken files: errors that say what to do', () => {
  assert.throws(
    () => resolveWith({}, {}),
    (e: unknown) => code(CliErrorCode.NoApi)(e) && /start `petrel dev`/.test((e as CliError).hint ?? ''),
  );
  // A token but no api.json: petrel dev ran here but does not now.
  assert.throws(
    () => resolveWith({ [resolve(CWD, '.petrel/api-token')]: 't' }, {}),
    /petrel dev is not running with data dir \.\/\.petrel/,
  );
  const apiFile = resolve(CWD, '.petrel/api.json');
  assert.throws(() => resolveWith({ [apiFile]: '{' }, {}), code(CliErrorCode.LocalApiFile));
  assert.throws(() => resolveWith({ [apiFile]: '{"url": 1}' }, {}), code(CliErrorCode.LocalApiFile));
  assert.throws(
    () => resolveWith({ [apiFile]: JSON.stringify({ url: 'http://127.0.0.1:1', tokenFile: '/gone' }) }, {}),
    /petrel dev's token file \/gone \(named in \.petrel\/api\.json\) does not exist/,
  );
  assert.throws(
    () => resolveWith({ ...devFiles, '/home/me/project/.petrel/api-token': '# nothing\n' }, {}),
    /holds no token/,
  );
  assert.throws(() => resolveWith({}, { api: 'ftp://x', token: 't' }), code(CliErrorCode.Usage));
  assert.throws(() => resolveWith({}, { api: 'http://u:p@x', token: 't' }), /not in the URL/);
  assert.throws(() => resolveWith({}, { api: 'http://x', token: 'a b' }), /contains spaces/);
  assert.throws(
    () =>
      resolveWith(
        {},
        {
          readText: () => {
            throw Object.assign(new Error('EACCES: permission denied'), { code: 'EACCES' });
          },
        },
      ),
    /cannot read petrel dev's API file \.petrel\/api\.json: EACCES/,
  );
});
