// Benchmark of the ingress alone publishing to a single-node JetStream (no delivery worker):
// 4 KiB messages over 32 and 100 connections, with and without connection reuse. Prints
// accepted msg/s, the ingress process's CPU per message, and p50/p99 accept latency (final dot
// written → 250 read); and, on a separate fresh ingress process, its RSS with 10,000 idle connections.
// Usage: node bench/ingress.bench.ts [messagesWithReuse=20000] [messagesWithoutReuse=4000] [idle=10000]
import { type ChildProcess, fork } from 'node:child_process';
import { once } from 'node:events';
import { readFile, writeFile } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { compileDirectory, writeRuntimeConfig } from '@petrel/operator';
import { dotStuff } from '@petrel/smtp';
import { runClient, startNats, tempDir } from '@petrel/test-harness';

const withReuse = Number(process.argv[2] ?? 20_000);
const withoutReuse = Number(process.argv[3] ?? 4_000);
const idleCount = Number(process.argv[4] ?? 10_000);
const cleanups: (() => Promise<void> | void)[] = [];
const after = (fn: () => Promise<void> | void) => void cleanups.push(fn);

// A managed domain with the inbound checks off: this measures the engine and the queue, not DNS.
const configDir = await tempDir('bench-config');
await writeFile(
  join(configDir, 'bench.yaml'),
  `apiVersion: petrel.dev/v1alpha1
kind: MailDomain
metadata: {name: bench}
spec:
  domain: example.org
  inbound:
    checks: {spf: false, dkim: false, dmarc: false, arc: false, dmarcReject: false}
`,
);
const dataDir = await tempDir('bench-ingress');
const runtimeConfig = join(dataDir, 'runtime-config.json');
await writeRuntimeConfig(runtimeConfig, await compileDirectory(configDir, 1));
const nats = await startNats(after);

const ingressMain = fileURLToPath(new URL('../services/ingress/src/main.ts', import.meta.url));
// BENCH_CPU_PROFILE=dir writes a V8 CPU profile of the ingress there (inspect with Chrome DevTools).
// biome-ignore lint/suspicious/noUndeclaredEnvVars: a benchmark option, not an input of a turbo task
const profileDir = process.env['BENCH_CPU_PROFILE'];
let ingress: ChildProcess | undefined;
let port = 0;
let pid = 0;

/** Starts a fresh ingress (each measurement gets its own: RSS is not returned to the OS after load). */
async function startIngress(): Promise<void> {
  const child = fork(ingressMain, [], {
    execArgv: [...process.execArgv, ...(profileDir ? ['--cpu-prof', '--cpu-prof-dir', profileDir] : [])],
    env: {
      ...process.env,
      PETREL_NATS_URL: nats.url,
      PETREL_RUNTIME_CONFIG: runtimeConfig,
      PETREL_SMTP_HOST: '127.0.0.1',
      PETREL_SMTP_PORT: '0',
      PETREL_SUBMISSION_PORT: 'off',
      PETREL_SMTPS_PORT: 'off',
      PETREL_HEALTH_PORT: 'off',
      PETREL_TLS_DIR: join(dataDir, 'tls'),
      PETREL_TLS_SELF_SIGNED: 'true',
      PETREL_MAX_CONNECTIONS: String(idleCount + 1000),
      PETREL_MAX_CONNECTIONS_PER_ADDRESS: String(idleCount + 1000),
      PETREL_LOG_LEVEL: 'warn',
    },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  ingress = child;
  port = await new Promise<number>((resolve, reject) => {
    child.on('message', (m: { type?: string; ports?: Record<string, number> }) => {
      if (m.type === 'ready' && m.ports?.['mx'] !== undefined) resolve(m.ports['mx']);
    });
    child.once('exit', (code) => reject(new Error(`ingress exited (${code})`)));
  });
  pid = child.pid ?? 0;
}

async function stopIngress(): Promise<void> {
  const child = ingress;
  if (child !== undefined && child.exitCode === null) {
    // SIGTERM: a graceful stop also lets V8 write the CPU profile.
    child.kill('SIGTERM');
    await once(child, 'exit');
  }
}
after(stopIngress);

/** utime + stime of the ingress process, in µs (procfs clock ticks are 100 Hz). */
async function cpuMicros(): Promise<number> {
  const stat = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1]?.split(' ') ?? [];
  return (Number(stat[11]) + Number(stat[12])) * 10_000;
}

async function rssMiB(): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0) / 1024;
}

const line = `${'x'.repeat(70)}\r\n`;
const message = Buffer.from(
  `${`From: bench@outside.example\r\nTo: rcpt@example.org\r\nSubject: bench\r\n\r\n${line.repeat(60)}`.slice(0, 4094)}\r\n`,
);
const wire = dotStuff(message);
const envelope = 'MAIL FROM:<bench@outside.example> SIZE=4096\r\nRCPT TO:<rcpt@example.org>\r\nDATA\r\n';

