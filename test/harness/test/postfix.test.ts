import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { test } from 'node:test';
import { mainCf, masterCf, PostfixErrorCode, startPostfix } from '../src/postfix.ts';
import { startSmtpSink } from '../src/smtp-sink.ts';
import { waitFor } from '../src/wait.ts';

const DEADLINE_MS = 30_000;

async function portRefuses(port: number): Promise<boolean> {
  return await new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', () => resolve(true));
  });
}

test('a message submitted to Postfix reaches the sink through the relayhost, body byte for byte', async (t) => {
  const sink = await startSmtpSink();
  t.after(() => sink.close());
  const postfix = await startPostfix(t.after.bind(t), {
    relayHost: sink.host,
    relayPort: sink.port,
    tls: 'none',
  });
  assert.match(postfix.version, /^\d+\.\d+/);

  const body =
    'First line\r\n.leading dot survives stuffing\r\n..two dots\r\n\r\n' +
    'tab\there, trailing space \r\nlast line\r\n';
  const message = `From: a@client.test\r\nTo: b@remote.test\r\nSubject: interop\r\n\r\n${body}`;
  const queueId = await postfix.send('a@client.test', ['b@remote.test', 'c@remote.test'], message);
  assert.match(queueId, /^[0-9A-Z]+$/);
  assert.deepEqual(postfix.queueIds, [queueId]);

  await postfix.waitForQueueEmpty(DEADLINE_MS);
  assert.equal(sink.messages.length, 1);
  const received = sink.messages[0];
  assert.ok(received);
  assert.equal(received.mailFrom, 'a@client.test');
  assert.deepEqual(received.rcptTo, ['b@remote.test', 'c@remote.test']);
  assert.equal(received.helo, 'postfix.test');
  const data = received.data.toString('utf8');
  const split = data.indexOf('\r\n\r\n');
  assert.equal(data.slice(split + 4), body, 'the body is unchanged');
  const headers = data.slice(0, split);
  assert.match(headers, /^Received: from submitter\.test .*\r\n\tby postfix\.test \(Postfix\)/);
  assert.match(headers, /\r\nSubject: interop$|\r\nSubject: interop\r\n/);

  const deliveries = await postfix.deliveries();
  assert.deepEqual(
    deliveries.map((d) => [d.queueId, d.to, d.relay, d.status]),
    [
      [queueId, 'b@remote.test', `${sink.host}[${sink.host}]:${sink.port}`, 'sent'],
      [queueId, 'c@remote.test', `${sink.host}[${sink.host}]:${sink.port}`, 'sent'],
    ],
  );
  assert.match(deliveries[0]?.detail ?? '', /^250 2\.0\.0 queued as 1/);
  assert.match(await postfix.logs(), /postfix\/master\[\d+\]: daemon started -- version /);

  await postfix.stop();
  assert.deepEqual(await postfix.livePids(), []);
  assert.ok(await portRefuses(postfix.submitPort), 'the submission port is closed after stop()');
  await postfix.stop();
});

test('a tempfail is logged as deferred and retried after flush()', async (t) => {
  const sink = await startSmtpSink({ behaviour: () => ({ kind: 'tempfail', code: 451, text: 'try later' }) });
  t.after(() => sink.close());
  const postfix = await startPostfix(t.after.bind(t), {
    relayHost: sink.host,
    relayPort: sink.port,
    tls: 'none',
  });
  const queueId = await postfix.send('a@client.test', ['x@remote.test'], 'Subject: retry\r\n\r\nhi\r\n');
  const deferred = await waitFor(
    async () => (await postfix.deliveries()).find((d) => d.status === 'deferred'),
    { timeoutMs: DEADLINE_MS, message: 'a deferred delivery in the maillog' },
  );
  assert.equal(deferred.queueId, queueId);
  assert.equal(deferred.dsn, '4.2.0');
  assert.match(deferred.detail, /451 4\.2\.0 try later/);
  assert.equal(sink.messages.length, 0);

  sink.setBehaviour(() => ({ kind: 'accept' }));
  await postfix.flush();
  await postfix.waitForQueueEmpty(DEADLINE_MS);
  assert.equal(sink.messages.length, 1);
  assert.equal((await postfix.deliveries()).at(-1)?.status, 'sent');
});

test('SMTPUTF8 and BODY=8BITMIME given at submission are carried on to the relayhost', async (t) => {
  const sink = await startSmtpSink();
  t.after(() => sink.close());
  const postfix = await startPostfix(t.after.bind(t), {
    relayHost: sink.host,
    relayPort: sink.port,
    tls: 'none',
    trace: true,
  });
  const body = 'Grüße aus Köln\r\n';
  await postfix.send('jürgen@bücher.test', ['ünïcode@remote.test'], `Subject: utf8\r\n\r\n${body}`, {
    smtputf8: true,
    body: '8BITMIME',
    // The sink does not advertise DSN, so Postfix must not pass these on (RFC 3461 §4.1).
    dsn: { ret: 'HDRS', envid: 'env-1', notify: ['SUCCESS', 'FAILURE'], orcpt: 'rfc822;x@remote.test' },
  });
  await postfix.waitForQueueEmpty(DEADLINE_MS);
  const received = sink.messages[0];
  assert.ok(received);
  assert.equal(received.mailFrom, 'jürgen@bücher.test');
  assert.deepEqual(received.rcptTo, ['ünïcode@remote.test']);
  assert.ok(received.mailParams.includes('SMTPUTF8'), `params ${received.mailParams.join(' ')}`);
  assert.ok(received.mailParams.includes('BODY=8BITMIME'), `params ${received.mailParams.join(' ')}`);
  assert.ok(!received.mailParams.some((p) => /^(RET|ENVID)=/.test(p)));
  assert.ok(received.data.toString('utf8').endsWith(`\r\n\r\n${body}`));
  // trace: the conversation with the relayhost is in the maillog.
  const logs = await postfix.logs();
  assert.match(logs, /> 127\.0\.0\.1\[127\.0\.0\.1\]:\d+: MAIL FROM:<jürgen@bücher\.test> .*SMTPUTF8/);
  assert.match(logs, /< 127\.0\.0\.1\[127\.0\.0\.1\]:\d+: 250-PIPELINING/);
});

