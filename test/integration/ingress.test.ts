// The ingress process on its own (as a pod runs it): graceful SIGTERM with readiness, connection
// limits, greylisting through NATS KV, PROXY protocol from a configured network, and messages
// larger than the JetStream payload limit through the object store.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { writeFile } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect as natsConnect } from '@nats-io/transport-node';
import { compileDirectory, writeRuntimeConfig } from '@petrel/operator';
import { decodeEnvelope, loadBody, STREAM_OUTBOUND } from '@petrel/queue';
import { encodeProxyV1 } from '@petrel/smtp';
import { forkIngress, startDnsServer, startNats, tempDir, waitFor } from '@petrel/test-harness';

const DOMAIN = (extra = '') => `apiVersion: petrel.dev/v1alpha1
kind: MailDomain
metadata: {name: example-org}
spec:
  domain: example.org
  inbound:
    checks: {spf: false, dkim: false, dmarc: false, arc: false, dmarcReject: false}
${extra}`;

interface Ingress {
  readonly child: ChildProcess;
  readonly port: number;
  readonly healthPort: number;
  readonly natsUrl: string;
  readonly exited: Promise<number | null>;
}

async function startIngress(
  t: TestContext,
  env: Record<string, string> = {},
  manifest = DOMAIN(),
): Promise<Ingress> {
  const nats = await startNats(t.after.bind(t));
  const dns = await startDnsServer({ after: t.after.bind(t) });
  const configDir = await tempDir('ingress-config');
  await writeFile(join(configDir, 'domain.yaml'), manifest);
  const dataDir = await tempDir('ingress-data');
  const runtimeConfig = join(dataDir, 'runtime-config.json');
  await writeRuntimeConfig(runtimeConfig, await compileDirectory(configDir, 1));
  const { child, mxPort, healthPort, exited } = await forkIngress({
    natsUrl: nats.url,
    config: { file: runtimeConfig },
    dataDir,
    dnsServer: dns.address,
    after: t.after.bind(t),
    env,
  });
  const port = await mxPort;
  return { child, port, healthPort, natsUrl: nats.url, exited };
}

