import assert from 'node:assert/strict';
import { DnsError } from '../src/errors.ts';

/** The DnsError a lookup rejects with; fails the test when it resolves or rejects with anything else. */
export async function failure(p: Promise<unknown>): Promise<DnsError> {
  try {
    await p;
  } catch (error) {
    assert.ok(error instanceof DnsError, `expected DnsError, got ${String(error)}`);
    return error;
  }
  assert.fail('expected a DNS failure');
}
