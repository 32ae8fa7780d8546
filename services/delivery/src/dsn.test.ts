import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { buildDsn, type DsnInput, shouldSendDsn } from './dsn.ts';

const run = promisify(execFile);

/**
 * Python's email package as an independent RFC 5322/MIME parser: the DSN's headers, its parts'
 * content types, and the delivery-status blocks (per-message, then per-recipient) as dicts.
 */
const PARSER = String.raw`
import sys, json, email
from email import policy
msg = email.message_from_string(sys.stdin.buffer.read().decode("utf-8"), policy=policy.compat32)
out = {"headers": {k: str(v) for k, v in msg.items()}, "type": msg.get_content_type(),
       "report_type": msg.get_param("report-type"), "defects": [str(d) for d in msg.defects], "parts": []}
for part in msg.get_payload():
    p = {"type": part.get_content_type(), "defects": [str(d) for d in part.defects]}
    if part.get_content_type() in ("message/delivery-status", "message/global-delivery-status"):
        payload = part.get_payload()
        if isinstance(payload, list) and part.get_content_type() == "message/delivery-status":
            p["blocks"] = [{k: str(v) for k, v in b.items()} for b in payload]
        else:
            # message/global-delivery-status is not known to the parser: split the raw body.
            raw = part.as_string().replace("\r\n", "\n").split("\n\n", 1)[1]
            blocks = [b for b in raw.split("\n\n") if b.strip()]
            p["blocks"] = [{k: str(v) for k, v in email.message_from_string(b).items()} for b in blocks]
    elif part.get_content_type() == "text/plain":
        p["text"] = part.get_payload()
    else:
        payload = part.get_payload()
        p["returned"] = payload[0].as_string() if isinstance(payload, list) else payload
        if isinstance(payload, list):
            p["returned_subject"] = str(payload[0].get("Subject"))
    out["parts"].append(p)
print(json.dumps(out))
`;

interface Parsed {
  headers: Record<string, string>;
  type: string;
  report_type: string;
  defects: string[];
  parts: {
    type: string;
    defects: string[];
    blocks?: Record<string, string>[];
    text?: string;
    returned?: string;
    returned_subject?: string;
  }[];
}

