import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { test } from 'node:test';
import { signatureHeader, verifySignature } from './signature.ts';

const secret = 'whsec-0123456789abcdef';
const body = '{"id":"k","type":"delivered","event":{"eventId":"e1"}}';
const now = Date.parse('2026-11-23T12:00:00Z');
const t = Math.floor(now / 1000);

test('a signature is HMAC-SHA256 of "<t>.<body>" in the Stripe form, and verifies', () => {
  const header = signatureHeader(secret, body, t);
  const expected = createHmac('sha256', secret).update(`${t}.${body}`).digest('hex');
  assert.equal(header, `t=${t},v1=${expected}`);
  assert.equal(verifySignature(secret, header, body, { now }), true);
  // The raw bytes verify the same as the string.
  assert.equal(verifySignature(secret, header, Buffer.from(body), { now }), true);
  // Spaces after commas, and an unknown scheme alongside, are tolerated.
  assert.equal(verifySignature(secret, `t=${t}, v0=abc, v1=${expected}`, body, { now }), true);
});

test('verifySignature refuses a tampered body, a wrong secret and a stale or future timestamp', () => {
  const header = signatureHeader(secret, body, t);
  assert.equal(verifySignature(secret, header, body.replace('delivered', 'bounced'), { now }), false);
  assert.equal(verifySignature(secret, header, `${body} `, { now }), false);
  assert.equal(verifySignature('whsec-other-secret-0000', header, body, { now }), false);
  // Default tolerance 300 s either way.
  assert.equal(verifySignature(secret, header, body, { now: now + 301_000 }), false);
  assert.equal(verifySignature(secret, header, body, { now: now - 301_000 }), false);
  assert.equal(verifySignature(secret, header, body, { now: now + 299_000 }), true);
  assert.equal(verifySignature(secret, header, body, { now: now + 30_000, toleranceS: 10 }), false);
  // The timestamp is signed: moving it forward breaks the signature.
  const moved = header.replace(`t=${t}`, `t=${t + 60}`);
  assert.equal(verifySignature(secret, moved, body, { now: now + 60_000 }), false);
});

test('verifySignature refuses malformed headers without throwing', () => {
  const v1 = signatureHeader(secret, body, t).split(',')[1] ?? '';
  for (const header of [
    undefined,
    null,
    '',
    'garbage',
    v1,
    `t=${t}`,
    `t=${t},v1=`,
    `t=${t},v1=${'0'.repeat(64)}`,
    `t=${t},v1=zz${v1.slice(5)}`,
    `t=abc,${v1}`,
    `t=${t},${v1.slice(0, -2)}`,
    `t=${t},${v1}${'x'.repeat(5000)}`,
  ]) {
    assert.equal(verifySignature(secret, header, body, { now }), false, String(header));
  }
});

test('with several v1 entries any one may match (secret rotation)', () => {
  const old = signatureHeader('whsec-old-secret-000000', body, t);
  const current = signatureHeader(secret, body, t);
  const both = `${current},${old.split(',')[1]}`;
  assert.equal(verifySignature(secret, both, body, { now }), true);
  assert.equal(verifySignature('whsec-old-secret-000000', both, body, { now }), true);
  assert.equal(verifySignature('whsec-third-secret-0000', both, body, { now }), false);
});
