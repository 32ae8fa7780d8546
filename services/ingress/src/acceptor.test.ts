import assert from 'node:assert/strict';
import { test } from 'node:test';
import { EnvelopeSchema, fromBinary, toBinary } from '@petrel/proto';
import {
  type Mailbox,
  parseMailbox,
  parseMailParameters,
  parseRecipientParameters,
  type SessionInfo,
  type Transaction,
} from '@petrel/smtp';
import { createLogger } from '@petrel/telemetry';
import { Acceptor } from './acceptor.ts';

function mailbox(text: string): Mailbox {
  const m = parseMailbox(text, { utf8: true });
  assert.ok(m, text);
  return m;
}

function transaction(
  mailParams: [string, string | undefined][],
  recipients: [string, [string, string | undefined][]][],
): Transaction {
  const params = new Map(mailParams);
  const parsed = parseMailParameters(params, { maxMessageSize: 10_000_000, tls: true });
  assert.ok(parsed.ok);
  return {
    sender: mailbox('sender@example.org'),
    mailParams: params,
    parameters: parsed.value,
    recipients: recipients.map(([address, p]) => {
      const rcpt = parseRecipientParameters(new Map(p), true);
      assert.ok(rcpt.ok);
      return { mailbox: mailbox(address), params: new Map(p), dsn: rcpt.value };
    }),
    bodyType: parsed.value.body,
    smtputf8: parsed.value.smtputf8,
    transfer: 'DATA',
  };
}

const session: SessionInfo = {
  id: 's1',
  mode: 'submission',
  remoteAddress: '192.0.2.9',
  remotePort: 40000,
  localAddress: '127.0.0.1',
  localPort: 587,
  helo: 'client.example',
  esmtp: true,
  tls: { protocol: 'TLSv1.3', cipher: 'TLS_AES_256_GCM_SHA384', servername: undefined },
  auth: { identity: 'alice', mechanism: 'PLAIN' },
};

test('envelopes are complete messages, with every field and message type', () => {
  const acceptor = new Acceptor({ write: async () => {} }, createLogger('test', { level: 'silent' }));
  const cases: {
    tx: Transaction;
    session: SessionInfo;
    trace?: { traceparent: string; tracestate: string };
  }[] = [
    {
      tx: transaction([], [['a@one.example', []]]),
      session: { ...session, tls: undefined, auth: undefined },
    },
    {
      tx: transaction(
        [
          ['BODY', '8BITMIME'],
          ['SMTPUTF8', undefined],
          ['RET', 'HDRS'],
          ['ENVID', 'env1'],
          ['REQUIRETLS', undefined],
          ['BY', '120;RT'],
        ],
        [
          ['a@one.example', [['NOTIFY', 'SUCCESS,DELAY']]],
          ['b@two.example', [['ORCPT', 'rfc822;b@two.example']]],
          ['c@one.example', []],
        ],
      ),
      session,
      trace: { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01', tracestate: 'k=v' },
    },
    { tx: transaction([['BY', '600;N']], [['d@three.example', []]]), session },
  ];
  let compared = 0;
  for (const { tx, session: s, trace } of cases) {
    const envelopes = acceptor.envelopes('m1', s, tx, 1234, {
      senderDomain: 'example.org',
      ...(trace === undefined ? {} : { trace }),
    });
    const domains = new Set(tx.recipients.map((r) => r.mailbox.domain));
    assert.equal(envelopes.length, domains.size);
    for (const e of envelopes) {
      // Every field there, with its message type: what protobuf-es decodes from its own encoding.
      assert.deepEqual(e, fromBinary(EnvelopeSchema, toBinary(EnvelopeSchema, e)));
      assert.equal(e.messageId, 'm1');
      assert.equal(e.size, 1234n);
      assert.equal(e.client?.authIdentity, s.auth?.identity ?? '');
      assert.deepEqual(e.trace?.traceparent, trace?.traceparent);
      compared++;
    }
  }
  assert.equal(compared, 4);
  const [deliverBy] = acceptor.envelopes('m2', session, cases[1]?.tx as Transaction, 1);
  assert.equal(deliverBy?.deliverByMode, 1);
  assert.equal(deliverBy?.deliverByTrace, true);
  assert.equal(Number(deliverBy?.deliverBy?.seconds) - Number(deliverBy?.receivedAt?.seconds), 120);
  assert.deepEqual(deliverBy?.recipients[0]?.notify, ['SUCCESS', 'DELAY']);
});
