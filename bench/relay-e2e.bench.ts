// End-to-end smoke benchmark of `petrel dev` (not the delivery issue's full benchmark): N messages
// of 4 KiB over C reused connections from our own SMTP client -> ingress -> JetStream -> delivery
// -> the harness's sink. Prints accepted msg/s, delivered msg/s and the delivery lag.
// Usage: node bench/relay-e2e.bench.ts [messages=5000] [connections=32]
import { copyFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SmtpClient } from '@petrel/smtp';
import { startPetrelDev, startSmtpSink, tempDir, waitFor } from '@petrel/test-harness';

const N = Number(process.argv[2] ?? 5000);
const C = Number(process.argv[3] ?? 32);
const cleanups: (() => Promise<void> | void)[] = [];
const after = (fn: () => Promise<void> | void) => cleanups.push(fn);

const sink = await startSmtpSink();
after(() => sink.close());
const configDir = await tempDir('bench-config');
await copyFile(
  new URL('../examples/local/example-org.yaml', import.meta.url),
  join(configDir, 'example-org.yaml'),
);
const dev = await startPetrelDev(after, { configDir, smarthost: sink.address });

const line = `${'x'.repeat(76)}\r\n`;
const body = Buffer.from(`Subject: bench\r\n\r\n${line.repeat(52)}`);
let next = 0;
let accepted = 0;
const started = performance.now();
await Promise.all(
  Array.from({ length: C }, async () => {
    const client = await SmtpClient.connect({
      host: '127.0.0.1',
      port: dev.smtpPort,
      localName: 'bench.example',
    });
    while (next < N) {
      next++;
      const r = await client.send({ from: 'bench@outside.example', to: ['rcpt@example.org'] }, body);
      if (r.dataReply?.code === 250) accepted++;
    }
    await client.quit();
  }),
);
const acceptedMs = performance.now() - started;
await waitFor(() => sink.messages.length >= accepted, {
  timeoutMs: 600_000,
  intervalMs: 20,
  message: 'all delivered',
});
const deliveredMs = performance.now() - started;
console.log(
  `petrel dev e2e: ${N} x ${body.length} B over ${C} connections: accepted ${accepted} at ` +
    `${((accepted / acceptedMs) * 1000).toFixed(0)} msg/s; all delivered after ${(deliveredMs / 1000).toFixed(2)} s ` +
    `(${((accepted / deliveredMs) * 1000).toFixed(0)} msg/s end to end)`,
);
for (const fn of cleanups.reverse()) await fn();
