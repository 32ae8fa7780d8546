// The client against scripted servers over loopback: per-phase timeouts, bounded and malformed
// replies, the HELO fallback, and LMTP (RFC 2033) with a small LMTP responder.
import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { type TestContext, test } from 'node:test';
import { rawServer } from '../test/wire.ts';
import {
  type ClientOptions,
  ClientPhase,
  SmtpClient,
  SmtpClientError,
  SmtpClientErrorCode,
} from './client.ts';

interface Script {
  greeting?: string;
  ehlo?: string;
  /** Reply to a command line (undefined: no reply at all); '.' stands for the end of the data. */
  reply(line: string, socket: Socket): string | undefined;
}

/**
 * A line-based server: commands one at a time (or pipelined: each line in turn), DATA bodies
 * read to CRLF.CRLF and recorded. Replies come from the script.
 */
async function scripted(
  t: TestContext,
  script: Script,
  log: string[] = [],
  bodies: string[] = [],
  /** Every chunk read from the socket, as it came. */
  chunks: string[] = [],
): Promise<number> {
  return await rawServer(t, (socket) => {
    socket.on('data', (chunk: Buffer) => void chunks.push(chunk.toString('latin1')));
    let pending = '';
    let data: string | undefined;
    socket.write(`${script.greeting ?? '220 scripted ESMTP'}\r\n`);
    const answer = (line: string): void => {
      const r = script.reply(line, socket);
      if (r !== undefined) socket.write(`${r}\r\n`);
    };
    socket.on('data', (chunk: Buffer) => {
      pending += chunk.toString('latin1');
      for (;;) {
        if (data !== undefined) {
          const end = `${data}${pending}`.indexOf('\r\n.\r\n');
          if (end === -1) {
            data += pending;
            pending = '';
            return;
          }
          const all = `${data}${pending}`;
          bodies.push(all.slice(0, end + 2));
          pending = all.slice(end + 5);
          data = undefined;
          answer('.');
          continue;
        }
        const nl = pending.indexOf('\r\n');
        if (nl === -1) return;
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 2);
        log.push(line);
        const verb = line.slice(0, 4).toUpperCase();
        if ((verb === 'EHLO' || verb === 'LHLO') && script.ehlo !== undefined) {
          socket.write(`${script.ehlo}\r\n`);
          continue;
        }
        if (verb === 'QUIT') {
          socket.end('221 2.0.0 bye\r\n');
          return;
        }
        const r = script.reply(line, socket);
        if (r !== undefined) socket.write(`${r}\r\n`);
        if (verb === 'DATA' && r?.startsWith('354')) data = '';
      }
    });
  });
}

const ok = (line: string): string | undefined => {
  const verb = line.slice(0, 4).toUpperCase();
  if (verb === 'DATA') return '354 go';
  return '250 2.0.0 ok';
};

function options(port: number, extra: Partial<ClientOptions> = {}): ClientOptions {
  return { host: '127.0.0.1', port, localName: 'client.example', timeoutMs: 60_000, ...extra };
}

function isTimeout(phase: ClientPhase): (error: unknown) => boolean {
  return (error) => {
    assert.ok(error instanceof SmtpClientError, String(error));
    assert.equal(error.code, SmtpClientErrorCode.Timeout, error.message);
    assert.equal(error.phase, phase);
    return true;
  };
}

function isProtocol(error: unknown): boolean {
  assert.ok(error instanceof SmtpClientError, String(error));
  assert.equal(error.code, SmtpClientErrorCode.Protocol, error.message);
  return true;
}

// Each timeout test sets only the phase under test short; the others stay at 60 s, beyond the test's own timeout.
const QUICK = { timeout: 20_000 };

test('timeout: greeting', QUICK, async (t) => {
  const port = await rawServer(t, () => undefined);
  await assert.rejects(
    SmtpClient.connect(options(port, { timeouts: { greeting: 100 } })),
    isTimeout(ClientPhase.Greeting),
  );
});

