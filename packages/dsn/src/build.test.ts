import assert from 'node:assert/strict';
import { isAscii } from 'node:buffer';
import { describe, it } from 'node:test';
import { header, type PyMessage, type PyPart, parseWithPython } from '../test/python-email.ts';
import { buildDsn, composeDsn, type DsnInput, type DsnRecipientResult } from './build.ts';

const ORIGINAL = Buffer.from(
  'From: Alice <alice@origin.example>\r\n' +
    'To: bob@dest.example, carol@dest.example\r\n' +
    'Subject: the original\r\n' +
    'Message-ID: <o1@origin.example>\r\n' +
    '\r\n' +
    'Body line one\r\n' +
    '.leading dot\r\n' +
    'last line\r\n',
);

const BOB: DsnRecipientResult = {
  address: 'bob@dest.example',
  action: 'failed',
  status: '5.1.1',
  remoteMta: 'mx.dest.example',
  diagnosticCode: 'smtp; 550 5.1.1 <bob@dest.example>: no such user',
  lastAttemptDate: new Date('2026-11-22T10:04:00Z'),
};

const BASE: DsnInput = {
  reportingMta: 'mx.petrel.test',
  sender: 'alice@origin.example',
  receivedAt: new Date('2026-11-22T10:00:00Z'),
  original: ORIGINAL,
  recipients: [BOB],
  generate: {
    now: () => new Date('2026-11-22T10:05:00Z'),
    messageId: (domain) => `dsn1@${domain}`,
    boundary: () => 'b0undary',
  },
};

function part(parsed: PyMessage, index: number): PyPart {
  const p = parsed.parts[index];
  assert.ok(p, `part ${index + 1} of ${parsed.parts.length}`);
  return p;
}

/** What Python saw must be free of MIME/RFC 5322 defects, at every level. */
function assertNoDefects(parsed: PyMessage): void {
  assert.deepEqual(parsed.defects, []);
  for (const p of parsed.parts) {
    assert.deepEqual(p.defects, [], p.type);
    assert.deepEqual(p.message?.defects ?? [], [], `${p.type} inner message`);
  }
}

/** Header lines of the DSN and of its delivery-status part: folded within 78 characters. */
function assertFolded(message: Buffer, boundary: string, limit = 78): void {
  const text = message.toString('utf8');
  const head = text.slice(0, text.indexOf('\r\n\r\n'));
  const statusStart = text.indexOf('delivery-status\r\n', text.indexOf(`--${boundary}\r\n`, head.length));
  const status = text.slice(statusStart, text.indexOf(`\r\n--${boundary}`, statusStart));
  for (const line of [...head.split('\r\n'), ...status.split('\r\n')]) {
    assert.ok(line.length <= limit, `line over ${limit} characters: ${JSON.stringify(line)}`);
  }
}

function assertCrlfOnly(message: Buffer): void {
  const text = message.toString('latin1');
  assert.doesNotMatch(text, /[^\r]\n/, 'bare LF');
  assert.doesNotMatch(text, /\r[^\n]/, 'bare CR');
  assert.ok(text.endsWith('\r\n'));
}

