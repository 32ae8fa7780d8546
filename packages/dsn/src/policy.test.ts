import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildDsn, type DsnAction } from './build.ts';
import { dsnEnvelopeSender, isDeliveryReport, shouldSendDsn } from './policy.ts';

const PLAIN = Buffer.from('From: Alice <alice@origin.example>\r\nSubject: hi\r\n\r\nx\r\n');
const SENDER = 'alice@origin.example';

describe('shouldSendDsn', () => {
  it('DSNs are sent from the null reverse-path', () => {
    assert.equal(dsnEnvelopeSender, '');
  });

  it('follows NOTIFY for every action (RFC 3461 §4.1)', () => {
    // [notify, action, delaysWithoutNotify, expected]
    const matrix: [string[] | undefined, DsnAction, boolean, boolean][] = [
      [undefined, 'failed', false, true],
      [undefined, 'delayed', false, false],
      [undefined, 'delayed', true, true],
      [undefined, 'delivered', false, false],
      [undefined, 'delivered', true, false],
      [undefined, 'relayed', false, false],
      [undefined, 'expanded', false, false],
      [[], 'failed', false, true],
      [[], 'delayed', true, true],
      [['NEVER'], 'failed', false, false],
      [['NEVER'], 'delayed', true, false],
      [['NEVER'], 'delivered', false, false],
      // NEVER wins over anything listed with it (the ingress refuses the combination).
      [['NEVER', 'FAILURE'], 'failed', false, false],
      [['FAILURE'], 'failed', false, true],
      [['FAILURE'], 'delayed', true, false],
      [['FAILURE'], 'delivered', false, false],
      [['DELAY'], 'failed', false, false],
      [['DELAY'], 'delayed', false, true],
      [['SUCCESS'], 'delivered', false, true],
      [['SUCCESS'], 'relayed', false, true],
      [['SUCCESS'], 'expanded', false, true],
      [['SUCCESS'], 'failed', false, false],
      [['SUCCESS', 'FAILURE'], 'failed', false, true],
      [['SUCCESS', 'FAILURE'], 'delayed', true, false],
      [['FAILURE', 'DELAY'], 'delayed', false, true],
      [['failure', ' delay '], 'delayed', false, true],
    ];
    for (const [notify, action, delaysWithoutNotify, expected] of matrix) {
      assert.equal(
        shouldSendDsn(SENDER, PLAIN, { action, notify, delaysWithoutNotify }),
        expected,
        `NOTIFY=${notify?.join(',') ?? '(none)'} ${action} delaysWithoutNotify=${delaysWithoutNotify}`,
      );
    }
  });

  it('never for the null sender, whatever NOTIFY says (RFC 3461 §6.2)', () => {
    for (const sender of ['', '<>', ' ']) {
      assert.equal(shouldSendDsn(sender, PLAIN, { action: 'failed' }), false, JSON.stringify(sender));
      assert.equal(shouldSendDsn(sender, PLAIN, { action: 'delivered', notify: ['SUCCESS'] }), false);
    }
  });

  it('never for a message that is itself a delivery report: no bounce loops', () => {
    const dsn = buildDsn({
      reportingMta: 'mx.other.example',
      sender: SENDER,
      original: PLAIN,
      recipients: [{ address: 'bob@dest.example', action: 'failed', status: '5.1.1' }],
    });
    assert.equal(shouldSendDsn(SENDER, dsn, { action: 'failed' }), false, 'our own DSN');
    assert.equal(shouldSendDsn(SENDER, dsn, { action: 'failed', notify: ['FAILURE'] }), false);
    const global = buildDsn({
      reportingMta: 'mx.other.example',
      sender: SENDER,
      smtputf8: true,
      original: PLAIN,
      recipients: [{ address: 'bob@dest.example', action: 'delayed', status: '4.4.1' }],
    });
    assert.equal(shouldSendDsn(SENDER, global, { action: 'failed' }), false, 'a global DSN');
    // The same message without its DSN markers is sent a DSN: the markers are what decides.
    assert.equal(shouldSendDsn(SENDER, PLAIN, { action: 'failed' }), true);
  });

  it('isDeliveryReport: DSNs, automatic reports and mailer-daemon mail, not other automatic mail', () => {
    const cases: [string, boolean][] = [
      ['Content-Type: multipart/report; report-type=delivery-status; boundary="x"', true],
      ['Content-Type: Multipart/Report;\r\n boundary=x;\r\n report-type="Delivery-Status"', true],
      ['Content-Type: multipart/report; report-type=global-delivery-status; boundary=x', true],
      // An MDN or a feedback report is a report, but only an automatic one is never answered.
      ['Content-Type: multipart/report; report-type=disposition-notification; boundary=x', false],
      [
        'Auto-Submitted: auto-replied\r\nContent-Type: multipart/report; report-type=disposition-notification; boundary=x',
        true,
      ],
      ['From: Mail Delivery System <MAILER-DAEMON@mx.example>', true],
      ['From: mailer-daemon@mx.example', true],
      ['From: Postmaster <postmaster@mx.example>\r\nAuto-Submitted: auto-generated', true],
      ['From: Postmaster <postmaster@mx.example>', false],
      ['From: postmaster@mx.example\r\nAuto-Submitted: no', false],
      // A vacation reply from a person is ordinary mail for the MTA: its sender hears of failures.
      ['From: Bob <bob@dest.example>\r\nAuto-Submitted: auto-replied (vacation)', false],
      ['From: Bob <bob@dest.example>\r\nSubject: delivery-status report-type=delivery-status', false],
      ['Content-Type: text/plain; report-type=delivery-status', false],
      ['Content-Type: multipart/mixed; boundary=x', false],
    ];
    for (const [head, expected] of cases) {
      const message = `${head}\r\n\r\nbody\r\nContent-Type: multipart/report; report-type=delivery-status\r\n`;
      assert.equal(isDeliveryReport(Buffer.from(message)), expected, head);
      assert.equal(isDeliveryReport(message), expected, `${head} (string)`);
      assert.equal(shouldSendDsn(SENDER, message, { action: 'failed' }), !expected, head);
    }
  });

  it('looks at the header section only', () => {
    const body = 'Subject: forwarded bounce\r\n\r\nFrom: MAILER-DAEMON@mx.example\r\n';
    assert.equal(isDeliveryReport(body), false);
    const lf = 'Subject: lf\n\nContent-Type: multipart/report; report-type=delivery-status\n';
    assert.equal(isDeliveryReport(lf), false);
    assert.equal(isDeliveryReport('Content-Type: multipart/report; report-type=delivery-status\n\nx'), true);
  });
});
