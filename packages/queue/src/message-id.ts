import { randomFillSync } from 'node:crypto';

// Crockford base32: sortable, case-insensitive, no ambiguous letters.
const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

const RANDOM_OCTETS = 10;
/**
 * Random octets for this many ids, drawn from the CSPRNG in one call: a call per id (randomBytes)
 * was ~3 % of the ingress's CPU per message. Every id takes octets of its own; none are reused.
 */
const POOL_IDS = 512;
const pool = Buffer.alloc(RANDOM_OCTETS * POOL_IDS);
let used = pool.length;

/**
 * A queue id: 48 bits of milliseconds then 80 random bits, 26 characters (ULID layout), so ids
 * sort by acceptance time and never collide across ingress pods.
 */
export function newMessageId(now = Date.now()): string {
  let out = '';
  let time = now;
  for (let i = 0; i < 10; i++) {
    out = ALPHABET[time % 32] + out;
    time = Math.floor(time / 32);
  }
  if (used === pool.length) {
    randomFillSync(pool);
    used = 0;
  }
  const start = used;
  used += RANDOM_OCTETS;
  let bits = 0;
  let value = 0;
  for (let i = start; i < used; i++) {
    // At most 12 bits are not yet written out: keep those.
    value = ((value << 8) | (pool[i] as number)) & 0xfff;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      out += ALPHABET[(value >> bits) & 31];
    }
  }
  return out;
}

/**
 * The acceptance time in a queue id (its first 10 characters, milliseconds since the epoch), or
 * undefined for a string that is not one of our ids. The state tables' partition key of a message.
 */
export function messageIdTime(id: string): number | undefined {
  if (id.length !== 26) return undefined;
  let time = 0;
  for (let i = 0; i < 10; i++) {
    const v = ALPHABET.indexOf(id[i]?.toUpperCase() ?? '');
    if (v === -1) return undefined;
    time = time * 32 + v;
  }
  // 48 bits, as the ids are made (10 characters could hold 50).
  return time < 2 ** 48 ? time : undefined;
}
