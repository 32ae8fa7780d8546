import assert from 'node:assert/strict';
import { it } from 'node:test';
import { ClientInfoSchema, create, DsnReturn, EnvelopeSchema, timestampFromDate } from '@petrel/proto';
import { originalFromEnvelope } from './envelope.ts';

it('originalFromEnvelope maps the queued envelope to the DSN input', () => {
  const receivedAt = new Date('2026-11-22T10:00:00Z');
  const full = create(EnvelopeSchema, {
    sender: 'alice@origin.example',
    dsnEnvid: 'QQ314159',
    dsnReturn: DsnReturn.FULL,
    receivedAt: timestampFromDate(receivedAt),
    client: create(ClientInfoSchema, { helo: 'client.origin.example', remoteAddress: '192.0.2.1' }),
    smtputf8: true,
  });
  assert.deepEqual(originalFromEnvelope(full), {
    sender: 'alice@origin.example',
    envid: 'QQ314159',
    ret: 'FULL',
    receivedAt,
    client: { helo: 'client.origin.example', remoteAddress: '192.0.2.1' },
    smtputf8: true,
  });
  assert.equal(originalFromEnvelope(create(EnvelopeSchema, { dsnReturn: DsnReturn.HEADERS })).ret, 'HDRS');
  assert.deepEqual(originalFromEnvelope(create(EnvelopeSchema, { sender: 'a@b.example' })), {
    sender: 'a@b.example',
    envid: undefined,
    ret: undefined,
    receivedAt: undefined,
    client: undefined,
    smtputf8: false,
  });
});
