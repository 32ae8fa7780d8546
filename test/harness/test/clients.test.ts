import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { tempDir } from '../src/cleanup.ts';
import {
  ClientErrorCode,
  curlSmtp,
  curlSmtpArgs,
  nodemailerSend,
  parseCurlTranscript,
  parseSwaksTranscript,
  pipelinedEnvelope,
  pythonSmtplib,
  repliesOf,
  runClient,
  swaks,
} from '../src/clients.ts';
import { startSmtpSink } from '../src/smtp-sink.ts';

const MESSAGE =
  'From: a@client.test\r\nTo: b@remote.test\r\nSubject: interop\r\n\r\n' +
  'line one\r\n.leading dot\r\n..two dots\r\nlast\r\n';

async function sinkFor(t: { after: (fn: () => Promise<void>) => void }) {
  const sink = await startSmtpSink();
  t.after(() => sink.close());
  return sink;
}

function codes(replies: readonly { code: number }[]): number[] {
  return replies.map((r) => r.code);
}

test('swaks: a pipelined transaction reaches the sink and its replies are parsed', async (t) => {
  const sink = await sinkFor(t);
  const result = await swaks(
    [
      '--server',
      sink.address,
      '--ehlo',
      'swaks.test',
      '--from',
      'a@client.test',
      '--to',
      'b@remote.test,c@remote.test',
      '--pipeline',
      '--data',
      '-',
    ],
    // swaks adds a CRLF before the final dot itself.
    { input: MESSAGE.slice(0, -2) },
  );
  assert.equal(result.exitCode, 0, result.stdout + result.stderr);
  assert.deepEqual(codes(result.replies), [220, 250, 250, 250, 250, 354, 250, 221]);
  assert.match(result.replies[1]?.text ?? '', /^250-sink\.test greets swaks\.test\n250-PIPELINING/);
  assert.ok(result.transcript.some((l) => l.from === 'client' && l.text === 'MAIL FROM:<a@client.test>'));
  assert.equal(pipelinedEnvelope(result.transcript), true);
  const received = sink.messages[0];
  assert.ok(received);
  assert.deepEqual(received.rcptTo, ['b@remote.test', 'c@remote.test']);
  assert.equal(received.helo, 'swaks.test');
  assert.equal(received.data.toString('utf8'), MESSAGE);
});

test('swaks: a refused recipient is a non-zero exit with the 550 in the replies', async (t) => {
  const sink = await sinkFor(t);
  const result = await swaks(
    ['--server', sink.address, '--from', 'a@client.test', '--to', 'permfail-x@remote.test', '--data', '-'],
    { input: MESSAGE },
  );
  assert.equal(result.exitCode, 24);
  assert.ok(result.replies.some((r) => r.text === '550 5.1.1 no such user'));
  assert.equal(sink.messages.length, 0);
});

test('curl: smtp:// upload from a file and from stdin', async (t) => {
  const sink = await sinkFor(t);
  const dir = await tempDir('curl');
  const file = join(dir, 'message.eml');
  await writeFile(file, MESSAGE);
  const result = await curlSmtp({
    url: `smtp://${sink.address}/curl.test`,
    from: 'a@client.test',
    to: ['b@remote.test'],
    file,
    ssl: 'none',
  });
  assert.equal(result.exitCode, 0, result.stderr);
  // curl does not always log the reply to its QUIT.
  assert.deepEqual(codes(result.replies).slice(0, 6), [220, 250, 250, 250, 354, 250]);
  assert.ok(result.transcript.some((l) => l.from === 'client' && l.text === 'EHLO curl.test'));
  assert.equal(sink.messages[0]?.helo, 'curl.test');
  assert.equal(sink.messages[0]?.data.toString('utf8'), MESSAGE);

  const fromStdin = await curlSmtp({
    url: `smtp://${sink.address}`,
    from: 'a@client.test',
    to: ['b@remote.test', 'permfail-1@remote.test'],
    message: MESSAGE,
    ssl: 'none',
    allowRcptFailures: true,
  });
  assert.equal(fromStdin.exitCode, 0, fromStdin.stderr);
  assert.equal(sink.messages[1]?.helo, 'curl.test');
  assert.ok(fromStdin.replies.some((r) => r.code === 550));
  // curl waits for each reply.
  assert.equal(pipelinedEnvelope(fromStdin.transcript), false);
  assert.deepEqual(sink.messages[1]?.rcptTo, ['b@remote.test']);
  assert.equal(sink.messages[1]?.data.toString('utf8'), MESSAGE);
});

