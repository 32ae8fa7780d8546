/**
 * Test support for the SMTP engine: a TCP server running ServerSession per connection with a
 * recording handler, and a raw client (Wire) that writes bytes exactly as given, reads whole
 * replies with deadlines, and can switch to TLS. Shared by the engine's test files.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { type AddressInfo, connect, createServer, type Socket } from 'node:net';
import type { TestContext } from 'node:test';
import { type TLSSocket, connect as tlsConnect } from 'node:tls';
import { issueCertificate, type TestCertificate } from '@petrel/test-harness';
import { reply } from '../src/reply.ts';
import {
  ServerSession,
  type ServerSessionOptions,
  type SessionEvent,
  type SessionHandler,
  type SessionInfo,
  type Transaction,
} from '../src/server.ts';

export const DEADLINE_MS = 5_000;
const CRLF = Buffer.from('\r\n');

/** What the handler's message() was called with. */
export interface Delivered {
  readonly sender: string | undefined;
  readonly recipients: string[];
  readonly bodyType: string;
  readonly smtputf8: boolean;
  readonly body: Buffer;
  readonly tx: Transaction;
  readonly session: SessionInfo;
}

export interface TestServer {
  readonly port: number;
  readonly sessions: ServerSession[];
  /** The server side of each connection, in order. */
  readonly sockets: Socket[];
  readonly delivered: Delivered[];
  readonly events: { event: SessionEvent; detail: unknown }[];
}

/**
 * A TCP server running one ServerSession per connection. Recipients whose local part starts
 * with "refuse" are refused by the handler with 550 5.1.1; messages are recorded. `handler`
 * overrides or adds handler methods.
 */