test('tls starttls and wrapper refuse to relay in cleartext', async (t) => {
  const sink = await startSmtpSink();
  t.after(() => sink.close());
  for (const tls of ['starttls', 'wrapper'] as const) {
    const postfix = await startPostfix(t.after.bind(t), {
      relayHost: sink.host,
      relayPort: sink.port,
      tls,
      sasl: { username: 'user@client.test', password: 'secret pass' },
    });
    await postfix.send('a@client.test', ['b@remote.test'], 'Subject: tls\r\n\r\nx\r\n');
    const deferred = await waitFor(
      async () => (await postfix.deliveries()).find((d) => d.status === 'deferred'),
      { timeoutMs: DEADLINE_MS, message: `a deferred delivery with tls ${tls}` },
    );
    if (tls === 'starttls') assert.match(deferred.detail, /TLS is required, but was not offered/);
    else assert.match(deferred.detail, /Cannot start TLS: handshake failure/);
    await postfix.stop();
  }
  assert.equal(sink.messages.length, 0);
});

test('main.cf maps the options; line breaks cannot inject parameters', () => {
  const base = { relayHost: '127.0.0.1', relayPort: 2525 } as const;
  const none = mainCf('/x', { ...base, tls: 'none' });
  assert.equal(none['relayhost'], '[127.0.0.1]:2525');
  assert.equal(none['smtp_tls_security_level'], 'none');
  assert.equal(none['smtp_sasl_auth_enable'], 'no');
  assert.equal(none['mydestination'], '');
  assert.equal(none['inet_interfaces'], '127.0.0.1');
  assert.equal(none['smtputf8_enable'], 'yes');
  assert.equal(none['maillog_file'], '/x/maillog');

  const starttls = mainCf('/x', {
    ...base,
    tls: 'starttls',
    caFile: '/ca.pem',
    sasl: { username: 'u', password: 'p', mechanisms: ['PLAIN', 'LOGIN'] },
  });
  assert.equal(starttls['smtp_tls_security_level'], 'encrypt');
  assert.equal(starttls['smtp_tls_wrappermode'], 'no');
  assert.equal(starttls['smtp_tls_CAfile'], '/ca.pem');
  assert.equal(starttls['smtp_sasl_auth_enable'], 'yes');
  assert.equal(starttls['smtp_sasl_password_maps'], 'texthash:/x/etc/sasl_passwd');
  assert.equal(starttls['smtp_sasl_security_options'], 'noanonymous');
  assert.equal(starttls['smtp_sasl_mechanism_filter'], 'PLAIN, LOGIN');

  const wrapper = mainCf('/x', { ...base, tls: 'wrapper', verifyName: 'mx.test', mainCf: { a: 'b' } });
  assert.equal(wrapper['smtp_tls_wrappermode'], 'yes');
  assert.equal(wrapper['smtp_tls_security_level'], 'secure');
  assert.equal(wrapper['smtp_tls_secure_cert_match'], 'mx.test');
  assert.equal(wrapper['a'], 'b');

  assert.throws(() => mainCf('/x', { ...base, tls: 'none', hostname: 'a\nrelayhost = evil' }), {
    code: PostfixErrorCode.InvalidOption,
  });
  assert.throws(() => mainCf('/x', { ...base, tls: 'none', verifyName: 'mx.test' }), {
    code: PostfixErrorCode.InvalidOption,
  });

  // Only the submission listener, on loopback: nothing on port 25.
  const inet = masterCf(4000)
    .split('\n')
    .filter((l) => / inet /.test(l));
  assert.deepEqual(inet, ['127.0.0.1:4000 inet n - n - - smtpd']);
});

test('an interrupted test process leaves no Postfix process behind', async (t) => {
  const postfixModule = new URL('../src/postfix.ts', import.meta.url).href;
  const script = `
    import { startPostfix } from ${JSON.stringify(postfixModule)};
    const p = await startPostfix(() => {}, { relayHost: '127.0.0.1', relayPort: 9, tls: 'none' });
    console.log(JSON.stringify({ pids: await p.livePids(), dir: p.dir }));
    setInterval(() => {}, 1000);
  `;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  t.after(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  let out = '';
  child.stdout.on('data', (c: Buffer) => {
    out += c.toString();
  });
  const started = await waitFor(
    () => {
      if (child.exitCode !== null) return { exited: child.exitCode };
      return out.includes('\n') ? (JSON.parse(out) as { pids: number[]; dir: string }) : undefined;
    },
    { timeoutMs: DEADLINE_MS, message: 'the child to start Postfix' },
  );
  assert.ok(!('exited' in started), `the child exited early: ${out}`);
  const report = started;
  assert.ok(report.pids.length >= 2, `master and its services run: ${report.pids.join(',')}`);
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  await exited;
  await waitFor(
    async () => {
      const alive: number[] = [];
      for (const pid of report.pids) {
        const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
        if (stat !== undefined && stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z') {
          alive.push(pid);
        }
      }
      return alive.length === 0;
    },
    { timeoutMs: 10_000, message: 'Postfix processes to be gone' },
  );
});
