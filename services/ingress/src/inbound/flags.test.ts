import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { combineChecks, type InboundCheckFlags } from './flags.ts';

const ALL: InboundCheckFlags = { spf: true, dkim: true, dmarc: true, arc: true, dmarcReject: true };
const NONE: InboundCheckFlags = { spf: false, dkim: false, dmarc: false, arc: false, dmarcReject: false };

describe('combineChecks', () => {
  it('runs a check when any recipient domain wants it', () => {
    assert.deepEqual(
      combineChecks([
        { ...NONE, spf: true },
        { ...NONE, arc: true },
      ]),
      {
        spf: true,
        dkim: false,
        dmarc: false,
        arc: true,
        dmarcReject: false,
      },
    );
  });

  it('rejects on DMARC only when every domain has dmarc and dmarcReject on', () => {
    assert.equal(combineChecks([ALL, ALL]).dmarcReject, true);
    assert.equal(combineChecks([ALL, { ...ALL, dmarcReject: false }]).dmarcReject, false);
    assert.equal(combineChecks([ALL, { ...ALL, dmarc: false }]).dmarcReject, false);
    assert.equal(combineChecks([{ ...NONE, dmarcReject: true }]).dmarcReject, false);
  });

  it('runs nothing without recipient domains', () => {
    assert.deepEqual(combineChecks([]), NONE);
  });
});
