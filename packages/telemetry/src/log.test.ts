import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const LOG_MODULE = fileURLToPath(new URL('./log.ts', import.meta.url));

/** Runs a script that logs through createLogger; returns its stdout lines. */
async function run(script: string): Promise<{ lines: string[]; code: number | null }> {
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, PETREL_LOG_LEVEL: 'info' },
  });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    out += chunk;
  });
  const [code] = (await once(child, 'exit')) as [number | null];
  if (!child.stdout.readableEnded) await once(child.stdout, 'end');
  return { lines: out.split('\n').filter((l) => l !== ''), code };
}

test('log lines written asynchronously are all out when the process exits at once', async () => {
  // A service logs its last words and calls process.exit (fatal start-up errors, shutdown):
  // the asynchronous destination must not lose them.
  const { lines, code } = await run(
    `import { createLogger } from ${JSON.stringify(LOG_MODULE)};
     const log = createLogger('t');
     for (let i = 0; i < 2000; i++) log.info({ i }, 'line');
     log.fatal({ err: new Error('boom') }, 'last words');
     process.exit(3);`,
  );
  assert.equal(code, 3);
  assert.equal(lines.length, 2001);
  const last = JSON.parse(lines.at(-1) as string) as {
    msg: string;
    component: string;
    err: { message: string };
  };
  assert.equal(last.msg, 'last words');
  assert.equal(last.component, 't');
  assert.equal(last.err.message, 'boom');
  assert.deepEqual(
    lines.slice(0, -1).map((l) => (JSON.parse(l) as { i: number }).i),
    Array.from({ length: 2000 }, (_, i) => i),
  );
});

test('credentials are redacted', async () => {
  const { lines } = await run(
    `import { createLogger } from ${JSON.stringify(LOG_MODULE)};
     createLogger('t').info({ password: 'hunter2', auth: { password: 'x', user: 'u' } }, 'login');`,
  );
  assert.equal(lines.length, 1);
  const line = lines[0] as string;
  assert.ok(!line.includes('hunter2') && !line.includes('"x"'), line);
  assert.match(line, /"user":"u"/);
});

test('credentials in child bindings and nested objects are redacted; the caller’s object is unchanged', async () => {
  const { lines } = await run(
    `import { createLogger } from ${JSON.stringify(LOG_MODULE)};
     const fields = { relay: { host: 'h', authorization: 'Bearer s3cret' }, n: 1 };
     createLogger('t').child({ password: 'bound-secret' }).info(fields, 'relay');
     console.log(JSON.stringify(fields));`,
  );
  const logged = lines.find((l) => l.includes('"msg":"relay"')) as string;
  assert.ok(logged !== undefined, lines.join('\n'));
  assert.ok(!logged.includes('s3cret') && !logged.includes('bound-secret'), logged);
  assert.match(logged, /"host":"h"/);
  assert.match(logged, /"authorization":"\[redacted\]"/);
  assert.match(logged, /"password":"\[redacted\]"/);
  assert.match(logged, /"time":"\d{4}-\d\d-\d\dT[\d:.]+Z"/);
  // The object the caller logged keeps its own values.
  assert.ok(
    lines.some((l) => l.includes('"authorization":"Bearer s3cret"') && !l.includes('"msg"')),
    lines.join('\n'),
  );
});