/** A line-oriented SMTP client over a raw socket: write what you like, read one reply at a time. */
class Client {
  readonly socket: Socket;
  #buffer = '';
  #closed = false;
  #wake: (() => void) | undefined;
  private constructor(socket: Socket) {
    this.socket = socket;
    socket.on('data', (c: Buffer) => {
      this.#buffer += c.toString('latin1');
      this.#wake?.();
    });
    socket.on('close', () => {
      this.#closed = true;
      this.#wake?.();
    });
    socket.on('error', () => undefined);
  }
  static async open(port: number): Promise<Client> {
    const socket = connect({ host: '127.0.0.1', port });
    await once(socket, 'connect');
    return new Client(socket);
  }
  /** The next complete reply's last line, e.g. "250 2.0.0 OK". */
  async reply(timeoutMs = 10_000): Promise<string> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const m = /^(?:\d{3}-[^\n]*\n)*(\d{3} [^\r\n]*)\r\n/.exec(this.#buffer);
      if (m !== null) {
        this.#buffer = this.#buffer.slice(m[0].length);
        return m[1] as string;
      }
      if (this.#closed) throw new Error(`connection closed; unread ${JSON.stringify(this.#buffer)}`);
      if (performance.now() > deadline) throw new Error(`no reply; unread ${JSON.stringify(this.#buffer)}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.max(0, deadline - performance.now()));
        this.#wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }
  async command(line: string): Promise<string> {
    this.socket.write(`${line}\r\n`);
    return await this.reply();
  }
  get closed(): boolean {
    return this.#closed;
  }
}

async function readyz(port: number): Promise<number | 'down'> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/readyz`);
    return res.status;
  } catch {
    return 'down';
  }
}

test('SIGTERM: readiness goes false, idle sessions get 421 4.3.2, a transaction in progress finishes', async (t) => {
  const ingress = await startIngress(t);
  assert.equal(await readyz(ingress.healthPort), 200);
  const idle = await Client.open(ingress.port);
  assert.match(await idle.reply(), /^220 /);
  assert.match(await idle.command('EHLO idle.example'), /^250 /);
  const busy = await Client.open(ingress.port);
  assert.match(await busy.reply(), /^220 /);
  assert.match(await busy.command('EHLO busy.example'), /^250 /);
  assert.match(await busy.command('MAIL FROM:<a@outside.example>'), /^250 /);
  assert.match(await busy.command('RCPT TO:<b@example.org>'), /^250 /);
  assert.match(await busy.command('DATA'), /^354 /);
  busy.socket.write('Subject: in flight\r\n\r\nfirst half\r\n');

  ingress.child.kill('SIGTERM');
  assert.match(await idle.reply(), /^421 4\.3\.2 /);
  await waitFor(() => (idle.closed ? true : undefined), {
    timeoutMs: 10_000,
    message: 'idle session closed',
  });
  assert.equal(await readyz(ingress.healthPort), 503);
  // No new connections once the listener closed.
  await assert.rejects(Client.open(ingress.port));
  busy.socket.write('second half\r\n.\r\n');
  assert.match(await busy.reply(), /^250 2\.0\.0 OK queued as /);
  assert.match(await busy.reply(), /^421 4\.3\.2 /);
  assert.equal(await ingress.exited, 0);
});

test('connections beyond the per-address limit get 421 4.7.0 at the greeting', async (t) => {
  const ingress = await startIngress(t, { PETREL_MAX_CONNECTIONS_PER_ADDRESS: '2' });
  const a = await Client.open(ingress.port);
  const b = await Client.open(ingress.port);
  assert.match(await a.reply(), /^220 /);
  assert.match(await b.reply(), /^220 /);
  const c = await Client.open(ingress.port);
  assert.match(await c.reply(), /^421 4\.7\.0 /);
  a.socket.end('QUIT\r\n');
  assert.match(await a.reply(), /^221 /);
  // The slot is free again once a session ended.
  await waitFor(
    async () => {
      const d = await Client.open(ingress.port);
      const r = await d.reply();
      d.socket.destroy();
      return r.startsWith('220 ') ? true : undefined;
    },
    { timeoutMs: 10_000, message: 'a new connection admitted' },
  );
});

test('greylisting (per MailDomain, state in NATS KV): 451 4.7.1 first, accepted on a retry after the delay', async (t) => {
  const ingress = await startIngress(
    t,
    {},
    DOMAIN('    greylisting: {enabled: true, delaySeconds: 5, expireHours: 1}\n'),
  );
  const attempt = async (): Promise<string> => {
    const c = await Client.open(ingress.port);
    await c.reply();
    await c.command('EHLO grey.example');
    await c.command('MAIL FROM:<a@outside.example>');
    const r = await c.command('RCPT TO:<b@example.org>');
    c.socket.end('QUIT\r\n');
    return r;
  };
  const first = performance.now();
  assert.match(await attempt(), /^451 4\.7\.1 /);
  const second = await attempt();
  // Within the delay, still greylisted (a stalled machine may take longer than that to ask again).
  if (performance.now() - first < 4_000) assert.match(second, /^451 4\.7\.1 /);
  const passed = await waitFor(async () => ((await attempt()).startsWith('250 ') ? true : undefined), {
    timeoutMs: 30_000,
    intervalMs: 250,
    message: 'the retry after the greylisting delay accepted',
  });
  assert.equal(passed, true);
});

test('PROXY header from a configured network sets the client address; a large message goes through the object store', async (t) => {
  const ingress = await startIngress(t, { PETREL_SMTP_PROXY_NETWORKS: '127.0.0.0/8' });
  const c = await Client.open(ingress.port);
  c.socket.write(encodeProxyV1({ address: '203.0.113.9', port: 40123 }, { address: '127.0.0.1', port: 25 }));
  assert.match(await c.reply(), /^220 /);
  await c.command('EHLO proxied.example');
  assert.match(await c.command('MAIL FROM:<a@outside.example> SIZE=3200000'), /^250 /);
  assert.match(await c.command('RCPT TO:<b@example.org>'), /^250 /);
  assert.match(await c.command('DATA'), /^354 /);
  const line = `${'y'.repeat(78)}\r\n`;
  const body = `Subject: big\r\n\r\n${line.repeat(40_000)}`;
  c.socket.write(`${body}.\r\n`);
  assert.match(await c.reply(30_000), /^250 2\.0\.0 OK queued as /);

  const nc = await natsConnect({ servers: ingress.natsUrl });
  t.after(() => nc.close());
  const jsm = await jetstreamManager(nc);
  const info = await jsm.streams.info(STREAM_OUTBOUND);
  assert.equal(info.state.messages, 1);
  const stored = await jsm.streams.getMessage(STREAM_OUTBOUND, { seq: info.state.first_seq });
  assert.ok(stored);
  const envelope = decodeEnvelope(stored.data);
  assert.equal(envelope.content.case, 'object');
  assert.equal(envelope.client?.remoteAddress, '203.0.113.9');
  const message = (await loadBody(jetstream(nc), envelope)).toString('latin1');
  assert.match(message, /^Received: from proxied\.example \(\[203\.0\.113\.9\]\)/);
  assert.ok(message.endsWith(body));
  // A peer that is not a configured load balancer may not send a PROXY header.
  const other = await startIngress(t);
  const d = await Client.open(other.port);
  assert.match(await d.reply(), /^220 /);
  assert.match(await d.command('PROXY TCP4 203.0.113.9 127.0.0.1 40123 25'), /^500 5\.5\.1 /);
});
