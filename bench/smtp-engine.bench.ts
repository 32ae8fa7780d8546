// Micro-benchmark: CPU per message of the SMTP engine alone (ServerSession: command parsing,
// state machine, replies, DATA decoding), over in-memory duplex pairs, no network, no queue.
// Each of C sessions sends M messages of 4 KiB with PIPELINING (MAIL, RCPT, DATA in one write,
// then the body), as a client reusing its connection does. The handler answers at once.
// Usage: node bench/smtp-engine.bench.ts [messages=40000] [sessions=32]
import type { Socket } from 'node:net';
import { duplexPair } from 'node:stream';
import { dotStuff, reply, ServerSession, type SessionHandler } from '@petrel/smtp';

const total = Number(process.argv[2] ?? 40_000);
const sessions = Number(process.argv[3] ?? 32);
const perSession = Math.ceil(total / sessions);

const line = `${'x'.repeat(70)}\r\n`;
const body = Buffer.from(
  `${`From: a@example.com\r\nTo: b@example.org\r\nSubject: bench\r\n\r\n${line.repeat(60)}`.slice(0, 4094)}\r\n`,
);
const wire = dotStuff(body);
const envelope = Buffer.from('MAIL FROM:<a@example.com> SIZE=4096\r\nRCPT TO:<b@example.org>\r\nDATA\r\n');
const ok = reply(250, '2.0.0', 'OK queued');
let accepted = 0;
const handler: SessionHandler = {
  rcptTo: () => undefined,
  message: async () => {
    accepted++;
    return ok;
  },
};

/** One client: sends its messages, waiting for the 354 and the final 250 of each, like a real client. */
async function client(index: number): Promise<void> {
  const [server, peer] = duplexPair();
  const session = new ServerSession(server as unknown as Socket, `b${index}`, handler, {
    hostname: 'bench.local',
    maxMessageSize: 10 * 1024 * 1024,
  });
  const done = session.run();
  let pending = '';
  let wake: (() => void) | undefined;
  peer.on('data', (chunk: Buffer) => {
    pending += chunk.toString('latin1');
    wake?.();
  });
  const waitFor = async (text: string): Promise<void> => {
    for (;;) {
      const at = pending.indexOf(text);
      if (at !== -1) {
        pending = pending.slice(at + text.length);
        return;
      }
      await new Promise<void>((r) => {
        wake = r;
      });
    }
  };
  await waitFor('220 ');
  peer.write('EHLO client.example\r\n');
  await waitFor('250 DELIVERBY\r\n');
  for (let i = 0; i < perSession; i++) {
    peer.write(envelope);
    await waitFor('354 ');
    peer.write(wire);
    await waitFor('OK queued\r\n');
  }
  peer.write('QUIT\r\n');
  await waitFor('221 ');
  peer.end();
  await done;
}

async function run(): Promise<{ cpuUs: number; wallMs: number }> {
  accepted = 0;
  const cpu = process.cpuUsage();
  const t0 = performance.now();
  await Promise.all(Array.from({ length: sessions }, (_, i) => client(i)));
  const wallMs = performance.now() - t0;
  const used = process.cpuUsage(cpu);
  return { cpuUs: (used.user + used.system) / accepted, wallMs };
}

await run(); // warm-up
const { cpuUs, wallMs } = await run();
console.log(
  `SMTP engine: ${accepted} x ${body.length} B messages over ${sessions} pipelined sessions: ` +
    `${cpuUs.toFixed(1)} µs CPU/message (engine + in-memory client), ` +
    `${Math.round((accepted / wallMs) * 1000)} msg/s on one core`,
);