/** A minimal pipelining client: reads replies as text, waits for a given reply code. */
class Conn {
  readonly socket: Socket;
  #buffer = '';
  #wake: (() => void) | undefined;
  constructor(socket: Socket) {
    this.socket = socket;
    socket.setNoDelay(true);
    socket.on('data', (c: Buffer) => {
      this.#buffer += c.toString('latin1');
      this.#wake?.();
    });
    socket.on('error', () => undefined);
  }
  static async open(): Promise<Conn> {
    const socket = connect({ host: '127.0.0.1', port });
    await once(socket, 'connect');
    return new Conn(socket);
  }
  /** Waits for the next final reply line ("ddd "), returns its code. */
  async reply(): Promise<number> {
    for (;;) {
      const m = /(?:^|\n)(\d{3}) [^\n]*\n/.exec(this.#buffer);
      if (m !== null) {
        this.#buffer = this.#buffer.slice((m.index ?? 0) + m[0].length);
        return Number(m[1]);
      }
      await new Promise<void>((r) => {
        this.#wake = r;
      });
    }
  }
  async expect(code: number): Promise<void> {
    const got = await this.reply();
    if (got !== code) throw new Error(`expected ${code}, got ${got}`);
  }
  async hello(): Promise<void> {
    await this.expect(220);
    this.socket.write('EHLO bench.example\r\n');
    await this.expect(250);
  }
  /** One message; returns the accept latency in ms. */
  async send(): Promise<number> {
    this.socket.write(envelope);
    await this.expect(250);
    await this.expect(250);
    await this.expect(354);
    const t0 = performance.now();
    this.socket.write(wire);
    await this.expect(250);
    return performance.now() - t0;
  }
}

/**
 * Postfix's smtp-source as the load generator (C, light on CPU, the tool the peer figures in
 * ../shared/notes/peer-performance.md were taken with): -d reuses connections.
 */
async function smtpSource(connections: number, total: number, reuse: boolean): Promise<void> {
  const cpu0 = await cpuMicros();
  const t0 = performance.now();
  const args = ['-s', String(connections), '-m', String(total), '-l', '4096', '-f', 'bench@outside.example'];
  args.push('-t', 'rcpt@example.org', ...(reuse ? ['-d'] : []), `127.0.0.1:${port}`);
  const run = await runClient('smtp-source', args, { timeoutMs: 900_000 });
  if (run.exitCode !== 0) throw new Error(`smtp-source failed (${run.exitCode}): ${run.stderr}`);
  const seconds = (performance.now() - t0) / 1000;
  const cpu = (await cpuMicros()) - cpu0;
  console.log(
    `${String(connections).padStart(3)} sessions, ${reuse ? 'reuse   ' : 'no reuse'} (smtp-source): ` +
      `${total} msgs, ${Math.round(total / seconds)} msg/s accepted, ingress CPU ${Math.round(cpu / total)} µs/msg`,
  );
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
}

async function scenario(connections: number, total: number, reuse: boolean): Promise<void> {
  const latencies: number[] = [];
  let next = 0;
  const cpu0 = await cpuMicros();
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: connections }, async () => {
      let conn: Conn | undefined;
      while (next < total) {
        next++;
        if (conn === undefined) {
          conn = await Conn.open();
          await conn.hello();
        }
        latencies.push(await conn.send());
        if (!reuse) {
          conn.socket.write('QUIT\r\n');
          await conn.expect(221);
          conn.socket.destroy();
          conn = undefined;
        }
      }
      conn?.socket.end('QUIT\r\n');
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  const cpu = (await cpuMicros()) - cpu0;
  latencies.sort((a, b) => a - b);
  console.log(
    `${String(connections).padStart(3)} connections, ${reuse ? 'reuse   ' : 'no reuse'}: ` +
      `${latencies.length} msgs, ${Math.round(latencies.length / seconds)} msg/s accepted, ` +
      `ingress CPU ${Math.round(cpu / latencies.length)} µs/msg, ` +
      `latency p50 ${percentile(latencies, 50).toFixed(2)} ms, p99 ${percentile(latencies, 99).toFixed(2)} ms`,
  );
}

async function idleConnections(): Promise<void> {
  const before = await rssMiB();
  const idle: Conn[] = [];
  for (let i = 0; i < idleCount; i += 500) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(500, idleCount - i) }, async () => {
        const c = await Conn.open();
        await c.expect(220);
        return c;
      }),
    );
    idle.push(...batch);
  }
  const rss = await rssMiB();
  console.log(
    `${idle.length} idle connections (greeted): ingress RSS ${rss.toFixed(0)} MiB ` +
      `(${before.toFixed(0)} MiB before, ${(((rss - before) * 1024) / Math.max(1, idle.length)).toFixed(1)} KiB per connection)`,
  );
  for (const c of idle) c.socket.destroy();
}

try {
  if (idleCount > 0) {
    await startIngress();
    await idleConnections();
    await stopIngress();
  }
  await startIngress();
  await scenario(32, 2000, true); // warm-up
  console.log(
    `ingress alone → JetStream (single node), ${message.length} B messages, 2 cores shared with the load generator`,
  );
  for (const connections of [32, 100]) {
    await scenario(connections, withReuse, true);
    if (withoutReuse > 0) await scenario(connections, withoutReuse, false);
  }
  for (const connections of [32, 100]) {
    await smtpSource(connections, withReuse, true);
    if (withoutReuse > 0) await smtpSource(connections, withoutReuse, false);
  }
} finally {
  for (const fn of cleanups.reverse()) await fn();
}
