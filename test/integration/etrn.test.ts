// ETRN (RFC 1985) end to end through `petrel dev`: the ingress asks the delivery workers to flush
// a domain's deferred mail (queue operation "flush"), which then goes out at once instead of at
// its next retry time (here a minute away).
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { test } from 'node:test';
import { SmtpClient } from '@petrel/smtp';
import { startPetrelDev, startSmtpSink, waitFor } from '@petrel/test-harness';
import { exampleConfigDir } from './fixtures.ts';

/** A line-oriented SMTP conversation for commands our client does not send (ETRN). */
async function converse(port: number, lines: string[], localAddress = '127.0.0.1'): Promise<string[]> {
  const socket: Socket = connect({ host: '127.0.0.1', port, localAddress });
  await once(socket, 'connect');
  let buffer = '';
  const replies: string[] = [];
  let wake: (() => void) | undefined;
  socket.on('data', (c: Buffer) => {
    buffer += c.toString('latin1');
    wake?.();
  });
  const next = async (): Promise<string> => {
    for (;;) {
      const m = /(?:^|\n)(\d{3}) [^\r\n]*\r\n/.exec(buffer);
      if (m) {
        buffer = buffer.slice((m.index ?? 0) + m[0].length);
        return m[0].trim();
      }
      await new Promise<void>((r) => {
        wake = r;
      });
    }
  };
  replies.push(await next());
  for (const line of lines) {
    socket.write(`${line}\r\n`);
    replies.push(await next());
  }
  socket.destroy();
  return replies;
}

test('ETRN from a configured network flushes the deferred mail of a domain; others get 459', async (t) => {
  let accept = false;
  const sink = await startSmtpSink({ behaviour: () => (accept ? { kind: 'accept' } : { kind: 'tempfail' }) });
  t.after(() => sink.close());
  const dev = await startPetrelDev(t.after.bind(t), {
    configDir: await exampleConfigDir(),
    smarthost: sink.address,
    env: { PETREL_ETRN_NETWORKS: '127.0.0.2/32', PETREL_RETRY_DELAYS_MS: '1m' },
  });
  const client = await SmtpClient.connect({
    host: '127.0.0.1',
    port: dev.smtpPort,
    localName: 'etrn.test',
    tls: 'none',
  });
  const sent = await client.send(
    { from: 'sender@outside.example', to: ['rcpt@example.org'] },
    Buffer.from('Subject: etrn\r\n\r\nwaiting\r\n'),
  );
  await client.quit();
  assert.equal(sent.dataReply?.code, 250);
  // The first attempt is refused with 450: the entry waits a minute for its retry.
  await waitFor(() => (sink.rejectedRecipients.length > 0 ? true : undefined), { timeoutMs: 30_000 });
  accept = true;

  // 127.0.0.1 is not in PETREL_ETRN_NETWORKS and did not authenticate.
  const denied = await converse(dev.smtpPort, ['EHLO etrn.test', 'ETRN example.org']);
  assert.match(denied[2] ?? '', /^459 /);

  // The sink refuses before the worker has scheduled the retry; until it has, ETRN finds nothing
  // (251, which has no effect), so ask again until the entry is there.
  const flushed = await waitFor(
    async () => {
      const replies = await converse(
        dev.smtpPort,
        ['EHLO etrn.test', 'ETRN example.org', 'ETRN nothing.example', 'QUIT'],
        '127.0.0.2',
      );
      return /^253 /.test(replies[2] ?? '') ? replies : undefined;
    },
    { timeoutMs: 20_000, intervalMs: 200, message: 'ETRN to find the deferred entry' },
  );
  assert.match(flushed[2] ?? '', /^253 2\.0\.0 1 pending messages for node example\.org started/);
  assert.match(flushed[3] ?? '', /^251 2\.0\.0 /);
  await waitFor(() => (sink.messagesTo('rcpt@example.org').length > 0 ? true : undefined), {
    timeoutMs: 20_000,
  });
});
