// Micro-benchmark: the SMTP DATA decoder (end-of-data search, dot-unstuffing, bare CR/LF checks)
// on 4 KiB messages fed in 1,460-octet TCP-sized chunks. Prints CPU µs per message and MB/s.
import { DataDecoder, dotStuff } from '@petrel/smtp';

const line = `${'x'.repeat(70)}\r\n`;
const body = Buffer.from(
  `${`Subject: bench\r\n\r\n${line.repeat(Math.ceil(4096 / line.length))}`.slice(0, 4096 - 2)}\r\n`,
);
const wire = dotStuff(body);
const chunks: Buffer[] = [];
for (let i = 0; i < wire.length; i += 1460) chunks.push(wire.subarray(i, i + 1460));

function once(): number {
  const d = new DataDecoder({ maxSize: 10 * 1024 * 1024 });
  for (const c of chunks) d.push(c);
  if (!d.done) throw new Error('decoder did not finish');
  return d.body().length;
}

const N = 50_000;
for (let i = 0; i < 5_000; i++) once(); // warm-up
const cpu = process.cpuUsage();
const t0 = process.hrtime.bigint();
let octets = 0;
for (let i = 0; i < N; i++) octets += once();
const wallNs = Number(process.hrtime.bigint() - t0);
const used = process.cpuUsage(cpu);
const cpuUs = (used.user + used.system) / N;
console.log(
  `DataDecoder: ${N} x ${body.length} B messages: ${cpuUs.toFixed(2)} µs CPU/message, ` +
    `${((octets / wallNs) * 1e3).toFixed(0)} MB/s`,
);
