import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { SmtpClient } from '@petrel/smtp';
import { startNats, startPetrelDev, startSmtpSink, tempDir, waitFor } from '@petrel/test-harness';
import { exampleConfigDir, writeMailDomain } from './fixtures.ts';

const run = promisify(execFile);

/** Where two byte strings part, with context, for a readable assertion message. */
function firstDifference(actual: Buffer, expected: Buffer): string {
  let i = 0;
  while (i < actual.length && i < expected.length && actual[i] === expected[i]) i++;
  const show = (b: Buffer) => JSON.stringify(b.subarray(Math.max(0, i - 20), i + 20).toString('latin1'));
  return `bytes differ at offset ${i} (lengths ${actual.length} vs ${expected.length}): got ${show(actual)}, expected ${show(expected)}`;
}

/** swaks, the real SMTP client of the README walk-through. Exit status is not an error here. */
async function swaks(args: string[]): Promise<{ code: number; out: string }> {
  try {
    const { stdout, stderr } = await run('swaks', args, { timeout: 60_000 });
    return { code: 0, out: stdout + stderr };
  } catch (error) {
    const e = error as { code?: unknown; stdout?: string; stderr?: string };
    if (e.code === 'ENOENT')
      throw new Error('swaks is not installed (the test command installs it: apt-get install swaks)');
    return { code: typeof e.code === 'number' ? e.code : -1, out: `${e.stdout ?? ''}${e.stderr ?? ''}` };
  }
}

test('swaks to a managed domain gets 250 and the message arrives at the smarthost byte for byte', async (t) => {
  const sink = await startSmtpSink();
  t.after(() => sink.close());
  const dev = await startPetrelDev(t.after.bind(t), {
    configDir: await exampleConfigDir(),
    smarthost: sink.address,
  });

  // Dot-stuffing, an empty line, 8-bit text and a long (but legal) line all must survive unchanged.
  const message = Buffer.from(
    [
      'From: Sender <sender@outside.example>',
      'To: rcpt@example.org',
      'Subject: petrel byte-for-byte',
      'Message-ID: <byte-for-byte@outside.example>',
      'Content-Type: text/plain; charset=utf-8',
      'Content-Transfer-Encoding: 8bit',
      '',
      '.a line starting with a dot',
      '..two dots',
      'caf\u00e9 \u2603',
      'x'.repeat(900),
    ].join('\r\n'),
    'utf8',
  );
  // swaks ends the data with CRLF.CRLF itself: the message on the wire is the file plus CRLF.
  const onTheWire = Buffer.concat([message, Buffer.from('\r\n')]);
  const dir = await tempDir('swaks');
  const file = join(dir, 'message.eml');
  await writeFile(file, message);

  const sent = await swaks([
    '--server',
    `127.0.0.1:${dev.smtpPort}`,
    '--from',
    'sender@outside.example',
    '--to',
    'rcpt@example.org',
    '--data',
    `@${file}`,
  ]);
  assert.equal(sent.code, 0, sent.out);
  const queued = /<-\s+250 2\.0\.0 OK queued as ([0-9A-Z]{26})/.exec(sent.out);
  assert.ok(queued, `swaks saw the 250 with a queue id:\n${sent.out}`);

  const [received] = await waitFor(() => (sink.messages.length > 0 ? sink.messages : undefined), {
    timeoutMs: 30_000,
    message: 'the message at the smarthost',
  });
  assert.ok(received);
  assert.equal(received.mailFrom, 'sender@outside.example');
  assert.deepEqual(received.rcptTo, ['rcpt@example.org']);
  // The ingress prepends its trace fields (Received, Authentication-Results); the rest is untouched.
  const added = received.data.subarray(0, received.data.length - onTheWire.length);
  const rest = received.data.subarray(added.length);
  assert.ok(rest.equals(onTheWire), firstDifference(rest, onTheWire));
  assert.match(
    added.toString('latin1'),
    /^Received: from [^\r]+\r\n(?:[ \t][^\r]*\r\n)*Authentication-Results: localhost;/,
  );
  assert.match(added.toString('latin1'), /with ESMTP id [^\r]*[\s\S]*; \w{3}, \d{1,2} \w{3} \d{4} /);
  assert.equal(sink.messages.length, 1);
});

test('recipients outside the managed domains are refused with 550 5.7.1 (no open relay, loopback included)', async (t) => {
  const sink = await startSmtpSink();
  t.after(() => sink.close());
  const dev = await startPetrelDev(t.after.bind(t), {
    configDir: await exampleConfigDir(),
    smarthost: sink.address,
  });
  const sent = await swaks([
    '--server',
    `127.0.0.1:${dev.smtpPort}`,
    '--from',
    'a@example.org',
    '--to',
    'victim@elsewhere.example',
  ]);
  assert.notEqual(sent.code, 0);
  assert.match(sent.out, /<\*\* 550 5\.7\.1 Relaying denied/);
  assert.equal(sink.messages.length, 0);
});

test('a MailDomain added to the config directory is accepted without a restart', async (t) => {
  const sink = await startSmtpSink();
  t.after(() => sink.close());
  const configDir = await exampleConfigDir();
  const dev = await startPetrelDev(t.after.bind(t), { configDir, smarthost: sink.address });
  const client = await SmtpClient.connect({
    host: '127.0.0.1',
    port: dev.smtpPort,
    localName: 'test.example',
  });
  t.after(() => client.close());
  const before = await client.send(
    { from: 'a@outside.example', to: ['x@new.example'] },
    Buffer.from('Subject: 1\r\n\r\nx\r\n'),
  );
  assert.equal(before.rejected[0]?.reply.code, 550);

  await writeMailDomain(configDir, 'new-example', 'new.example');
  // A new connection per try: the ingress ends a session after 20 errors (refused RCPTs count),
  // which one session reaches in about two seconds of retries.
  await waitFor(
    async () => {
      const retry = await SmtpClient.connect({
        host: '127.0.0.1',
        port: dev.smtpPort,
        localName: 'test.example',
      });
      try {
        const r = await retry.send(
          { from: 'a@outside.example', to: ['x@new.example'] },
          Buffer.from('Subject: 2\r\n\r\nx\r\n'),
        );
        return r.dataReply?.code === 250;
      } finally {
        retry.close();
      }
    },
    { timeoutMs: 30_000, intervalMs: 250, message: 'new.example to be accepted' },
  );
  await waitFor(() => sink.messagesTo('x@new.example').length === 1, {
    timeoutMs: 30_000,
    message: 'delivery to new.example',
  });
});

test('the final dot gets 451 4.3.0 when JetStream cannot acknowledge the publish, and nothing is delivered', async (t) => {
  const sink = await startSmtpSink();
  t.after(() => sink.close());
  const nats = await startNats(t.after.bind(t));
  const dev = await startPetrelDev(t.after.bind(t), {
    configDir: await exampleConfigDir(),
    smarthost: sink.address,
    natsUrl: nats.url,
    env: { PETREL_PUBLISH_TIMEOUT_MS: '1000' },
  });
  const client = await SmtpClient.connect({
    host: '127.0.0.1',
    port: dev.smtpPort,
    localName: 'test.example',
  });
  t.after(() => client.close());
  await nats.stop();
  const result = await client.send(
    { from: 'a@outside.example', to: ['rcpt@example.org'] },
    Buffer.from('Subject: x\r\n\r\nx\r\n'),
  );
  assert.equal(result.dataReply?.code, 451);
  assert.equal(result.dataReply?.enhanced, '4.3.0');
  assert.equal(sink.messages.length, 0);
});