for (const [phase, key, silentOn] of [
  [ClientPhase.Mail, 'mail', 'MAIL'],
  [ClientPhase.Rcpt, 'rcpt', 'RCPT'],
  [ClientPhase.DataInit, 'dataInit', 'DATA'],
  [ClientPhase.DataEnd, 'dataEnd', '.'],
] as const) {
  test(`timeout: ${phase}`, QUICK, async (t) => {
    const port = await scripted(t, {
      ehlo: '250-scripted\r\n250 8BITMIME',
      reply: (line) => (line.toUpperCase().startsWith(silentOn) ? undefined : ok(line)),
    });
    const client = await SmtpClient.connect(options(port, { timeouts: { [key]: 100 } }));
    t.after(() => client.close());
    await assert.rejects(
      client.send({ from: 'a@example.com', to: ['b@example.com'] }, Buffer.from('x\r\n')),
      isTimeout(phase),
    );
    assert.equal(client.state, 'closed');
  });
}

test('timeout: data block (the server stops reading)', QUICK, async (t) => {
  const port = await scripted(t, {
    ehlo: '250-scripted\r\n250 8BITMIME',
    reply: (line, socket) => {
      if (line.toUpperCase() !== 'DATA') return ok(line);
      socket.pause();
      return '354 go';
    },
  });
  const client = await SmtpClient.connect(options(port, { timeouts: { dataBlock: 200 } }));
  t.after(() => client.close());
  // Far more than the socket buffers of both ends can hold.
  const big = Buffer.alloc(64 * 1024 * 1024, 'a\r\n');
  await assert.rejects(
    client.send({ from: 'a@example.com', to: ['b@example.com'] }, big),
    isTimeout(ClientPhase.DataBlock),
  );
});

test('timeout: a reply dripping in octet by octet still ends at the phase deadline', QUICK, async (t) => {
  const port = await scripted(t, {
    ehlo: '250-scripted\r\n250 8BITMIME',
    reply: (line, socket) => {
      if (!line.toUpperCase().startsWith('MAIL')) return ok(line);
      // Each octet comes well within the deadline; the whole reply never does.
      const text = `250 ${'x'.repeat(400)}`;
      let i = 0;
      const drip = setInterval(() => {
        if (socket.destroyed || i >= text.length) clearInterval(drip);
        else socket.write(text[i++] as string);
      }, 25);
      t.after(() => clearInterval(drip));
      return undefined;
    },
  });
  const client = await SmtpClient.connect(options(port, { timeouts: { mail: 300 } }));
  t.after(() => client.close());
  const started = performance.now();
  await assert.rejects(
    client.send({ from: 'a@example.com', to: ['b@example.com'] }, Buffer.from('x\r\n')),
    isTimeout(ClientPhase.Mail),
  );
  // The whole reply would take 10 s (more on a loaded host); the deadline is 300 ms. Half of it
  // leaves room for a stalled CI host and still fails a deadline that each octet pushes back.
  assert.ok(performance.now() - started < 5_000, `${performance.now() - started} ms`);
});

test('an endless reply line is a protocol error at once, not after the timeout', QUICK, async (t) => {
  const port = await rawServer(t, (socket) => {
    socket.write(`220 ${'x'.repeat(10_000)}`);
  });
  await assert.rejects(SmtpClient.connect(options(port)), isProtocol);
});

test('an endless multi-line reply is a protocol error', QUICK, async (t) => {
  const port = await rawServer(t, (socket) => {
    socket.write('220-hello\r\n'.repeat(1000));
  });
  await assert.rejects(SmtpClient.connect(options(port)), (error: unknown) => {
    isProtocol(error);
    assert.match((error as Error).message, /more than 256 lines/);
    return true;
  });
});

test('a reply whose code changes across its lines is a protocol error', QUICK, async (t) => {
  const port = await rawServer(t, (socket) => {
    socket.write('220-first\r\n250 second\r\n');
  });
  await assert.rejects(SmtpClient.connect(options(port)), (error: unknown) => {
    isProtocol(error);
    assert.match((error as Error).message, /220 then 250/);
    return true;
  });
});