describe('buildDsn, parsed by Python email', () => {
  it('a failure DSN: multipart/report with text, message/delivery-status and the original header section', async () => {
    const dsn = buildDsn({ ...BASE, ret: 'HDRS' });
    assertCrlfOnly(dsn);
    assertFolded(dsn, 'b0undary');
    const parsed = await parseWithPython(dsn);
    assertNoDefects(parsed);
    assert.equal(parsed.type, 'multipart/report');
    assert.deepEqual(parsed.params, { 'report-type': 'delivery-status', boundary: 'b0undary' });
    assert.equal(header(parsed.headers, 'From'), 'Mail Delivery System <MAILER-DAEMON@mx.petrel.test>');
    assert.equal(header(parsed.headers, 'To'), 'alice@origin.example');
    assert.equal(header(parsed.headers, 'Subject'), 'Undelivered Mail Returned to Sender');
    assert.equal(header(parsed.headers, 'Auto-Submitted'), 'auto-replied');
    assert.equal(header(parsed.headers, 'MIME-Version'), '1.0');
    assert.equal(header(parsed.headers, 'Date'), 'Sun, 22 Nov 2026 10:05:00 +0000');
    assert.equal(header(parsed.headers, 'Message-ID'), '<dsn1@mx.petrel.test>');
    assert.equal(header(parsed.headers, 'In-Reply-To'), '<o1@origin.example>');
    assert.equal(header(parsed.headers, 'Content-Transfer-Encoding'), undefined, 'all 7bit');
    assert.deepEqual(
      parsed.parts.map((p) => p.type),
      ['text/plain', 'message/delivery-status', 'text/rfc822-headers'],
    );

    assert.match(part(parsed, 0).text ?? '', /could not be delivered/);
    assert.match(
      part(parsed, 0).text ?? '',
      /<bob@dest\.example>\r\n {4}mx\.dest\.example said: 550 5\.1\.1 <bob@dest\.example>: no such user/,
    );
    assert.equal(part(parsed, 0).params['charset'], 'us-ascii');

    const [perMessage, bob, ...more] = part(parsed, 1).blocks ?? [];
    assert.deepEqual(more, []);
    assert.deepEqual(perMessage, {
      'Reporting-MTA': 'dns; mx.petrel.test',
      'Arrival-Date': 'Sun, 22 Nov 2026 10:00:00 +0000',
    });
    assert.deepEqual(bob, {
      'Final-Recipient': 'rfc822;bob@dest.example',
      Action: 'failed',
      Status: '5.1.1',
      'Remote-MTA': 'dns; mx.dest.example',
      'Diagnostic-Code': 'smtp; 550 5.1.1 <bob@dest.example>: no such user',
      'Last-Attempt-Date': 'Sun, 22 Nov 2026 10:04:00 +0000',
    });

    // RET=HDRS: exactly the header section, never the body.
    assert.equal(
      part(parsed, 2).text,
      ORIGINAL.subarray(0, ORIGINAL.indexOf('\r\n\r\n') + 2).toString('latin1'),
    );
    assert.doesNotMatch(dsn.toString(), /Body line one/);
  });

  it('a delay DSN: Will-Retry-Until, the delay subject and text', async () => {
    const dsn = buildDsn({
      ...BASE,
      ret: 'HDRS',
      recipients: [
        {
          address: 'bob@dest.example',
          action: 'delayed',
          status: '4.4.1',
          diagnosticCode: '421 4.4.1 mx.dest.example: connection refused',
          lastAttemptDate: new Date('2026-11-22T14:00:00Z'),
          willRetryUntil: new Date('2026-11-27T10:00:00Z'),
        },
      ],
    });
    const parsed = await parseWithPython(dsn);
    assertNoDefects(parsed);
    assert.equal(header(parsed.headers, 'Subject'), 'Delayed Mail (still being retried)');
    const recipient = part(parsed, 1).blocks?.[1];
    assert.equal(recipient?.['Action'], 'delayed');
    assert.equal(recipient?.['Status'], '4.4.1');
    assert.equal(recipient?.['Will-Retry-Until'], 'Fri, 27 Nov 2026 10:00:00 +0000');
    // A bare reply gets the smtp diagnostic type.
    assert.equal(recipient?.['Diagnostic-Code'], 'smtp; 421 4.4.1 mx.dest.example: connection refused');
    assert.match(part(parsed, 0).text ?? '', /not been delivered yet/);
    assert.match(part(parsed, 0).text ?? '', /Retrying until Fri, 27 Nov 2026 10:00:00 \+0000/);
    assert.doesNotMatch(part(parsed, 0).text ?? '', /could not be delivered/);
  });

  it('several recipients with ORCPT and ENVID: one block each, in order, with the per-message fields', async () => {
    const dsn = buildDsn({
      ...BASE,
      ret: 'HDRS',
      envid: 'QQ314159',
      client: { helo: 'client.origin.example', remoteAddress: '192.0.2.1' },
      recipients: [
        { ...BOB, orcpt: 'rfc822;Bob@Dest.Example' },
        {
          address: 'carol@dest.example',
          orcpt: 'rfc822;carol+tag@dest.example',
          action: 'delayed',
          status: '4.2.2',
          remoteMta: '192.0.2.25',
          diagnosticCode: 'smtp; 452 4.2.2 mailbox full',
          willRetryUntil: new Date('2026-11-27T10:00:00Z'),
        },
        {
          address: 'dave@dest.example',
          action: 'failed',
          status: '5.4.7',
          willRetryUntil: new Date('2026-11-27T10:00:00Z'),
        },
      ],
    });
    const parsed = await parseWithPython(dsn);
    assertNoDefects(parsed);
    // A failure among them decides the subject.
    assert.equal(header(parsed.headers, 'Subject'), 'Undelivered Mail Returned to Sender');
    const blocks = part(parsed, 1).blocks ?? [];
    assert.equal(blocks.length, 4);
    assert.deepEqual(blocks[0], {
      'Reporting-MTA': 'dns; mx.petrel.test',
      'Original-Envelope-Id': 'QQ314159',
      'Received-From-MTA': 'dns; client.origin.example ([192.0.2.1])',
      'Arrival-Date': 'Sun, 22 Nov 2026 10:00:00 +0000',
    });
    assert.equal(blocks[1]?.['Original-Recipient'], 'rfc822;Bob@Dest.Example');
    assert.equal(blocks[1]?.['Final-Recipient'], 'rfc822;bob@dest.example');
    assert.equal(blocks[2]?.['Original-Recipient'], 'rfc822;carol+tag@dest.example');
    assert.equal(blocks[2]?.['Final-Recipient'], 'rfc822;carol@dest.example');
    assert.equal(blocks[2]?.['Remote-MTA'], 'dns; [192.0.2.25]');
    assert.equal(blocks[2]?.['Will-Retry-Until'], 'Fri, 27 Nov 2026 10:00:00 +0000');
    // Without ORCPT there is no Original-Recipient; Will-Retry-Until only for delayed recipients.
    assert.deepEqual(blocks[3], {
      'Final-Recipient': 'rfc822;dave@dest.example',
      Action: 'failed',
      Status: '5.4.7',
    });
    const text = part(parsed, 0).text ?? '';
    assert.ok(text.indexOf('<bob@dest.example>') < text.indexOf('<carol@dest.example>'));
    assert.match(text, /<dave@dest\.example>\r\n {4}status 5\.4\.7/);
  });

  it('RET=FULL returns the whole message as message/rfc822, byte for byte', async () => {
    const dsn = buildDsn({ ...BASE, ret: 'FULL' });
    const parsed = await parseWithPython(dsn);
    assertNoDefects(parsed);
    const returned = part(parsed, 2);
    assert.equal(returned.type, 'message/rfc822');
    assert.deepEqual(returned.message?.headers, [
      ['From', 'Alice <alice@origin.example>'],
      ['To', 'bob@dest.example, carol@dest.example'],
      ['Subject', 'the original'],
      ['Message-ID', '<o1@origin.example>'],
    ]);
    assert.equal(returned.message?.body, 'Body line one\r\n.leading dot\r\nlast line\r\n');
    // The original's bytes appear unchanged, followed by the CRLF of the closing delimiter.
    assert.ok(dsn.includes(Buffer.concat([ORIGINAL, Buffer.from('\r\n--b0undary--\r\n')])));
    assert.match(part(parsed, 0).text ?? '', /Your message is attached/);
  });

  it('without RET: the whole message up to the limit, the header section above it; RET=FULL too', async () => {
    const big = Buffer.concat([ORIGINAL, Buffer.from(`${'x'.repeat(70)}\r\n`.repeat(30))]);
    const small = composeDsn({ ...BASE, original: ORIGINAL, maxReturnSize: 1000 });
    assert.equal(small.returned, 'full');
    assert.equal(part(await parseWithPython(small.message), 2).type, 'message/rfc822');

    for (const ret of [undefined, 'FULL'] as const) {
      const large = composeDsn({ ...BASE, ret, original: big, maxReturnSize: 1000 });
      assert.equal(large.returned, 'headers-size');
      const parsed = await parseWithPython(large.message);
      assertNoDefects(parsed);
      assert.equal(part(parsed, 2).type, 'text/rfc822-headers');
      assert.match(part(parsed, 2).text ?? '', /^From: Alice/);
      assert.doesNotMatch(large.message.toString(), /xxxxxxxx/);
      assert.match(
        part(parsed, 0).text ?? '',
        new RegExp(`\\(${big.length} bytes\\) is larger than 1000 bytes`),
      );
    }
    // The default limit is 10 MiB: a message of exactly that size comes back whole, one octet more does not.
    const sized = (n: number) => {
      const lines = Buffer.from(`${'y'.repeat(78)}\r\n`.repeat(Math.ceil(n / 80)));
      return Buffer.concat([ORIGINAL, lines]).subarray(0, n);
    };
    const limit = 10 * 1024 * 1024;
    assert.equal(composeDsn({ ...BASE, ret: 'FULL', original: sized(limit) }).returned, 'full');
    assert.equal(composeDsn({ ...BASE, ret: 'FULL', original: sized(limit + 1) }).returned, 'headers-size');
  });

  it('an SMTPUTF8 original: message/global-delivery-status and message/global, UTF-8 addresses raw', async () => {
    const original = Buffer.from(
      'From: Jörg <jörg@origin.example>\r\nTo: ünï@dest.example\r\nSubject: grüße\r\n\r\nhallo wörld\r\n',
    );
    const result = composeDsn({
      ...BASE,
      ret: 'FULL',
      smtputf8: true,
      sender: 'jörg@origin.example',
      original,
      recipients: [
        {
          address: 'ünï@dest.example',
          orcpt: 'utf-8;ünï@dest.example',
          action: 'failed',
          status: '5.1.1',
          diagnosticCode: 'smtp; 550 5.1.1 <ünï@dest.example> unbekannt',
        },
      ],
    });
    assert.equal(result.bodyType, '8BITMIME');
    assert.equal(result.smtputf8, true, 'the To field is a UTF-8 address');
    const parsed = await parseWithPython(result.message);
    assertNoDefects(parsed);
    assert.equal(parsed.params['report-type'], 'global-delivery-status');
    assert.equal(header(parsed.headers, 'To'), 'jörg@origin.example');
    assert.equal(header(parsed.headers, 'Content-Transfer-Encoding'), '8bit');
    assert.deepEqual(
      parsed.parts.map((p) => [p.type, p.cte]),
      [
        ['text/plain', '8bit'],
        ['message/global-delivery-status', '8bit'],
        ['message/global', '8bit'],
      ],
    );
    assert.equal(part(parsed, 0).params['charset'], 'utf-8');
    const recipient = part(parsed, 1).blocks?.[1];
    assert.equal(recipient?.['Original-Recipient'], 'utf-8;ünï@dest.example');
    assert.equal(recipient?.['Final-Recipient'], 'utf-8;ünï@dest.example');
    assert.equal(recipient?.['Diagnostic-Code'], 'smtp; 550 5.1.1 <ünï@dest.example> unbekannt');
    assert.deepEqual(part(parsed, 2).message?.headers[2], ['Subject', 'grüße']);
    assert.equal(part(parsed, 2).message?.body, 'hallo wörld\r\n');

    // Headers only: message/global-headers.
    const headersOnly = await parseWithPython(buildDsn({ ...BASE, smtputf8: true, ret: 'HDRS', original }));
    assertNoDefects(headersOnly);
    assert.equal(part(headersOnly, 2).type, 'message/global-headers');
    assert.deepEqual(part(headersOnly, 2).message?.headers[2], ['Subject', 'grüße']);
  });

  it('without SMTPUTF8 the delivery-status part stays US-ASCII: RFC 6533 escapes for UTF-8 text', async () => {
    const result = composeDsn({
      ...BASE,
      ret: 'HDRS',
      recipients: [
        {
          ...BOB,
          orcpt: 'utf-8;ünï+x@dest.example',
          diagnosticCode: 'smtp; 550 5.1.1 Empfänger unbekannt',
        },
      ],
    });
    const text = result.message.toString('utf8');
    const status = text.slice(
      text.indexOf('Content-Type: message/delivery-status'),
      text.indexOf('--b0undary', text.indexOf('Reporting-MTA')),
    );
    assert.ok(isAscii(Buffer.from(status)), status);
    const parsed = await parseWithPython(result.message);
    assertNoDefects(parsed);
    assert.equal(part(parsed, 1).type, 'message/delivery-status');
    assert.equal(part(parsed, 1).cte, null);
    const recipient = part(parsed, 1).blocks?.[1];
    assert.equal(recipient?.['Original-Recipient'], 'utf-8;\\x{FC}n\\x{EF}\\x{2B}x@dest.example');
    assert.equal(recipient?.['Diagnostic-Code'], 'smtp; 550 5.1.1 Empf\\x{E4}nger unbekannt');
    // The human-readable part keeps the text as it was, in UTF-8.
    assert.equal(part(parsed, 0).cte, '8bit');
    assert.match(part(parsed, 0).text ?? '', /Empfänger unbekannt/);
    assert.equal(result.bodyType, '8BITMIME');
    assert.equal(result.smtputf8, false);
  });

  it('a hostile remote reply cannot add fields, blocks or parts; long addresses fold without breaking', async () => {
    const long = `${'a'.repeat(120)}@${'sub.'.repeat(20)}dest.example`;
    const offered = ['b0undary', '=_next'];
    const dsn = buildDsn({
      ...BASE,
      ret: 'HDRS',
      // The reply carries the first boundary offered: it is not taken.
      generate: { ...BASE.generate, boundary: () => offered.shift() ?? 'unexpected' },
      recipients: [
        {
          ...BOB,
          diagnosticCode: `smtp; 550 5.1.1 <${long}>: rejected\r\nX-Injected: yes\r\n\r\nFinal-Recipient: rfc822;evil@x\r\n--b0undary\r\nContent-Type: text/html\r\n`,
        },
        {
          ...BOB,
          address: 'carol@dest.example',
          diagnosticCode: `550-5.1.1 first line\n550 5.1.1 <x;y@dest.example> second\0`,
        },
      ],
    });
    const parsed = await parseWithPython(dsn);
    assertNoDefects(parsed);
    assert.equal(parsed.params['boundary'], '=_next');
    assert.equal(parsed.parts.length, 3);
    const blocks = part(parsed, 1).blocks ?? [];
    assert.equal(blocks.length, 3);
    assert.equal(blocks[1]?.['X-Injected'], undefined);
    assert.equal(blocks[1]?.['Final-Recipient'], 'rfc822;bob@dest.example');
    assert.equal(
      blocks[1]?.['Diagnostic-Code'],
      `smtp; 550 5.1.1 <${long}>: rejected X-Injected: yes Final-Recipient: rfc822;evil@x --b0undary Content-Type: text/html`,
    );
    assert.equal(
      blocks[2]?.['Diagnostic-Code'],
      'smtp; 550-5.1.1 first line 550 5.1.1 <x;y@dest.example> second',
    );
    // Only the word that cannot be split exceeds 78 characters; no line reaches 998.
    const lines = dsn.toString().split('\r\n');
    assert.ok(lines.every((l) => l.length < 998));
    const over = lines.filter((l) => l.length > 78);
    assert.ok(over.length > 0 && over.every((l) => l.includes(long)), JSON.stringify(over));
  });

  it('the boundary is asked again while it occurs in the content; one that always does is refused', async () => {
    const original = Buffer.from('Subject: b0undary\r\n\r\n--b0undary\r\nnot a part\r\n--b0undary--\r\n');
    const offered = ['b0undary', '=_second'];
    const dsn = buildDsn({
      ...BASE,
      ret: 'FULL',
      original,
      generate: { ...BASE.generate, boundary: () => offered.shift() ?? 'unexpected' },
    });
    assert.deepEqual(offered, []);
    const parsed = await parseWithPython(dsn);
    assertNoDefects(parsed);
    assert.equal(parsed.params['boundary'], '=_second');
    assert.equal(parsed.parts.length, 3);
    assert.equal(part(parsed, 2).message?.body, '--b0undary\r\nnot a part\r\n--b0undary--\r\n');

    assert.throws(() => buildDsn({ ...BASE, ret: 'FULL', original }), /no MIME boundary after 16 attempts/);
    assert.throws(
      () => buildDsn({ ...BASE, generate: { ...BASE.generate, boundary: () => 'has space' } }),
      /invalid MIME boundary/,
    );
    // The default generator gives a fresh boundary each time.
    const a = composeDsn({ ...BASE, generate: {} }).message.toString();
    const b = composeDsn({ ...BASE, generate: {} }).message.toString();
    const boundaryOf = (m: string) => /boundary="([^"]+)"/.exec(m)?.[1];
    assert.ok(boundaryOf(a));
    assert.notEqual(boundaryOf(a), boundaryOf(b));
    assert.notEqual(/^Message-ID: (.*)$/m.exec(a)?.[1], /^Message-ID: (.*)$/m.exec(b)?.[1]);
  });

  it('8-bit originals: 8bit transfer encoding where needed; bare LF normalised; binary comes back as headers', async () => {
    const latin1 = Buffer.concat([
      Buffer.from('Subject: caf'),
      Buffer.from([0xe9]),
      Buffer.from('\r\n\r\nna'),
      Buffer.from([0xef]),
      Buffer.from('ve\r\n'),
    ]);
    const eight = composeDsn({ ...BASE, ret: 'FULL', original: latin1 });
    assert.equal(eight.bodyType, '8BITMIME');
    assert.ok(eight.message.includes(latin1), 'returned octets unchanged');
    let parsed = await parseWithPython(eight.message);
    assertNoDefects(parsed);
    assert.equal(header(parsed.headers, 'Content-Transfer-Encoding'), '8bit');
    assert.deepEqual(
      parsed.parts.map((p) => p.cte),
      [null, null, '8bit'],
    );

    const bareLf = composeDsn({
      ...BASE,
      ret: 'FULL',
      original: Buffer.from('Subject: lf\n\nline\nline2\n'),
    });
    assertCrlfOnly(bareLf.message);
    parsed = await parseWithPython(bareLf.message);
    assert.equal(part(parsed, 2).message?.body, 'line\r\nline2\r\n');
    assert.equal(bareLf.bodyType, '7BIT');

    const binary = composeDsn({
      ...BASE,
      ret: 'FULL',
      original: Buffer.concat([
        Buffer.from('Subject: bin\r\n\r\n'),
        Buffer.from([0, 1, 2]),
        Buffer.from('\r\n'),
      ]),
    });
    assert.equal(binary.returned, 'headers-binary');
    parsed = await parseWithPython(binary.message);
    assertNoDefects(parsed);
    assert.equal(part(parsed, 2).type, 'text/rfc822-headers');
    assert.equal(part(parsed, 2).text, 'Subject: bin\r\n');
    assert.match(part(parsed, 0).text ?? '', /binary data/);

    const longLine = composeDsn({
      ...BASE,
      original: Buffer.from(`Subject: x\r\n\r\n${'z'.repeat(1200)}\r\n`),
    });
    assert.equal(longLine.returned, 'headers-binary');
  });

  it('success actions: subjects and texts for delivered, relayed and expanded', async () => {
    const cases = [
      ['delivered', 'Successful Mail Delivery Report', /was delivered to the following recipients/],
      ['relayed', 'Mail Relayed Without Further Delivery Notification', /does not report on delivery/],
      ['expanded', 'Mail Delivered to a Mailing List or Alias', /mailing lists or aliases/],
    ] as const;
    for (const [action, subject, text] of cases) {
      const parsed = await parseWithPython(
        buildDsn({
          ...BASE,
          ret: 'HDRS',
          recipients: [{ address: 'bob@dest.example', action, status: '2.0.0' }],
        }),
      );
      assertNoDefects(parsed);
      assert.equal(header(parsed.headers, 'Subject'), subject);
      assert.equal(part(parsed, 1).blocks?.[1]?.['Action'], action);
      assert.match(part(parsed, 0).text ?? '', text);
    }
  });

  it('refuses what would make a wrong report', () => {
    assert.throws(() => buildDsn({ ...BASE, recipients: [] }), /at least one recipient/);
    assert.throws(() => buildDsn({ ...BASE, sender: '' }), /null sender/);
    assert.throws(() => buildDsn({ ...BASE, recipients: [{ ...BOB, status: '550' }] }), /invalid status/);
    assert.throws(
      () => buildDsn({ ...BASE, recipients: [{ ...BOB, status: '2.0.0' }] }),
      /does not fit action failed/,
    );
    assert.throws(
      () => buildDsn({ ...BASE, recipients: [{ ...BOB, action: 'delayed', status: '5.1.1' }] }),
      /does not fit action delayed/,
    );
    assert.throws(
      () => buildDsn({ ...BASE, generate: { ...BASE.generate, messageId: () => 'no at sign' } }),
      /invalid Message-ID/,
    );
    // An expiry reported with the last temporary status is a valid failure (RFC 3464 allows 4.x.x).
    assert.doesNotThrow(() => buildDsn({ ...BASE, recipients: [{ ...BOB, status: '4.4.7' }] }));
  });
});
