import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startPetrelDev, waitFor } from '@petrel/test-harness';
import { exampleConfigDir } from './fixtures.ts';

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  test(`petrel dev reports readiness and stops every component cleanly on ${signal}`, async (t) => {
    const dev = await startPetrelDev(t.after.bind(t), { configDir: await exampleConfigDir() });
    const ready = await waitFor(
      async () => {
        const res = await fetch(`http://127.0.0.1:${dev.httpPort}/readyz`);
        return res.status === 200
          ? ((await res.json()) as { components: { name: string; ready: boolean }[] })
          : undefined;
      },
      { timeoutMs: 10_000, message: '/readyz to answer 200' },
    );
    assert.deepEqual(ready.components.map((c) => c.name).sort(), ['delivery', 'ingress', 'recorder']);

    const code = await dev.stop(signal);
    assert.equal(code, 0, dev.output());
    const lines = dev
      .output()
      .split('\n')
      .filter((l) => l.startsWith('petrel: '));
    assert.match(lines[0] ?? '', /^petrel: accepting mail on smtp:\/\/127\.0\.0\.1:\d+/);
    assert.deepEqual(lines.slice(1), [
      'petrel: ingress stopped',
      'petrel: delivery stopped',
      'petrel: recorder stopped',
      'petrel: nats-server stopped',
      'petrel: postgres stopped',
    ]);
  });
}

test('petrel dev refuses an invalid config directory with a message naming the file and the field', async (t) => {
  const configDir = await exampleConfigDir();
  const { writeFile } = await import('node:fs/promises');
  await writeFile(
    `${configDir}/broken.yaml`,
    'apiVersion: petrel.dev/v1alpha1\nkind: MailDomain\nmetadata: {name: x}\nspec: {domain: "no"}\n',
  );
  await assert.rejects(
    startPetrelDev(t.after.bind(t), { configDir }),
    /broken\.yaml#1: invalid MailDomain[\s\S]*fully qualified/,
  );
});

test('a component that cannot start makes petrel dev stop everything and exit 1, showing why', async (t) => {
  // The SMTP port is taken: the ingress fails to listen. Before the fix the config watcher kept
  // petrel dev alive after it had stopped everything, so this start never ended.
  const { createServer } = await import('node:net');
  const taken = createServer();
  await new Promise<void>((r) => taken.listen({ host: '127.0.0.1', port: 0 }, r));
  t.after(() => new Promise<void>((r) => taken.close(() => r())));
  const port = (taken.address() as { port: number }).port;
  const failed = await startPetrelDev(t.after.bind(t), {
    configDir: await exampleConfigDir(),
    smtpPort: port,
  }).then(
    () => assert.fail('petrel dev started on a taken port'),
    (error: unknown) => (error instanceof Error ? error.message : String(error)),
  );
  assert.match(failed, /^petrel dev exited \(1\) before accepting mail/);
  assert.match(failed, /petrel: ingress exited \(1\) during start; see \S+ingress\.log; its last lines:/);
  assert.match(failed, new RegExp(`EADDRINUSE[^\\n]*${port}`));
  assert.match(failed, /petrel: recorder stopped\npetrel: nats-server stopped\npetrel: postgres stopped/);
});

test('a component that dies later makes petrel dev stop everything and exit 1, showing its last log lines', async (t) => {
  const dev = await startPetrelDev(t.after.bind(t), { configDir: await exampleConfigDir() });
  const { execFileSync } = await import('node:child_process');
  const pids = execFileSync('pgrep', ['-g', String(dev.pgid), '-f', 'delivery/src/main\\.ts'], {
    encoding: 'utf8',
  })
    .trim()
    .split('\n')
    .map(Number);
  const [pid] = pids;
  assert.ok(
    pids.length === 1 && pid !== undefined && pid > 0,
    `one delivery process in the group: ${pids.join(',')}`,
  );
  // Never 0: kill(0) would signal this test's own process group.
  process.kill(pid, 'SIGKILL');
  // Not dev.stop(): petrel dev must exit by itself.
  const code = await Promise.race([
    dev.exited,
    new Promise<'running'>((r) => setTimeout(() => r('running'), 60_000).unref()),
  ]);
  assert.equal(code, 1, dev.output());
  assert.match(dev.output(), /petrel: delivery exited unexpectedly \(null\); its last lines:\n {2}\S/);
  assert.match(dev.output(), /petrel: stopping\npetrel: ingress stopped\n/);
});