export async function startServer(
  t: TestContext,
  options: Partial<ServerSessionOptions> = {},
  handler: Partial<SessionHandler> = {},
): Promise<TestServer> {
  const sessions: ServerSession[] = [];
  const delivered: Delivered[] = [];
  const events: TestServer['events'] = [];
  const runs: Promise<void>[] = [];
  const errors: unknown[] = [];
  const sockets = new Set<Socket>();
  const accepted: Socket[] = [];
  const full: SessionHandler = {
    rcptTo(_session, _tx, recipient) {
      if (recipient.mailbox.localPart.startsWith('refuse')) return reply(550, '5.1.1', 'No such user');
      return undefined;
    },
    async message(session, tx, body) {
      delivered.push({
        sender: tx.sender?.address,
        recipients: tx.recipients.map((r) => r.mailbox.address),
        bodyType: tx.bodyType,
        smtputf8: tx.smtputf8,
        body: Buffer.from(body),
        tx,
        session: { ...session },
      });
      return reply(250, '2.0.0', `Queued as ${delivered.length}`);
    },
    observe(_session, event, detail) {
      events.push({ event, detail });
    },
    ...handler,
  };
  let ids = 0;
  const server = createServer((socket) => {
    sockets.add(socket);
    accepted.push(socket);
    socket.on('close', () => sockets.delete(socket));
    const session = new ServerSession(socket, `s${++ids}`, full, {
      hostname: 'test.local',
      maxMessageSize: 1000,
      maxRecipients: 3,
      ...options,
    });
    sessions.push(session);
    runs.push(session.run().catch((error: unknown) => void errors.push(error)));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(async () => {
    for (const socket of sockets) socket.destroy();
    server.close();
    await Promise.all(runs);
    assert.deepEqual(errors, [], 'ServerSession.run() rejected');
  });
  return { port: (server.address() as AddressInfo).port, sessions, sockets: accepted, delivered, events };
}

/** Resolves once `socket` (server side) has delivered `octets` more octets to its readers. */
export function serverReads(socket: Socket, octets: number): Promise<void> {
  let seen = 0;
  return new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server read ${seen} of ${octets} octets`)), DEADLINE_MS);
    const onData = (chunk: Buffer): void => {
      seen += chunk.length;
      if (seen < octets) return;
      clearTimeout(timer);
      socket.off('data', onData);
      resolve();
    };
    socket.on('data', onData);
  });
}

export interface WireReply {
  readonly code: number;
  /** The text of each line after "code-" / "code ". */
  readonly lines: string[];
  /** The first line as received, e.g. "503 5.5.1 Send EHLO or HELO first". */
  readonly first: string;
}

/** A raw SMTP client: writes bytes as given and reads whole replies, each with a deadline. */
export class Wire {
  #socket: Socket;
  #buffer: Buffer = Buffer.alloc(0);
  #closed = false;
  #wake: (() => void) | undefined;
  readonly #onData = (chunk: Buffer): void => {
    this.#buffer = Buffer.concat([this.#buffer, chunk]);
    this.#notify();
  };
  readonly #onClose = (): void => {
    this.#closed = true;
    this.#notify();
  };

  private constructor(socket: Socket) {
    this.#socket = socket;
    this.#listen(socket);
  }

  #listen(socket: Socket): void {
    socket.on('data', this.#onData);
    socket.on('close', this.#onClose);
    socket.on('error', () => undefined);
  }

  static async open(t: TestContext, port: number, tls?: { ca: Buffer; servername?: string }): Promise<Wire> {
    let socket: Socket;
    if (tls === undefined) {
      socket = connect({ host: '127.0.0.1', port });
      socket.setNoDelay(true);
      await once(socket, 'connect');
    } else {
      socket = tlsConnect({ host: '127.0.0.1', port, ca: tls.ca, servername: tls.servername ?? 'localhost' });
      await once(socket, 'secureConnect');
    }
    t.after(() => socket.destroy());
    return new Wire(socket);
  }

  get socket(): Socket {
    return this.#socket;
  }

  /** Upgrades to TLS (after a 220 to STARTTLS); unread plaintext must be empty. */
  async startTls(ca: Buffer, servername = 'localhost', minVersion?: 'TLSv1.2'): Promise<TLSSocket> {
    assert.equal(this.unread, '', 'no plaintext replies after the STARTTLS reply');
    const plain = this.#socket;
    plain.off('data', this.#onData);
    plain.off('close', this.#onClose);
    const secure = tlsConnect({ socket: plain, ca, servername, ...(minVersion ? { minVersion } : {}) });
    await once(secure, 'secureConnect');
    this.#socket = secure;
    this.#listen(secure);
    return secure;
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  async #waitForInput(deadline: number, what: string): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => {
          this.#wake = undefined;
          reject(new Error(`timed out waiting for ${what}; unread: ${JSON.stringify(this.unread)}`));
        },
        Math.max(0, deadline - performance.now()),
      );
      this.#wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  /** Received octets not yet consumed as a reply. */
  get unread(): string {
    return this.#buffer.toString('utf8');
  }

  get isClosed(): boolean {
    return this.#closed;
  }

  write(data: string | Buffer): void {
    this.#socket.write(data);
  }

  #takeReply(): WireReply | undefined {
    const lines: string[] = [];
    let start = 0;
    for (;;) {
      const end = this.#buffer.indexOf(CRLF, start);
      if (end === -1) return undefined;
      const line = this.#buffer.subarray(start, end).toString('utf8');
      lines.push(line);
      start = end + 2;
      if (line.charAt(3) !== '-') break;
    }
    this.#buffer = this.#buffer.subarray(start);
    const first = lines[0] ?? '';
    lines.forEach((line, i) => {
      const form = i === lines.length - 1 ? /^[2-5]\d\d( |$)/ : /^[2-5]\d\d-/;
      assert.match(line, form, `malformed reply ${JSON.stringify(lines)}`);
      assert.equal(line.slice(0, 3), first.slice(0, 3), 'same code on every line');
    });
    return { code: Number(first.slice(0, 3)), lines: lines.map((l) => l.slice(4)), first };
  }

  async reply(): Promise<WireReply> {
    const deadline = performance.now() + DEADLINE_MS;
    for (;;) {
      const r = this.#takeReply();
      if (r !== undefined) return r;
      if (this.#closed) throw new Error(`connection closed; unread: ${JSON.stringify(this.unread)}`);
      await this.#waitForInput(deadline, 'a reply');
    }
  }

  async command(line: string): Promise<WireReply> {
    this.write(`${line}\r\n`);
    return await this.reply();
  }

  /** Waits for the server to close the connection; nothing may be left unread. */
  async closed(): Promise<void> {
    const deadline = performance.now() + DEADLINE_MS;
    while (!this.#closed) await this.#waitForInput(deadline, 'the server to close');
    assert.equal(this.unread, '', 'no further replies before the close');
  }
}

/** Asserts the code and, when given, the enhanced status code of the (first line of the) reply. */
export function expectReply(r: WireReply, code: number, enhanced?: string): void {
  assert.equal(r.code, code, `expected ${code}, got ${JSON.stringify(r.first)}`);
  if (enhanced !== undefined) {
    assert.ok(r.first.startsWith(`${code} ${enhanced} `), `expected ${code} ${enhanced}, got ${r.first}`);
  }
}

/** Connects, reads the greeting and sends EHLO. */
export async function session(t: TestContext, port: number): Promise<Wire> {
  const wire = await Wire.open(t, port);
  expectReply(await wire.reply(), 220);
  expectReply(await wire.command('EHLO client.example'), 250);
  return wire;
}

/** Dot-stuffs a CRLF message by hand (independent of data.ts) and appends the terminator. */
export function stuffed(message: string): string {
  return `${message.replace(/^\./gm, '..')}.\r\n`;
}

export type { TestCertificate } from '@petrel/test-harness';

let cached: TestCertificate | undefined;

/** A self-signed certificate for "localhost" (once per process). */
export function testCertificate(): TestCertificate {
  cached ??= issueCertificate(['localhost']);
  return cached;
}

/** A TCP server that runs `script` on each connection (a scripted peer for client tests). */
export async function rawServer(t: TestContext, script: (socket: Socket) => void): Promise<number> {
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
    script(socket);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => {
    for (const socket of sockets) socket.destroy();
    server.close();
  });
  return (server.address() as AddressInfo).port;
}