test('curl: a refused recipient and a required STARTTLS the server lacks are failures', async (t) => {
  const sink = await sinkFor(t);
  const refused = await curlSmtp({
    url: `smtp://${sink.address}`,
    from: 'a@client.test',
    to: ['permfail-1@remote.test'],
    message: MESSAGE,
    ssl: 'none',
  });
  assert.equal(refused.exitCode, 55, refused.stderr);
  assert.ok(refused.replies.some((r) => r.text === '550 5.1.1 no such user'));
  assert.ok(!refused.transcript.some((l) => l.text === 'DATA'));

  const tls = await curlSmtp({
    url: `smtp://${sink.address}`,
    from: 'a@client.test',
    to: ['b@remote.test'],
    message: MESSAGE,
    ssl: 'starttls',
    user: 'u',
    password: 'p',
  });
  // CURLE_USE_SSL_FAILED: the sink does not offer STARTTLS, so nothing is sent in cleartext.
  assert.equal(tls.exitCode, 64, tls.stderr);
  assert.equal(sink.messages.length, 0);
});

test('curl: argument building checks the scheme against the TLS mode', () => {
  const base = { from: 'a@b.test', to: ['c@d.test'], message: 'x' } as const;
  assert.throws(() => curlSmtpArgs({ ...base, url: 'smtp://h:465', ssl: 'implicit' }), {
    code: ClientErrorCode.InvalidOption,
  });
  assert.throws(() => curlSmtpArgs({ ...base, url: 'smtps://h:465', ssl: 'starttls' }), {
    code: ClientErrorCode.InvalidOption,
  });
  assert.throws(() => curlSmtpArgs({ ...base, file: '/f', url: 'smtp://h', ssl: 'none' }), {
    code: ClientErrorCode.InvalidOption,
  });
  const args = curlSmtpArgs({
    ...base,
    url: 'smtps://h:465',
    ssl: 'implicit',
    user: 'u',
    password: 'p:w',
    loginOptions: 'AUTH=PLAIN',
    cacert: '/ca.pem',
  });
  assert.deepEqual(args.slice(args.indexOf('--user')), [
    '--user',
    'u:p:w',
    '--login-options',
    'AUTH=PLAIN',
    '--cacert',
    '/ca.pem',
  ]);
  assert.ok(!args.includes('--ssl-reqd'));
});

test('python smtplib: mail and rcpt options, every reply reported, bytes unchanged', async (t) => {
  const sink = await sinkFor(t);
  const message = `Subject: ütf8\r\n\r\nGrüße\r\n.dot\r\n`;
  const { result } = await pythonSmtplib({
    host: sink.host,
    port: sink.port,
    tls: 'none',
    ehlo: 'python.test',
    from: 'jürgen@client.test',
    to: ['b@remote.test', 'permfail-1@remote.test'],
    mailOptions: ['SMTPUTF8', 'BODY=8BITMIME'],
    rcptOptions: ['NOTIFY=SUCCESS,FAILURE'],
    message,
  });
  assert.equal(result.ok, true, JSON.stringify(result));
  assert.equal(result.error, null);
  assert.equal(result.features['smtputf8'], '');
  assert.deepEqual(result.refused, { 'permfail-1@remote.test': [550, '5.1.1 no such user'] });
  assert.deepEqual(
    result.exchanges.map((e) => [e.command.split(' ')[0], e.code]),
    [
      ['<greeting>', 220],
      ['ehlo', 250],
      ['mail', 250],
      ['rcpt', 250],
      ['rcpt', 550],
      ['data', 354],
      ['<message>', 250],
      ['quit', 221],
    ],
  );
  assert.match(
    result.exchanges[2]?.command ?? '',
    /^mail FROM:<jürgen@client\.test> size=\d+ SMTPUTF8 BODY=8BITMIME$/,
  );
  assert.equal(result.exchanges[3]?.command, 'rcpt TO:<b@remote.test> NOTIFY=SUCCESS,FAILURE');
  const received = sink.messages[0];
  assert.ok(received);
  assert.equal(received.mailFrom, 'jürgen@client.test');
  assert.equal(received.helo, 'python.test');
  assert.deepEqual(received.rcptTo, ['b@remote.test']);
  assert.equal(received.data.toString('utf8'), message);
});

