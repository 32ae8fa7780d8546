import assert from 'node:assert/strict';
import { test } from 'node:test';
import { newMessageId } from './message-id.ts';

const ID = /^[0-9A-HJKMNP-TV-Z]{26}$/;

test('ids are 26 Crockford base32 characters, the first 10 the time in milliseconds', () => {
  const id = newMessageId(Date.UTC(2026, 10, 22, 18, 50));
  assert.match(id, ID);
  const alphabet = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
  let time = 0;
  for (const c of id.slice(0, 10)) time = time * 32 + alphabet.indexOf(c);
  assert.equal(time, Date.UTC(2026, 10, 22, 18, 50));
  assert.ok(newMessageId(1000) < newMessageId(1001), 'ids sort by time');
});

test('ids stay unique and well-formed across many refills of the random pool', () => {
  const now = Date.now();
  const seen = new Set<string>();
  // The same millisecond for all: only the random part tells them apart.
  for (let i = 0; i < 20_000; i++) {
    const id = newMessageId(now);
    assert.match(id, ID);
    seen.add(id);
  }
  assert.equal(seen.size, 20_000);
  // Every position of the random part takes every value: no octets left unfilled.
  for (let position = 10; position < 26; position++) {
    const values = new Set([...seen].map((id) => id[position]));
    assert.equal(values.size, 32, `position ${position}`);
  }
});

test('messageIdTime reads the time back from an id, and nothing from other strings', async () => {
  const { messageIdTime } = await import('./message-id.ts');
  for (const t of [0, 1000, Date.UTC(2026, 10, 22, 18, 50), 2 ** 48 - 1]) {
    assert.equal(messageIdTime(newMessageId(t)), t);
  }
  assert.equal(messageIdTime(newMessageId(1234).toLowerCase()), 1234);
  assert.equal(messageIdTime('short'), undefined);
  assert.equal(messageIdTime('U'.repeat(26)), undefined);
  assert.equal(messageIdTime(`${'Z'.repeat(10)}${'0'.repeat(16)}`), undefined);
});
