// Interoperability of the ingress with real SMTP clients: swaks, curl, Python's smtplib,
// nodemailer and Postfix (as a relay using the ingress as its relayhost with SASL), over
// STARTTLS on the submission port and implicit TLS on the SMTPS port, through `petrel dev`.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { after, before, test } from 'node:test';
import {
  curlSmtp,
  nodemailerSend,
  type PetrelDev,
  pythonSmtplib,
  type SmtpSink,
  startPetrelDev,
  startPostfix,
  startSmtpSink,
  swaks,
  waitFor,
} from '@petrel/test-harness';
import { exampleConfigDir } from './fixtures.ts';

// examples/local declares app@example.org with password "change-me", allowed senders *@example.org.
const USER = 'app@example.org';
const PASSWORD = 'change-me';

let sink: SmtpSink;
let dev: PetrelDev;
let ca: Buffer;
const cleanups: (() => unknown)[] = [];

before(async () => {
  sink = await startSmtpSink();
  dev = await startPetrelDev((fn) => void cleanups.push(fn), {
    configDir: await exampleConfigDir(),
    smarthost: sink.address,
  });
  ca = await readFile(dev.certificatePath);
});

after(async () => {
  for (const fn of cleanups.reverse()) await fn();
  await sink.close();
});

function message(id: string, extra = ''): string {
  return `From: ${USER}\r\nTo: rcpt@elsewhere.example\r\nSubject: interop ${id}\r\nMessage-ID: <${id}@petrel.test>\r\n${extra}\r\nbody of ${id}\r\n`;
}

/** Waits for the message with this Message-ID at the smarthost and returns it. */
async function arrived(id: string) {
  await waitFor(() => sink.messages.some((m) => m.data.includes(`<${id}@petrel.test>`)), {
    timeoutMs: 30_000,
    message: `message ${id} at the smarthost`,
  });
  const m = sink.messages.find((x) => x.data.includes(`<${id}@petrel.test>`));
  assert.ok(m);
  // The ingress adds its Received field with the TLS details (RFC 5321 §4.4).
  assert.match(
    m.data.toString('latin1'),
    /^Received: from [^\r]*[\s\S]*?\(using TLSv1\.[23] with cipher\s+[A-Z0-9_]+\)/,
  );
  return m;
}

test('swaks: STARTTLS + AUTH PLAIN with pipelining on the submission port', async () => {
  const r = await swaks([
    '--server',
    `127.0.0.1:${dev.submissionPort}`,
    '--tls',
    '--tls-verify',
    '--tls-ca-path',
    dev.certificatePath,
    '--tls-sni',
    'localhost',
    '--auth',
    'PLAIN',
    '--auth-user',
    USER,
    '--auth-password',
    PASSWORD,
    '--pipeline',
    '--from',
    USER,
    '--to',
    'rcpt@elsewhere.example',
    '--data',
    message('swaks-587'),
  ]);
  assert.equal(r.exitCode, 0, r.stdout + r.stderr);
  await arrived('swaks-587');
});

test('swaks: implicit TLS + AUTH LOGIN on the SMTPS port', async () => {
  const r = await swaks([
    '--server',
    `127.0.0.1:${dev.smtpsPort}`,
    '--tls-on-connect',
    '--auth',
    'LOGIN',
    '--auth-user',
    USER,
    '--auth-password',
    PASSWORD,
    '--from',
    USER,
    '--to',
    'rcpt@elsewhere.example',
    '--data',
    message('swaks-465'),
  ]);
  assert.equal(r.exitCode, 0, r.stdout + r.stderr);
  await arrived('swaks-465');
});

test('curl: smtp:// with --ssl-reqd and AUTH, and smtps://', async () => {
  for (const [ssl, port, id] of [
    ['starttls', dev.submissionPort, 'curl-587'],
    ['implicit', dev.smtpsPort, 'curl-465'],
  ] as const) {
    const r = await curlSmtp({
      url: `${ssl === 'implicit' ? 'smtps' : 'smtp'}://localhost:${port}/curl.test`,
      ssl,
      from: USER,
      to: ['rcpt@elsewhere.example'],
      message: message(id),
      user: USER,
      password: PASSWORD,
      cacert: dev.certificatePath,
    });
    assert.equal(r.exitCode, 0, r.stderr);
    await arrived(id);
  }
});