test('python smtplib: STARTTLS and login fail cleanly against a server without them', async (t) => {
  const sink = await sinkFor(t);
  const base = {
    host: sink.host,
    port: sink.port,
    from: 'a@client.test',
    to: ['b@remote.test'],
    message: MESSAGE,
  };
  const tls = await pythonSmtplib({ ...base, tls: 'starttls' });
  assert.equal(tls.result.ok, false);
  assert.equal(tls.result.error?.type, 'SMTPNotSupportedError');
  const login = await pythonSmtplib({ ...base, tls: 'none', user: 'u', password: 'secret' });
  assert.equal(login.result.ok, false);
  assert.equal(login.result.error?.type, 'SMTPNotSupportedError');
  assert.ok(!login.stdout.includes('secret'));
  const sendMessage = await pythonSmtplib({ ...base, tls: 'none', api: 'send_message' });
  assert.equal(sendMessage.result.ok, true);
  assert.equal(sink.messages.length, 1);
});

test('nodemailer: raw message with an envelope, pipelined, transcript recorded', async (t) => {
  const sink = await sinkFor(t);
  const result = await nodemailerSend({
    host: sink.host,
    port: sink.port,
    secure: false,
    name: 'nodemailer.test',
    envelope: { from: 'a@client.test', to: ['b@remote.test', 'permfail-1@remote.test'] },
    dsn: { ret: 'HDRS', notify: ['SUCCESS'] },
    raw: MESSAGE,
  });
  assert.equal(result.ok, true, JSON.stringify(result.error));
  assert.match(result.response ?? '', /^250 2\.0\.0 queued as 1$/);
  assert.deepEqual(result.accepted, ['b@remote.test']);
  assert.deepEqual(result.rejected, ['permfail-1@remote.test']);
  assert.ok(result.transcript.some((l) => l.from === 'client' && l.text === 'EHLO nodemailer.test'));
  assert.equal(pipelinedEnvelope(result.transcript), true);
  assert.ok(result.replies.some((r) => r.code === 354));
  const received = sink.messages[0];
  assert.ok(received);
  assert.equal(received.data.toString('utf8'), MESSAGE);
  // The sink does not advertise DSN, so nodemailer leaves RET out (RFC 3461 §4).
  assert.ok(!received.mailParams.some((p) => p.startsWith('RET=')));
});

test('nodemailer: failures come back as data, not exceptions', async (t) => {
  const sink = await sinkFor(t);
  const base = {
    host: sink.host,
    port: sink.port,
    secure: false,
    envelope: { from: 'a@client.test', to: ['permfail-1@remote.test'] },
    raw: MESSAGE,
  };
  const refused = await nodemailerSend(base);
  assert.equal(refused.ok, false);
  assert.equal(refused.error?.code, 'EENVELOPE');
  assert.equal(refused.error?.responseCode, 550);
  const tls = await nodemailerSend({ ...base, requireTLS: true });
  assert.equal(tls.ok, false);
  assert.equal(tls.error?.code, 'ETLS');
  assert.equal(sink.messages.length, 0);
});

test('transcript parsers and reply grouping', () => {
  const swaksOut = [
    '=== Trying 127.0.0.1:25...',
    '<-  220 mx.test ESMTP',
    ' -> EHLO c.test',
    '<-  250-mx.test',
    '<-  250 STARTTLS',
    ' -> STARTTLS',
    '<-  220 go ahead',
    '=== TLS started with cipher TLSv1.3:TLS_AES_256_GCM_SHA384:256',
    ' ~> EHLO c.test',
    '<~  250-mx.test',
    '<~  250 AUTH PLAIN',
    ' ~> AUTH PLAIN AGEAYg==',
    '<~* 535 5.7.8 bad credentials',
  ].join('\n');
  const transcript = parseSwaksTranscript(swaksOut);
  assert.equal(transcript.length, 11);
  assert.deepEqual(transcript[2], { from: 'server', text: '250-mx.test' });
  assert.deepEqual(transcript[6], { from: 'client', text: 'EHLO c.test' });
  assert.deepEqual(
    repliesOf(transcript).map((r) => r.text),
    [
      '220 mx.test ESMTP',
      '250-mx.test\n250 STARTTLS',
      '220 go ahead',
      '250-mx.test\n250 AUTH PLAIN',
      '535 5.7.8 bad credentials',
    ],
  );
  assert.deepEqual(parseCurlTranscript('* Connected\n< 220 hi\r\n> EHLO x\n< 250 ok\n'), [
    { from: 'server', text: '220 hi' },
    { from: 'client', text: 'EHLO x' },
    { from: 'server', text: '250 ok' },
  ]);
});

test('runClient reports a missing program and kills a client past its deadline', async () => {
  await assert.rejects(runClient('petrel-no-such-client', []), { code: ClientErrorCode.Unavailable });
  await assert.rejects(runClient('sleep', ['30'], { timeoutMs: 200 }), { code: ClientErrorCode.Timeout });
});
