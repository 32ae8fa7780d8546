import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { freePort, rangeOutside } from './ports.ts';

async function reservationsDir(t: { after(fn: () => Promise<void>): void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'petrel-ports-test-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** A pid that no process has: a child that has exited. */
async function deadPid(): Promise<number> {
  const child = execFile(process.execPath, ['-e', '']);
  await new Promise((r) => child.once('exit', r));
  return child.pid ?? 0;
}

test('ports come from below the kernel ephemeral range, free for TCP and UDP, and reserved for this process', async (t) => {
  const reservations = await reservationsDir(t);
  const [low] = (await readFile('/proc/sys/net/ipv4/ip_local_port_range', 'utf8')).trim().split(/\s+/);
  const port = await freePort('127.0.0.1', { reservations });
  assert.ok(port < Number(low) && port >= 1024, `${port} below ${low}`);
  assert.equal(await readFile(join(reservations, String(port)), 'utf8'), String(process.pid));
  const server = createServer();
  await new Promise<void>((r) => server.listen({ host: '127.0.0.1', port }, r));
  await new Promise<void>((r) => server.close(() => r()));
});

test('concurrent callers in two processes never get the same port', async (t) => {
  const reservations = await reservationsDir(t);
  // A small range makes a collision likely if reservations did not work: 2 × 120 picks of 300.
  const range: [number, number] = [20_000, 20_299];
  const module = fileURLToPath(new URL('./ports.ts', import.meta.url));
  const script = `
    const { freePort } = await import(${JSON.stringify(module)});
    const ports = await Promise.all(Array.from({ length: 120 }, () =>
      freePort('127.0.0.1', { reservations: ${JSON.stringify(reservations)}, range: [${range.join(',')}] })));
    process.stdout.write(JSON.stringify(ports));`;
  const other = new Promise<number[]>((resolve, reject) =>
    execFile(process.execPath, ['--input-type=module', '-e', script], (error, stdout) =>
      error ? reject(error) : resolve(JSON.parse(stdout) as number[]),
    ),
  );
  const mine = await Promise.all(
    Array.from({ length: 120 }, () => freePort('127.0.0.1', { reservations, range })),
  );
  const theirs = await other;
  const all = [...mine, ...theirs];
  assert.equal(new Set(all).size, all.length, 'every port handed out once');
});

test('a reservation of a live process is respected; one of a process that is gone is taken over', async (t) => {
  const reservations = await reservationsDir(t);
  const port = await freePort('127.0.0.1', { reservations });
  const range: [number, number] = [port, port];
  await writeFile(join(reservations, String(port)), String(process.ppid));
  await assert.rejects(
    freePort('127.0.0.1', { reservations, range }),
    new RegExp(`^Error: no free port in ${port}-${port} on 127\\.0\\.0\\.1$`),
  );
  await writeFile(join(reservations, String(port)), String(await deadPid()));
  assert.equal(await freePort('127.0.0.1', { reservations, range }), port);
  assert.equal(await readFile(join(reservations, String(port)), 'utf8'), String(process.pid));
});

test('a port something else listens on is skipped', async (t) => {
  const reservations = await reservationsDir(t);
  const server = createServer();
  await new Promise<void>((r) => server.listen({ host: '127.0.0.1', port: 0 }, r));
  t.after(() => new Promise<void>((r) => server.close(() => r())));
  const taken = (server.address() as { port: number }).port;
  await assert.rejects(freePort('127.0.0.1', { reservations, range: [taken, taken] }), /no free port/);
  const port = await freePort('127.0.0.1', { reservations, range: [taken, taken + 50] });
  assert.ok(port > taken && port <= taken + 50, String(port));
});

test('the range kept clear of the ephemeral ports: below it, else above it, else every port', () => {
  assert.deepEqual(rangeOutside([32768, 60999]), [22768, 32767]);
  assert.deepEqual(rangeOutside([5000, 60999]), [1024, 4999]);
  // Tuned to start low: above it instead (no longer "no free port in 1024-1023").
  assert.deepEqual(rangeOutside([1024, 50000]), [50001, 60000]);
  assert.deepEqual(rangeOutside([1500, 64900]), [1024, 65535]);
  assert.deepEqual(rangeOutside([1024, 65535]), [1024, 65535]);
});
