// The delivery issue's end-to-end benchmark: Postfix's smtp-source → ingress → JetStream →
// delivery worker → SMTP sink, all of `petrel dev` on this machine, in the two shapes of
// ../shared/notes/peer-performance.md (4 KiB over 32 sessions, 10 KiB over 100 sessions, each
// session reusing its connection, one unique recipient per message).
//
// The path measured is outbound relaying: the load generator sits in a relay network
// (PETREL_RELAY_NETWORKS=127.0.0.0/8, Postfix's mynetworks; smtp-source has no AUTH), sends as
// bench@example.org (a MailDomain of ours, no DKIM keys unless BENCH_DKIM is set) to
// <n>rcpt@example.net, a domain we do not manage: the worker looks up its MX (mx.example.net →
// 127.0.0.1, from the harness's dnsmasq) and delivers on --mx-port to the sink. Inbound checks
// (SPF/DKIM/DMARC/ARC), greylisting and tarpitting do not run for relay networks.
// BENCH_ROUTE=smarthost delivers through --smarthost instead of MX lookups.
//
// For each shape, on a fresh `petrel dev` (fresh data dir): a warm-up run, then N messages.
// Prints accepted msg/s (smtp-source's run time: it exits after its last 250), delivered msg/s
// (until the sink has every message), CPU µs and read/write system calls per message of each
// process (utime+stime from /proc/<pid>/stat, syscr/syscw from /proc/<pid>/io, between the start
// of the run and the last delivery; the processes of `petrel dev` are found by its process group),
// peak RSS (VmHWM), and every message lost or delivered twice (the harness's sink counts each
// recipient's sequence number). When mail is missing (no progress for 30 s), it prints the queue's
// consumers and the delivery workers' shard leases, and keeps the components' logs.
//
// Usage: node bench/relay-smtp-source.bench.ts [messages=20000] [shapes=4096x32,10240x100]
// Options (environment):
//   BENCH_SINK=harness|smtp-sink  the harness's sink in this process, exact per-recipient counts
//     (default); or Postfix's smtp-sink (C, a counting sink like the peer figures'; a count only)
//   BENCH_ROUTE=mx|smarthost      (mx)
//   BENCH_DKIM=off|ed25519|rsa|both  signing keys for example.org (off)
//   BENCH_WARMUP=N                messages before each measured run (2000)
//   BENCH_KEEP_LOGS=1             keep a copy of the components' logs (always done when mail is missing)
//   BENCH_CPU_PROFILE=dir         V8 CPU profiles of every Node process of `petrel dev`, one
//     subdirectory per shape (summarise them with bench/cpuprofile-top.ts)
//   PETREL_*                      passed on to the components (e.g. PETREL_MAX_CONNECTIONS_PER_HOST)
import { spawn } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { once } from 'node:events';
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { cp, mkdir, mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { connect as connectNats } from '@nats-io/transport-node';
import { freePort } from '@petrel/localenv';
import { STREAM_OUTBOUND } from '@petrel/queue';
import {
  type PetrelDev,
  type ReceivedMessage,
  runClient,
  startDnsServer,
  startPetrelDev,
  startSmtpSink,
  tempDir,
  waitFor,
} from '@petrel/test-harness';

const {
  BENCH_ROUTE,
  BENCH_DKIM,
  BENCH_SINK,
  BENCH_WARMUP,
  BENCH_CPU_PROFILE,
  BENCH_KEEP_LOGS,
  NODE_OPTIONS,
} = process.env;
const SINK = BENCH_SINK ?? 'harness';
const ROUTE = BENCH_ROUTE ?? 'mx';
const DKIM = BENCH_DKIM ?? 'off';
const WARMUP = Number(BENCH_WARMUP ?? 2000);
const PROFILE_DIR = BENCH_CPU_PROFILE;
const N = Number(process.argv[2] ?? 20_000);
const SHAPES = (process.argv[3] ?? '4096x32,10240x100').split(',').map((s) => {
  const [size = '', sessions = ''] = s.split('x');
  return { size: Number(size), sessions: Number(sessions) };
});
if (!['mx', 'smarthost'].includes(ROUTE)) throw new Error(`BENCH_ROUTE: mx or smarthost, not ${ROUTE}`);
if (!['harness', 'smtp-sink'].includes(SINK))
  throw new Error(`BENCH_SINK: harness or smtp-sink, not ${SINK}`);
if (!['off', 'ed25519', 'rsa', 'both'].includes(DKIM)) throw new Error(`BENCH_DKIM: off|ed25519|rsa|both`);

const SENDER = 'bench@example.org';
const DEST = 'example.net';
const TICK_US = 10_000;
const STALL_MS = 30_000; // procfs clock ticks are 100 Hz

const cleanups: (() => Promise<void> | void)[] = [];
const _after = (fn: () => Promise<void> | void) => void cleanups.push(fn);

/** The MailDomain of the sender (with DKIM keys when asked), managed; the destination is not. */
async function writeConfig(dir: string): Promise<void> {
  const keys: { selector: string; algorithm: string; pem: string }[] = [];
  if (DKIM === 'rsa' || DKIM === 'both') {
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    keys.push({
      selector: 'rsa',
      algorithm: 'rsa-sha256',
      pem: String(privateKey.export({ type: 'pkcs8', format: 'pem' })),
    });
  }
  if (DKIM === 'ed25519' || DKIM === 'both') {
    const { privateKey } = generateKeyPairSync('ed25519');
    keys.push({
      selector: 'ed',
      algorithm: 'ed25519-sha256',
      pem: String(privateKey.export({ type: 'pkcs8', format: 'pem' })),
    });
  }
  const indent = (pem: string) =>
    pem
      .trim()
      .split('\n')
      .map((l) => `    ${l}`)
      .join('\n');
  const dkim =
    keys.length === 0
      ? ''
      : `  dkim:\n    keys:\n${keys
          .map(
            (k) =>
              `      - {selector: ${k.selector}, algorithm: ${k.algorithm}, privateKeySecretRef: {name: bench-dkim, key: ${k.selector}}}\n`,
          )
          .join('')}`;
  const secret =
    keys.length === 0
      ? ''
      : `---\napiVersion: v1\nkind: Secret\nmetadata: {name: bench-dkim}\nstringData:\n${keys
          .map((k) => `  ${k.selector}: |\n${indent(k.pem)}\n`)
          .join('')}`;
  await writeFile(
    join(dir, 'bench.yaml'),
    `apiVersion: petrel.dev/v1alpha1
kind: MailDomain
metadata: {name: bench}
spec:
  domain: example.org
${dkim}${secret}`,
  );
}

interface Proc {
  pid: number;
  name: string;
}

/** Every process of the `petrel dev` process group, named by what it runs. */
async function groupProcesses(pgid: number): Promise<Proc[]> {
  const found: Proc[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = await readFile(`/proc/${entry}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(') ') + 2).split(' ');
      if (Number(fields[2]) !== pgid) continue;
      const cmdline = (await readFile(`/proc/${entry}/cmdline`, 'utf8')).replaceAll('\0', ' ');
      const pid = Number(entry);
      const name =
        pid === pgid
          ? 'petrel dev'
          : cmdline.includes('ingress/src/main.ts')
            ? 'ingress'
            : cmdline.includes('delivery/src/main.ts')
              ? 'delivery'
              : cmdline.includes('nats-server')
                ? 'nats-server'
                : cmdline.includes('postgres')
                  ? 'postgres'
                  : (cmdline.split(' ')[0] ?? entry);
      found.push({ pid, name });
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

/** utime + stime (µs) of a process, and stime alone; 0 once it is gone. */
async function cpuMicros(pid: number | 'self'): Promise<{ cpu: number; sys: number }> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(') ') + 2).split(' ');
    return { cpu: (Number(f[11]) + Number(f[12])) * TICK_US, sys: Number(f[12]) * TICK_US };
  } catch {
    return { cpu: 0, sys: 0 };
  }
}

/** CPU of our waited-for children (cutime + cstime, µs): smtp-source once it has exited. */
async function childrenCpuMicros(): Promise<number> {
  const stat = await readFile('/proc/self/stat', 'utf8');
  const f = stat.slice(stat.lastIndexOf(') ') + 2).split(' ');
  return (Number(f[13]) + Number(f[14])) * TICK_US;
}

/** Read and write system calls so far (syscr, syscw of /proc/<pid>/io: read/readv, write/writev...). */
async function syscalls(pid: number | 'self'): Promise<{ reads: number; writes: number }> {
  try {
    const io = await readFile(`/proc/${pid}/io`, 'utf8');
    return {
      reads: Number(/syscr:\s+(\d+)/.exec(io)?.[1] ?? 0),
      writes: Number(/syscw:\s+(\d+)/.exec(io)?.[1] ?? 0),
    };
  } catch {
    return { reads: 0, writes: 0 };
  }
}

interface Usage {
  cpu: number;
  /** Of which in the kernel (system calls; on loopback a send also runs the receiver's TCP input). */
  sys: number;
  reads: number;
  writes: number;
}

async function usage(pid: number | 'self'): Promise<Usage> {
  const [cpu, io] = await Promise.all([cpuMicros(pid), syscalls(pid)]);
  return { ...cpu, ...io };
}

function minus(a: Usage, b: Usage | undefined): Usage {
  return {
    cpu: a.cpu - (b?.cpu ?? 0),
    sys: a.sys - (b?.sys ?? 0),
    reads: a.reads - (b?.reads ?? 0),
    writes: a.writes - (b?.writes ?? 0),
  };
}

async function peakRssMiB(pid: number): Promise<number> {
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    return Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? 0) / 1024;
  } catch {
    return 0;
  }
}

/** The next hop: counts what it took, per run. */
interface BenchSink {
  readonly host: string;
  readonly port: number;
  /** A process of its own whose CPU is reported (smtp-sink); else it runs in this process. */
  readonly pid: number | undefined;
  readonly name: string;
  /** Starts counting a run of messages whose recipients are <n><tag>@...; returns a view of it. */
  run(tag: string): SinkRun;
  close(): Promise<void>;
}

interface SinkRun {
  delivered(): number;
  firstAt(): number | undefined;
  lastAt(): number | undefined;
  /** Exact when the sink sees recipients: every sequence number 1..sent once. */
  check(sent: number): { duplicates: number; lost: number; examples: number[]; detail: string };
}

/**
 * The harness's sink in this process, counting each recipient's sequence number (smtp-source -N
 * prepends it), so that a message lost or delivered twice is named.
 */
async function harnessSink(): Promise<BenchSink> {
  const runs = new Map<string, { counts: Map<number, number>; first?: number; last?: number }>();
  let unexpected = 0;
  let signed = 0;
  const sink = await startSmtpSink({
    onMessage: (message: ReceivedMessage) => {
      const now = performance.now();
      if (DKIM !== 'off' && message.data.includes('DKIM-Signature:')) signed++;
      for (const rcpt of message.rcptTo) {
        const m = /^(\d+)([a-z]+)@/.exec(rcpt);
        const run = m === null ? undefined : runs.get(m[2] ?? '');
        if (m === null || run === undefined) {
          unexpected++;
          continue;
        }
        const n = Number(m[1]);
        run.counts.set(n, (run.counts.get(n) ?? 0) + 1);
        run.first ??= now;
        run.last = now;
      }
      // Count, do not keep: 20,000 × 10 KiB would sit in this process's heap.
      sink.clear();
    },
  });
  return {
    host: sink.host,
    port: sink.port,
    pid: undefined,
    name: 'sink (bench process)',
    run(tag) {
      const run: { counts: Map<number, number>; first?: number; last?: number } = { counts: new Map() };
      runs.set(tag, run);
      return {
        delivered: () => run.counts.size,
        firstAt: () => run.first,
        lastAt: () => run.last,
        check(sent) {
          let duplicates = 0;
          for (const c of run.counts.values()) duplicates += c - 1;
          const numbers = [...run.counts.keys()].sort((a, b) => a - b);
          // smtp-source numbers from 1 (3.7) or 0: accept either, require `sent` in a row.
          const base = numbers[0] === 0 ? 0 : 1;
          const missing: number[] = [];
          for (let n = base; n < base + sent; n++) if (!run.counts.has(n)) missing.push(n);
          return {
            duplicates,
            lost: missing.length,
            examples: missing.slice(0, 5),
            detail:
              `sequence ${numbers[0]}..${numbers.at(-1)}, unexpected recipients ${unexpected}` +
              (DKIM === 'off' ? '' : `, ${signed} DKIM-signed in all runs`),
          };
        },
      };
    },
    close: () => sink.close(),
  };
}

/**
 * Postfix's smtp-sink (C, a counting sink like the one of the peer figures): it only counts messages (its
 * -c counters), so loss and duplicates are seen as a count that is not exactly `sent`.
 */
async function postfixSink(): Promise<BenchSink> {
  const port = await freePort();
  // Its counter goes to a file, read every few milliseconds: read from a pipe, it woke this
  // process for every message, ~30 µs of the machine's CPU per message.
  const counterFile = join(await tempDir('bench-smtp-sink'), 'counter');
  const counterFd = openSync(counterFile, 'w+');
  // As root it must drop privileges (-u); -a -C -F: no AUTH, XCLIENT, XFORWARD offered.
  const child = spawn(
    'smtp-sink',
    ['-c', '-a', '-C', '-F', '-m', '1024', '-u', 'nobody', `127.0.0.1:${port}`, '1024'],
    {
      stdio: ['ignore', counterFd, 'pipe'],
    },
  );
  let count = 0;
  let time = 0;
  let active: { base: number; first?: number } | undefined;
  const last = Buffer.alloc(128);
  const poll = (): void => {
    // "sess=S quit=Q mesg=M\r" after each message, session end and QUIT: the last complete one.
    const size = fstatSync(counterFd).size;
    const from = Math.max(0, size - last.length);
    const text = last.toString('latin1', 0, readSync(counterFd, last, 0, last.length, from));
    const end = text.lastIndexOf('\r');
    const at = text.lastIndexOf('mesg=', end);
    if (at === -1 || end === -1) return;
    const n = Number(text.slice(at + 5, end));
    if (n !== count) {
      count = n;
      time = performance.now();
      if (active !== undefined && active.first === undefined && count > active.base) active.first = time;
    }
  };
  // Deliveries are timed to within this interval (5 ms of a run of seconds), also while the run
  // awaits smtp-source and nothing asks for the count.
  const poller = setInterval(poll, 5);
  let stderr = '';
  child.stderr?.on('data', (c: Buffer) => {
    stderr += c.toString();
  });
  const exited = once(child, 'exit');
  await waitFor(
    async () =>
      child.exitCode !== null ||
      (await new Promise<boolean>((resolve) => {
        const s = connect({ host: '127.0.0.1', port }, () => {
          s.destroy();
          resolve(true);
        });
        s.on('error', () => resolve(false));
      })),
    { timeoutMs: 10_000, intervalMs: 50, message: 'smtp-sink listening' },
  );
  if (child.exitCode !== null) throw new Error(`smtp-sink exited: ${stderr}`);
  return {
    host: '127.0.0.1',
    port,
    pid: child.pid,
    name: 'smtp-sink',
    run() {
      poll();
      const run: { base: number; first?: number } = { base: count };
      active = run;
      return {
        delivered: () => {
          poll();
          return count - run.base;
        },
        firstAt: () => run.first,
        lastAt: () => (count > run.base ? time : undefined),
        check(sent) {
          poll();
          const got = count - run.base;
          return {
            duplicates: Math.max(0, got - sent),
            lost: Math.max(0, sent - got),
            examples: [],
            detail: `smtp-sink counted ${got} messages (a count only: a loss and a duplicate would cancel out)`,
          };
        },
      };
    },
    async close() {
      clearInterval(poller);
      if (child.exitCode === null) child.kill('SIGTERM');
      await exited;
      closeSync(counterFd);
    },
  };
}

/** smtp-source: S sessions reusing their connection, M messages of `size` payload bytes. */
async function smtpSource(port: number, sessions: number, messages: number, size: number, tag: string) {
  const args = ['-s', String(sessions), '-m', String(messages), '-l', String(size), '-d', '-N'];
  args.push('-M', 'bench.example', '-f', SENDER, '-t', `${tag}@${DEST}`, `127.0.0.1:${port}`);
  const run = await runClient('smtp-source', args, { timeoutMs: 900_000 });
  if (run.exitCode !== 0) throw new Error(`smtp-source failed (${run.exitCode}): ${run.stderr}`);
}

/** Copies the components' logs out of the data directory (removed at the end). */
async function keepLogs(dev: PetrelDev): Promise<void> {
  const kept = await mkdtemp(join(tmpdir(), 'petrel-bench-logs-'));
  await cp(join(dev.dataDir, 'logs'), kept, { recursive: true });
  console.log(`  logs kept in ${kept}`);
}

/**
 * Where undelivered messages are: the queue's state (stream and consumers) from the nats-server
 * of `petrel dev`, and a copy of the components' logs that outlives the data directory.
 */
async function explainMissing(dev: PetrelDev): Promise<void> {
  await keepLogs(dev);
  const conf = await readFile(join(dev.dataDir, 'nats', 'nats-server.conf'), 'utf8');
  const listen = /listen:\s*"([^"]+)"/.exec(conf)?.[1];
  if (listen === undefined) return;
  const nc = await connectNats({ servers: `nats://${listen}` });
  try {
    const jsm = await jetstreamManager(nc);
    const stream = await jsm.streams.info(STREAM_OUTBOUND);
    console.log(`  ${STREAM_OUTBOUND}: ${stream.state.messages} messages in the stream`);
    const stuck: string[] = [];
    let consumers = 0;
    let pulling = 0;
    for await (const c of jsm.consumers.list(STREAM_OUTBOUND)) {
      consumers++;
      if (c.num_waiting > 0) pulling++;
      if (c.num_pending + c.num_ack_pending + c.num_redelivered === 0) continue;
      stuck.push(c.name.replace(/^delivery-/, 'shard.'));
      console.log(
        `  consumer ${c.name}: pending ${c.num_pending}, ack pending ${c.num_ack_pending}, ` +
          `redelivered ${c.num_redelivered}, waiting pulls ${c.num_waiting}, last active ${c.delivered.last_active ?? '-'}`,
      );
    }
    console.log(`  ${pulling} of ${consumers} shard consumers have a pull request waiting`);
    // Shard ownership (the delivery worker's KV leases): who holds the stuck shards, which workers live.
    const leases = await new Kvm(nc).open('petrel_leases');
    for await (const key of await leases.keys()) {
      if (!key.startsWith('worker.') && !stuck.includes(key)) continue;
      const e = await leases.get(key);
      console.log(
        `  lease ${key} = ${e?.string() ?? '-'} (revision ${e?.revision}, ${e?.created.toISOString()})`,
      );
    }
  } finally {
    await nc.close();
  }
}

interface ShapeResult {
  shape: string;
  acceptedPerSec: number;
  deliveredPerSec: number;
  lost: number;
  duplicates: number;
  relayMicros: number;
}

const RELAY_PROCESSES = new Set(['petrel dev', 'ingress', 'delivery', 'nats-server', 'postgres']);

async function runShape(size: number, sessions: number): Promise<ShapeResult> {
  const shape = `${size} B x ${sessions} sessions`;
  const local: (() => Promise<void> | void)[] = [];
  try {
    const sink = SINK === 'smtp-sink' ? await postfixSink() : await harnessSink();
    local.push(() => sink.close());
    const dns = await startDnsServer({
      after: (fn) => void local.push(fn),
      records: [
        { type: 'MX', name: DEST, exchange: `mx.${DEST}`, priority: 10 },
        { type: 'A', name: `mx.${DEST}`, address: '127.0.0.1' },
      ],
      ttlSeconds: 3600,
    });
    const configDir = await tempDir('bench-config');
    await writeConfig(configDir);
    const profileDir = PROFILE_DIR === undefined ? undefined : join(PROFILE_DIR, `${size}x${sessions}`);
    if (profileDir !== undefined) await mkdir(profileDir, { recursive: true });
    const dev: PetrelDev = await startPetrelDev((fn) => void local.push(fn), {
      configDir,
      dnsServer: dns.address,
      ...(ROUTE === 'smarthost' ? { smarthost: `${sink.host}:${sink.port}` } : { mxPort: sink.port }),
      env: {
        PETREL_RELAY_NETWORKS: '127.0.0.0/8',
        // 100 sessions from one address: over the default per-address limit (50).
        PETREL_MAX_CONNECTIONS_PER_ADDRESS: String(Math.max(50, sessions * 2)),
        ...(profileDir === undefined
          ? {}
          : { NODE_OPTIONS: `${NODE_OPTIONS ?? ''} --cpu-prof --cpu-prof-dir=${profileDir}` }),
      },
    });
    local.push(() => dev.stop().then(() => undefined));

    if (WARMUP > 0) {
      const warm = sink.run('warm');
      await smtpSource(dev.smtpPort, sessions, WARMUP, size, 'warm');
      await waitFor(() => warm.delivered() >= WARMUP, {
        timeoutMs: 120_000,
        intervalMs: 20,
        message: 'warm-up delivered',
      }).catch(async (error: unknown) => {
        await explainMissing(dev);
        throw error;
      });
    }

    const procs = await groupProcesses(dev.pgid);
    if (sink.pid !== undefined) procs.push({ pid: sink.pid, name: sink.name });
    const usage0 = new Map<number, Usage>();
    for (const p of procs) usage0.set(p.pid, await usage(p.pid));
    const self0 = await usage('self');
    const children0 = await childrenCpuMicros();
    const run = sink.run('rcpt');
    const t0 = performance.now();
    await smtpSource(dev.smtpPort, sessions, N, size, 'rcpt');
    const acceptedMs = performance.now() - t0;
    const sourceCpu = (await childrenCpuMicros()) - children0;
    // Until every message is in, or nothing more arrived for STALL_MS.
    let seen = run.delivered();
    let progressAt = performance.now();
    while (run.delivered() < N) {
      await new Promise((r) => setTimeout(r, 5));
      if (run.delivered() !== seen) {
        seen = run.delivered();
        progressAt = performance.now();
      } else if (performance.now() - progressAt > STALL_MS) {
        console.log(`  no delivery for ${STALL_MS / 1000} s with ${seen} of ${N} delivered: giving up`);
        break;
      }
    }
    const deliveredMs = (run.lastAt() ?? performance.now()) - t0;
    const used = new Map<number, Usage>();
    for (const p of procs) used.set(p.pid, minus(await usage(p.pid), usage0.get(p.pid)));
    const self = minus(await usage('self'), self0);
    // A moment for duplicates close behind the last delivery (a redelivery after the worker's
    // ack_wait, 60 s by default, is not waited for).
    await new Promise((r) => setTimeout(r, 2000));
    const { duplicates, lost, examples, detail } = run.check(N);
    if (lost > 0) await explainMissing(dev);
    else if (BENCH_KEEP_LOGS === '1') await keepLogs(dev);

    const delivered = run.delivered();
    const acceptedPerSec = (N / acceptedMs) * 1000;
    const deliveredPerSec = (Math.min(N, delivered) / deliveredMs) * 1000;
    const firstDelivery = (run.firstAt() ?? t0) - t0;
    console.log(
      `\n${shape} (${N} messages, ${ROUTE === 'mx' ? 'MX lookup + --mx-port' : '--smarthost'}, ` +
        `DKIM ${DKIM}, ${sink.name === 'smtp-sink' ? "Postfix's smtp-sink" : "the harness's sink"}):`,
    );
    console.log(
      `  accepted ${acceptedPerSec.toFixed(0)} msg/s (${(acceptedMs / 1000).toFixed(2)} s); ` +
        `delivered ${delivered} at ${deliveredPerSec.toFixed(0)} msg/s end to end ` +
        `(last after ${(deliveredMs / 1000).toFixed(2)} s, first after ${firstDelivery.toFixed(0)} ms)`,
    );
    console.log(
      `  lost ${lost}${examples.length > 0 ? ` (e.g. ${examples.join(', ')})` : ''}, ` +
        `duplicates ${duplicates} (${detail})`,
    );
    // Per component: the sum over its processes (postgres has several).
    const byName = new Map<string, Usage & { rss: number; count: number; pids: number[] }>();
    for (const p of procs) {
      const e = byName.get(p.name) ?? { cpu: 0, sys: 0, reads: 0, writes: 0, rss: 0, count: 0, pids: [] };
      e.pids.push(p.pid);
      const u = used.get(p.pid);
      e.cpu += u?.cpu ?? 0;
      e.sys += u?.sys ?? 0;
      e.reads += u?.reads ?? 0;
      e.writes += u?.writes ?? 0;
      e.rss = Math.max(e.rss, await peakRssMiB(p.pid));
      e.count++;
      byName.set(p.name, e);
    }
    byName.set(sink.pid === undefined ? 'bench process (sink)' : 'bench process', {
      ...self,
      rss: await peakRssMiB(process.pid),
      count: 1,
      pids: [process.pid],
    });
    byName.set('smtp-source', { cpu: sourceCpu, sys: 0, reads: 0, writes: 0, rss: 0, count: 1, pids: [] });
    let total = 0;
    let relay = 0;
    const seconds = deliveredMs / 1000;
    const line = (name: string, micros: number, extra: string) =>
      console.log(
        `  ${name.padEnd(22)} CPU ${String(Math.round(micros / N)).padStart(5)} µs/msg ` +
          `(${((micros / 1e6 / seconds) * 100).toFixed(0).padStart(3)} % of a core)${extra}`,
      );
    for (const [name, e] of byName) {
      total += e.cpu;
      if (RELAY_PROCESSES.has(name)) relay += e.cpu;
      const calls =
        e.reads + e.writes > 0
          ? `, syscalls/msg ${(e.reads / N).toFixed(1)} reads ${(e.writes / N).toFixed(1)} writes`
          : '';
      line(
        name,
        e.cpu,
        `${e.sys > 0 ? `, ${Math.round((e.sys / Math.max(1, e.cpu)) * 100)} % in the kernel` : ''}${calls}${e.rss > 0 ? `, peak RSS ${e.rss.toFixed(0)} MiB${e.count > 1 ? ` (largest of ${e.count})` : ''}` : ''}` +
          (e.pids.length === 1 ? ` [pid ${e.pids[0]}]` : ''),
      );
    }
    line('relay (petrel dev)', relay, ': ingress, delivery, nats-server, postgres, supervisor');
    line('all', total, `; the machine has ${availableParallelism()} cores`);
    return { shape, acceptedPerSec, deliveredPerSec, lost, duplicates, relayMicros: relay / N };
  } finally {
    for (const fn of local.reverse()) await fn();
  }
}

try {
  console.log(
    `petrel dev end to end, smtp-source → ingress → JetStream → delivery → sink, ${N} messages per shape; ` +
      `command: node bench/relay-smtp-source.bench.ts ${process.argv.slice(2).join(' ')}`,
  );
  const results: ShapeResult[] = [];
  for (const { size, sessions } of SHAPES) results.push(await runShape(size, sessions));
  console.log('\nsummary:');
  for (const r of results) {
    console.log(
      `  ${r.shape.padEnd(24)} accepted ${r.acceptedPerSec.toFixed(0).padStart(5)} msg/s, ` +
        `delivered ${r.deliveredPerSec.toFixed(0).padStart(5)} msg/s, relay CPU ${r.relayMicros.toFixed(0)} µs/msg, ` +
        `lost ${r.lost}, duplicates ${r.duplicates}`,
    );
  }
} finally {
  for (const fn of cleanups.reverse()) await fn();
}