test("Python's smtplib: STARTTLS, CRAM-MD5 login, SMTPUTF8 and DSN parameters", async () => {
  const r = await pythonSmtplib({
    host: 'localhost',
    port: dev.submissionPort,
    tls: 'starttls',
    cafile: dev.certificatePath,
    user: USER,
    password: PASSWORD,
    from: USER,
    to: ['rcpt@elsewhere.example', 'δοκιμή@elsewhere.example'],
    mailOptions: ['SMTPUTF8', 'BODY=8BITMIME', 'RET=HDRS', 'ENVID=smtplib-1'],
    rcptOptions: ['NOTIFY=SUCCESS,FAILURE'],
    message: message('smtplib-587'),
  });
  assert.equal(r.result.ok, true, JSON.stringify(r.result));
  assert.equal(r.result.authenticated, true);
  assert.ok('dsn' in r.result.features && 'smtputf8' in r.result.features && 'chunking' in r.result.features);
  const m = await arrived('smtplib-587');
  assert.deepEqual([...m.rcptTo].sort(), ['rcpt@elsewhere.example', 'δοκιμή@elsewhere.example'].sort());
});

test('nodemailer: implicit TLS and STARTTLS with AUTH and DSN', async () => {
  for (const [secure, port, id] of [
    [true, dev.smtpsPort, 'nodemailer-465'],
    [false, dev.submissionPort, 'nodemailer-587'],
  ] as const) {
    const r = await nodemailerSend({
      host: '127.0.0.1',
      port,
      secure,
      requireTLS: !secure,
      tls: { ca, servername: 'localhost' },
      auth: { user: USER, pass: PASSWORD },
      envelope: { from: USER, to: ['rcpt@elsewhere.example'] },
      dsn: { ret: 'HDRS', envid: id, notify: ['FAILURE'] },
      raw: message(id),
    });
    assert.equal(r.ok, true, JSON.stringify(r.error));
    assert.match(r.response ?? '', /^250 2\.0\.0 OK queued as /);
    await arrived(id);
  }
});

test('the submission port refuses what it must: no TLS, no AUTH, wrong password, foreign sender', async () => {
  const plain = await pythonSmtplib({
    host: 'localhost',
    port: dev.submissionPort,
    tls: 'none',
    from: USER,
    to: ['rcpt@elsewhere.example'],
    message: message('refused-1'),
  });
  assert.equal(plain.result.ok, false);
  assert.equal(plain.result.error?.code, 530);
  const wrong = await pythonSmtplib({
    host: 'localhost',
    port: dev.submissionPort,
    tls: 'starttls',
    cafile: dev.certificatePath,
    user: USER,
    password: 'not-the-password',
    authMechanism: 'PLAIN',
    from: USER,
    to: ['rcpt@elsewhere.example'],
    message: message('refused-2'),
  });
  assert.equal(wrong.result.error?.code, 535);
  const foreign = await nodemailerSend({
    host: '127.0.0.1',
    port: dev.smtpsPort,
    secure: true,
    tls: { ca, servername: 'localhost' },
    auth: { user: USER, pass: PASSWORD },
    envelope: { from: 'ceo@other.example', to: ['rcpt@elsewhere.example'] },
    raw: message('refused-3'),
  });
  assert.equal(foreign.ok, false);
  assert.equal(foreign.error?.responseCode, 553);
});

test('Postfix relays through the ingress as its relayhost with SASL, over STARTTLS and implicit TLS', async (t) => {
  for (const [tls, port, id] of [
    ['starttls', dev.submissionPort, 'postfix-587'],
    ['wrapper', dev.smtpsPort, 'postfix-465'],
  ] as const) {
    const postfix = await startPostfix(t.after.bind(t), {
      relayHost: '127.0.0.1',
      relayPort: port,
      tls,
      caFile: dev.certificatePath,
      sasl: { username: USER, password: PASSWORD },
    });
    await postfix.send(USER, ['rcpt@elsewhere.example'], message(id), {
      smtputf8: false,
      body: '8BITMIME',
      dsn: { ret: 'HDRS', envid: id, notify: ['FAILURE'] },
    });
    await postfix.waitForQueueEmpty(60_000);
    const deliveries = await postfix.deliveries();
    assert.ok(
      deliveries.some((d) => d.status === 'sent' && /queued as/.test(d.detail)),
      JSON.stringify(deliveries),
    );
    const m = await arrived(id);
    // Postfix's own Received field is below ours: the message went through both.
    assert.match(
      m.data.toString('latin1'),
      /^Received: from postfix\.test[\s\S]*\bby postfix\.test \(Postfix\)/,
    );
    await postfix.stop();
  }
});