async function parse(dsn: Buffer): Promise<Parsed> {
  const child = run('python3', ['-c', PARSER], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  child.child.stdin?.end(dsn);
  return JSON.parse((await child).stdout) as Parsed;
}

const original = Buffer.from(
  'From: Alice <alice@origin.example>\r\nTo: bob@dest.example\r\nSubject: the original\r\nMessage-ID: <o1@origin.example>\r\n\r\nBody line one\r\n.leading dot\r\n',
);
const base: DsnInput = {
  reportingMta: 'mx.petrel.test',
  sender: 'alice@origin.example',
  original,
  arrivalDate: new Date('2026-11-22T10:00:00Z'),
  now: new Date('2026-11-22T10:05:00Z'),
  messageId: '<dsn1@mx.petrel.test>',
  boundary: 'b0undary',
  recipients: [
    {
      address: 'bob@dest.example',
      action: 'failed',
      status: '5.1.1',
      remoteMta: 'mx.dest.example',
      diagnostic: '550 5.1.1 <bob@dest.example>: no such user',
      lastAttempt: new Date('2026-11-22T10:04:00Z'),
    },
  ],
};

test('a failure DSN parses as RFC 3464 multipart/report with the remote reply in Diagnostic-Code', async () => {
  const parsed = await parse(buildDsn(base));
  assert.deepEqual(parsed.defects, []);
  assert.equal(parsed.type, 'multipart/report');
  assert.equal(parsed.report_type, 'delivery-status');
  assert.equal(parsed.headers['To'], '<alice@origin.example>');
  assert.equal(parsed.headers['From'], 'Mail Delivery System <MAILER-DAEMON@mx.petrel.test>');
  assert.equal(parsed.headers['Auto-Submitted'], 'auto-replied');
  assert.equal(parsed.headers['Subject'], 'Undelivered Mail Returned to Sender');
  assert.deepEqual(
    parsed.parts.map((p) => p.type),
    ['text/plain', 'message/delivery-status', 'text/rfc822-headers'],
  );
  const [perMessage, recipient] = parsed.parts[1]?.blocks ?? [];
  assert.equal(perMessage?.['Reporting-MTA'], 'dns; mx.petrel.test');
  assert.equal(perMessage?.['Arrival-Date'], 'Sun, 22 Nov 2026 10:00:00 +0000');
  assert.equal(recipient?.['Final-Recipient'], 'rfc822;bob@dest.example');
  assert.equal(recipient?.['Action'], 'failed');
  assert.equal(recipient?.['Status'], '5.1.1');
  assert.equal(recipient?.['Remote-MTA'], 'dns; mx.dest.example');
  assert.equal(recipient?.['Diagnostic-Code'], 'smtp; 550 5.1.1 <bob@dest.example>: no such user');
  assert.match(parsed.parts[0]?.text ?? '', /<bob@dest\.example>: 550 5\.1\.1/);
  // No RET: the header only, never the body.
  assert.match(parsed.parts[2]?.returned ?? '', /Subject: the original/);
  assert.doesNotMatch(parsed.parts[2]?.returned ?? '', /Body line one/);
});

test('RET=FULL returns the whole message; ENVID, ORCPT and several recipients are reported', async () => {
  const parsed = await parse(
    buildDsn({
      ...base,
      ret: 'FULL',
      envid: 'QQ314159',
      receivedFrom: 'dns; client.origin.example ([192.0.2.1])',
      recipients: [
        { ...(base.recipients[0] as DsnInput['recipients'][0]), orcpt: 'rfc822;Bob@Dest.Example' },
        {
          address: 'carol@dest.example',
          action: 'failed',
          status: '5.4.7',
          diagnostic: '554 5.4.7 Delivery time expired; last reply: 451 4.3.0 try later\r\nInjected: header',
        },
      ],
    }),
  );
  assert.deepEqual(
    parsed.parts.map((p) => p.type),
    ['text/plain', 'message/delivery-status', 'message/rfc822'],
  );
  assert.equal(parsed.parts[2]?.returned_subject, 'the original');
  assert.match(parsed.parts[2]?.returned ?? '', /Body line one/);
  const blocks = parsed.parts[1]?.blocks ?? [];
  assert.equal(blocks.length, 3);
  assert.equal(blocks[0]?.['Original-Envelope-Id'], 'QQ314159');
  assert.equal(blocks[0]?.['Received-From-MTA'], 'dns; client.origin.example ([192.0.2.1])');
  assert.equal(blocks[1]?.['Original-Recipient'], 'rfc822;Bob@Dest.Example');
  assert.equal(blocks[2]?.['Status'], '5.4.7');
  // A CR/LF inside a remote reply never becomes a field of its own.
  assert.equal(blocks[2]?.['Injected'], undefined);
  assert.match(blocks[2]?.['Diagnostic-Code'] ?? '', /try later Injected: header/);
});

test('a delay DSN and an SMTPUTF8 original use the RFC 6533 global types', async () => {
  const parsed = await parse(
    buildDsn({
      ...base,
      sender: 'jörg@origin.example',
      smtputf8: true,
      original: Buffer.from('From: jörg@origin.example\r\nSubject: grüße\r\n\r\nhallo\r\n'),
      recipients: [
        {
          address: 'ünï@dest.example',
          action: 'delayed',
          status: '4.4.1',
          diagnostic: 'connection refused',
          willRetryUntil: new Date('2026-11-27T10:00:00Z'),
        },
      ],
    }),
  );
  assert.equal(parsed.headers['Subject'], 'Delayed Mail (still being retried)');
  assert.deepEqual(
    parsed.parts.map((p) => p.type),
    ['text/plain', 'message/global-delivery-status', 'message/global-headers'],
  );
  const recipient = parsed.parts[1]?.blocks?.[1];
  assert.equal(recipient?.['Action'], 'delayed');
  assert.equal(recipient?.['Final-Recipient'], 'utf-8;ünï@dest.example');
  assert.equal(recipient?.['Will-Retry-Until'], 'Fri, 27 Nov 2026 10:00:00 +0000');
});

test('large originals come back as headers only, even with RET=FULL; a boundary clash is refused', async () => {
  const big = Buffer.concat([original, Buffer.alloc(2000, 'x'), Buffer.from('\r\n')]);
  const parsed = await parse(buildDsn({ ...base, ret: 'FULL', original: big, maxReturnSize: 1000 }));
  assert.equal(parsed.parts[2]?.type, 'text/rfc822-headers');
  assert.throws(() => buildDsn({ ...base, original: Buffer.from('Subject: b0undary\r\n\r\n') }), /boundary/);
  assert.throws(() => buildDsn({ ...base, recipients: [] }), /at least one recipient/);
});

test('when a DSN is sent: never to the null sender or for a bounce; NOTIFY decides otherwise', () => {
  const plain = Buffer.from('Subject: hi\r\n\r\nx\r\n');
  assert.equal(shouldSendDsn('', [], 'failed', plain), false);
  assert.equal(shouldSendDsn('a@b.example', [], 'failed', plain), true);
  assert.equal(shouldSendDsn('a@b.example', [], 'delayed', plain), false);
  assert.equal(shouldSendDsn('a@b.example', [], 'delayed', plain, true), true);
  assert.equal(shouldSendDsn('a@b.example', ['NEVER'], 'failed', plain), false);
  assert.equal(shouldSendDsn('a@b.example', ['DELAY'], 'failed', plain), false);
  assert.equal(shouldSendDsn('a@b.example', ['DELAY'], 'delayed', plain), true);
  assert.equal(shouldSendDsn('a@b.example', ['SUCCESS', 'FAILURE'], 'delivered', plain), true);
  assert.equal(shouldSendDsn('a@b.example', [], 'delivered', plain), false);
  const bounce = buildDsn(base);
  assert.equal(shouldSendDsn('a@b.example', [], 'failed', bounce), false, 'a DSN about a DSN');
});