test('a multi-line greeting with the same code is fine', QUICK, async (t) => {
  const port = await scripted(t, {
    greeting: '220-one\r\n220-two\r\n220 three',
    ehlo: '250 scripted',
    reply: ok,
  });
  const client = await SmtpClient.connect(options(port));
  t.after(() => client.close());
  assert.deepEqual(client.greeting?.lines, ['one', 'two', 'three']);
});

test('EHLO answered 502: HELO, then no extensions and no parameters', QUICK, async (t) => {
  const log: string[] = [];
  const bodies: string[] = [];
  const port = await scripted(
    t,
    {
      reply: (line) => {
        if (line.startsWith('EHLO')) return '502 5.5.1 what?';
        if (line.startsWith('HELO')) return '250 old.example';
        return ok(line);
      },
    },
    log,
    bodies,
  );
  const client = await SmtpClient.connect(options(port));
  t.after(() => client.close());
  assert.equal(client.esmtp, false);
  assert.equal(client.extensions.size, 0);
  const result = await client.send({ from: 'a@example.com', to: ['b@example.com'] }, Buffer.from('č\r\n'));
  assert.equal(result.dataReply?.code, 250);
  await client.quit();
  assert.deepEqual(log, [
    'EHLO client.example',
    'HELO client.example',
    'MAIL FROM:<a@example.com>',
    'RCPT TO:<b@example.com>',
    'DATA',
    'QUIT',
  ]);
  assert.deepEqual(
    bodies,
    ['č\r\n'].map((b) => Buffer.from(b).toString('latin1')),
  );
});

test('EHLO refused otherwise (554) is a REJECTED error with the reply', QUICK, async (t) => {
  const port = await scripted(t, { reply: (line) => (line.startsWith('EHLO') ? '554 5.7.1 no' : ok(line)) });
  await assert.rejects(SmtpClient.connect(options(port)), (error: unknown) => {
    assert.ok(error instanceof SmtpClientError);
    assert.equal(error.code, SmtpClientErrorCode.Rejected);
    assert.equal(error.reply?.code, 554);
    return true;
  });
});

/**
 * A small LMTP server (RFC 2033): LHLO, PIPELINING; RCPT refuses local parts starting with
 * "nouser"; after the data one reply per accepted recipient, 452 4.2.2 for "full…" mailboxes.
 */
async function lmtpServer(t: TestContext, log: string[], bodies: string[]): Promise<number> {
  return await rawServer(t, (socket) => {
    let pending = '';
    let data: string | undefined;
    let recipients: string[] = [];
    socket.write('220 lmtp.test LMTP\r\n');
    socket.on('data', (chunk: Buffer) => {
      pending += chunk.toString('utf8');
      const out: string[] = [];
      for (;;) {
        if (data !== undefined) {
          const all = data + pending;
          const end = all.indexOf('\r\n.\r\n');
          if (end === -1) {
            data = all;
            pending = '';
            break;
          }
          bodies.push(all.slice(0, end + 2));
          pending = all.slice(end + 5);
          data = undefined;
          for (const r of recipients)
            out.push(r.startsWith('full') ? `452 4.2.2 <${r}> mailbox full` : `250 2.1.5 <${r}> delivered`);
          recipients = [];
          continue;
        }
        const nl = pending.indexOf('\r\n');
        if (nl === -1) break;
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 2);
        log.push(line);
        const verb = line.slice(0, 4).toUpperCase();
        if (verb === 'LHLO')
          out.push('250-lmtp.test\r\n250-PIPELINING\r\n250-ENHANCEDSTATUSCODES\r\n250 8BITMIME');
        else if (verb === 'MAIL') out.push('250 2.1.0 ok');
        else if (verb === 'RCPT') {
          const address = /<([^>]*)>/.exec(line)?.[1] ?? '';
          if (address.startsWith('nouser')) out.push('550 5.1.1 no such user');
          else {
            recipients.push(address);
            out.push('250 2.1.5 ok');
          }
        } else if (verb === 'DATA') {
          out.push(recipients.length > 0 ? '354 go' : '503 5.5.1 no recipients');
          if (recipients.length > 0) data = '';
        } else if (verb === 'RSET') {
          recipients = [];
          out.push('250 2.0.0 ok');
        } else if (verb === 'QUIT') {
          socket.end(`${[...out, '221 2.0.0 bye'].join('\r\n')}\r\n`);
          return;
        } else out.push('500 5.5.1 unknown');
      }
      if (out.length > 0) socket.write(`${out.join('\r\n')}\r\n`);
    });
  });
}

