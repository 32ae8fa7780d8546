// Deferred mail must not slow fresh mail (invariant 4) nor fill a worker's memory
// (docs/queue-model.md). N entries for a dead destination are queued as deferred (message
// schedules with due times spread over the next hour, as retries would be); then M fresh entries
// for a healthy destination are published and the time until the sink has them all is measured,
// against a baseline run without the backlog. Prints fresh msg/s both ways and the worker's RSS.
// Usage: node bench/deferred-backlog.bench.ts [deferred=100000] [fresh=5000]
import { type ChildProcess, fork } from 'node:child_process';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from '@petrel/localenv';
import { compileDirectory, writeRuntimeConfig } from '@petrel/operator';
import { timestampFromDate } from '@petrel/proto';
import { deferEntry, encodeEnvelope, newEnvelope, newMessageId, publishEntry } from '@petrel/queue';
import { startQueue } from '@petrel/queue/testing';
import { startDnsServer, startSmtpSink, tempDir, waitFor } from '@petrel/test-harness';

const deferredCount = Number(process.argv[2] ?? 100_000);
const freshCount = Number(process.argv[3] ?? 5_000);
const cleanups: (() => Promise<void> | void)[] = [];
const after = (fn: () => Promise<void> | void) => void cleanups.push(fn);

const body = Buffer.from(`Subject: backlog\r\n\r\n${`${'x'.repeat(76)}\r\n`.repeat(52)}`);

async function run(backlog: number): Promise<{ msgPerSec: number; rssMiB: number }> {
  const { url, js } = await startQueue({ after }, { ackWaitMs: 60_000 });
  const port = await freePort();
  const sink = await startSmtpSink({ host: '127.0.0.1', port });
  after(() => sink.close());
  const dns = await startDnsServer({
    after,
    records: [
      { type: 'MX', name: 'healthy.test', exchange: 'mx.healthy.test', priority: 10 },
      { type: 'A', name: 'mx.healthy.test', address: '127.0.0.1' },
      { type: 'MX', name: 'dead.test', exchange: 'mx.dead.test', priority: 10 },
      { type: 'A', name: 'mx.dead.test', address: '127.0.0.2' },
    ],
  });
  const entry = (domain: string) => {
    const messageId = newMessageId();
    return newEnvelope({
      messageId,
      sender: 'bench@origin.example',
      destinationDomain: domain,
      recipients: [{ address: `user@${domain}` }],
      receivedAt: timestampFromDate(new Date()),
      content: { case: 'raw', value: body },
    });
  };
  const t0 = performance.now();
  for (let i = 0; i < backlog; i += 1000) {
    await Promise.all(
      Array.from({ length: Math.min(1000, backlog - i) }, () => {
        const e = entry('dead.test');
        return deferEntry(js, {
          messageId: e.messageId,
          destinationDomain: 'dead.test',
          payload: encodeEnvelope(e),
          attempt: 3,
          // Due over the next hour, none during the measurement.
          at: new Date(Date.now() + 600_000 + Math.random() * 3_000_000),
          timeoutMs: 30_000,
        });
      }),
    );
  }
  if (backlog > 0)
    console.log(`  ${backlog} deferred entries queued in ${((performance.now() - t0) / 1000).toFixed(1)} s`);

  const dir = await tempDir('backlog');
  const configDir = await tempDir('backlog-config');
  const runtimeConfig = join(dir, 'runtime-config.json');
  await writeRuntimeConfig(runtimeConfig, await compileDirectory(configDir, 1));
  const worker: ChildProcess = fork(
    fileURLToPath(new URL('../services/delivery/src/main.ts', import.meta.url)),
    [],
    {
      env: {
        ...process.env,
        PETREL_NATS_URL: url,
        PETREL_RUNTIME_CONFIG: runtimeConfig,
        PETREL_DNS_SERVERS: dns.address,
        PETREL_MX_PORT: String(port),
        PETREL_LOG_LEVEL: 'warn',
      },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    },
  );
  after(async () => {
    if (worker.exitCode === null) {
      worker.kill('SIGTERM');
      await once(worker, 'exit');
    }
  });
  await new Promise<void>((resolve) =>
    worker.on('message', (m: { type?: string }) => m.type === 'ready' && resolve()),
  );

  const started = performance.now();
  for (let i = 0; i < freshCount; i += 500) {
    await Promise.all(
      Array.from({ length: Math.min(500, freshCount - i) }, () =>
        publishEntry(js, entry('healthy.test'), { timeoutMs: 30_000 }),
      ),
    );
  }
  await waitFor(() => (sink.messages.length >= freshCount ? true : undefined), {
    timeoutMs: 600_000,
    intervalMs: 20,
  });
  const seconds = (performance.now() - started) / 1000;
  const status = await readFile(`/proc/${worker.pid}/status`, 'utf8');
  const rssMiB = Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0) / 1024;
  for (const fn of cleanups.splice(0).reverse()) await fn();
  return { msgPerSec: freshCount / seconds, rssMiB };
}

try {
  const baseline = await run(0);
  console.log(
    `no backlog: ${freshCount} fresh entries at ${baseline.msgPerSec.toFixed(0)} msg/s; worker RSS ${baseline.rssMiB.toFixed(0)} MiB`,
  );
  const loaded = await run(deferredCount);
  console.log(
    `${deferredCount} deferred for a dead destination: fresh at ${loaded.msgPerSec.toFixed(0)} msg/s ` +
      `(${((loaded.msgPerSec / baseline.msgPerSec) * 100).toFixed(0)} % of baseline); worker RSS ${loaded.rssMiB.toFixed(0)} MiB`,
  );
} finally {
  for (const fn of cleanups.reverse()) await fn();
}