test('LMTP: LHLO, and one reply per accepted recipient after the final dot', QUICK, async (t) => {
  const log: string[] = [];
  const bodies: string[] = [];
  const port = await lmtpServer(t, log, bodies);
  const client = await SmtpClient.connect(options(port, { protocol: 'lmtp' }));
  t.after(() => client.close());
  assert.ok(client.extensions.has('PIPELINING'));
  const result = await client.send(
    {
      from: 'a@example.com',
      to: ['one@example.com', 'nouser@example.com', 'full@example.com', 'two@example.com'],
    },
    Buffer.from('Subject: lmtp\r\n\r\n.hi\r\n'),
  );
  assert.deepEqual(
    result.recipients.map((r) => [r.address, r.status, r.reply.code, r.reply.lines[0]]),
    [
      ['one@example.com', 'delivered', 250, '<one@example.com> delivered'],
      ['nouser@example.com', 'failed', 550, 'no such user'],
      ['full@example.com', 'deferred', 452, '<full@example.com> mailbox full'],
      ['two@example.com', 'delivered', 250, '<two@example.com> delivered'],
    ],
  );
  assert.equal(result.dataReply, undefined);
  assert.deepEqual(
    result.accepted.map((a) => a.address),
    ['one@example.com', 'full@example.com', 'two@example.com'],
  );
  // As on the wire: the responder does not undo the dot-stuffing.
  assert.deepEqual(bodies, ['Subject: lmtp\r\n\r\n..hi\r\n']);
  // The replies were all read: the connection goes on in step.
  const next = await client.send({ from: 'a@example.com', to: ['three@example.com'] }, Buffer.from('2\r\n'));
  assert.deepEqual(
    next.recipients.map((r) => r.status),
    ['delivered'],
  );
  assert.equal(client.messagesSent, 2);
  await client.quit();
  assert.equal(log[0], 'LHLO client.example');
  assert.equal(log.filter((l) => l === 'RSET').length, 0);
});

// A transaction queued behind another on one connection (RFC 2920 §3.1 and the example of §4):
// its commands go out with the content of the one ahead.
const PIPELINED = '250-scripted\r\n250 PIPELINING';

test(
  'a queued transaction: its MAIL, RCPT and DATA go in the same write as the final dot ahead',
  QUICK,
  async (t) => {
    const log: string[] = [];
    const bodies: string[] = [];
    const chunks: string[] = [];
    const port = await scripted(t, { ehlo: PIPELINED, reply: ok }, log, bodies, chunks);
    const client = await SmtpClient.connect(options(port));
    t.after(() => client.close());
    const first = client.send({ from: 'a@example.com', to: ['one@example.com'] }, Buffer.from('first\r\n'));
    assert.equal(client.acceptsFollower, true);
    const second = client.send({ from: 'b@example.com', to: ['two@example.com'] }, Buffer.from('second\r\n'));
    assert.equal(client.acceptsFollower, false, 'one transaction waits at most');
    assert.equal((await first).dataReply?.code, 250);
    assert.equal((await second).dataReply?.code, 250);
    assert.deepEqual(bodies, ['first\r\n', 'second\r\n']);
    assert.deepEqual(
      log.map((l) => l.split(':')[0]),
      ['EHLO client.example', 'MAIL FROM', 'RCPT TO', 'DATA', 'MAIL FROM', 'RCPT TO', 'DATA'],
    );
    assert.ok(
      chunks.some((c) =>
        c.includes('first\r\n.\r\nMAIL FROM:<b@example.com>\r\nRCPT TO:<two@example.com>\r\nDATA\r\n'),
      ),
      JSON.stringify(chunks),
    );
    assert.equal(client.messagesSent, 2);
    assert.equal(client.state, 'idle');
  },
);

test(
  'a queued transaction fails without sending its message when the one ahead loses the connection',
  QUICK,
  async (t) => {
    const bodies: string[] = [];
    let dots = 0;
    const port = await scripted(
      t,
      {
        ehlo: PIPELINED,
        reply: (line, socket) => {
          if (line !== '.') return ok(line);
          dots++;
          socket.end('421 4.3.2 going down\r\n');
          return undefined;
        },
      },
      [],
      bodies,
    );
    const client = await SmtpClient.connect(options(port));
    t.after(() => client.close());
    const first = client.send({ from: 'a@example.com', to: ['one@example.com'] }, Buffer.from('first\r\n'));
    const second = client.send({ from: 'b@example.com', to: ['two@example.com'] }, Buffer.from('second\r\n'));
    await assert.rejects(first, (e: unknown) => {
      assert.ok(e instanceof SmtpClientError);
      assert.equal(e.code, SmtpClientErrorCode.ConnectionLost);
      return true;
    });
    // Unusable: nothing of it was delivered, the caller may send it on another connection at once.
    await assert.rejects(second, (e: unknown) => {
      assert.ok(e instanceof SmtpClientError);
      assert.equal(e.code, SmtpClientErrorCode.Unusable, e.message);
      return true;
    });
    assert.deepEqual(bodies, ['first\r\n']);
    assert.equal(dots, 1);
    assert.equal(client.state, 'closed');
  },
);

test(
  'a queued transaction behind one whose recipients were all refused: RSET first, then it goes',
  QUICK,
  async (t) => {
    const log: string[] = [];
    const bodies: string[] = [];
    const port = await scripted(
      t,
      {
        ehlo: PIPELINED,
        reply: (line) => {
          if (line.includes('<refused@')) return '550 5.1.1 no such user';
          // RFC 2920 §3.1: DATA after only refused recipients is refused.
          if (line === 'DATA' && log.at(-2)?.includes('<refused@')) return '554 5.5.1 no valid recipients';
          return ok(line);
        },
      },
      log,
      bodies,
    );
    const client = await SmtpClient.connect(options(port));
    t.after(() => client.close());
    const first = client.send(
      { from: 'a@example.com', to: ['refused@example.com'] },
      Buffer.from('first\r\n'),
    );
    const second = client.send({ from: 'b@example.com', to: ['two@example.com'] }, Buffer.from('second\r\n'));
    assert.equal((await first).recipients[0]?.status, 'failed');
    assert.equal((await second).recipients[0]?.status, 'delivered');
    assert.deepEqual(bodies, ['second\r\n']);
    assert.deepEqual(
      log.slice(1).map((l) => l.split(':')[0]),
      ['MAIL FROM', 'RCPT TO', 'DATA', 'RSET', 'MAIL FROM', 'RCPT TO', 'DATA'],
    );
  },
);

test('without PIPELINING nothing is queued: a second send() while busy is refused', QUICK, async (t) => {
  const port = await scripted(t, { ehlo: '250-scripted\r\n250 8BITMIME', reply: ok });
  const client = await SmtpClient.connect(options(port));
  t.after(() => client.close());
  const first = client.send({ from: 'a@example.com', to: ['one@example.com'] }, Buffer.from('first\r\n'));
  assert.equal(client.acceptsFollower, false);
  await assert.rejects(
    client.send({ from: 'b@example.com', to: ['two@example.com'] }, Buffer.from('second\r\n')),
    (e: unknown) => e instanceof SmtpClientError && e.code === SmtpClientErrorCode.Unusable,
  );
  assert.equal((await first).dataReply?.code, 250);
});
