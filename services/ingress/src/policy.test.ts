import assert from 'node:assert/strict';
import { BlockList } from 'node:net';
import { test } from 'node:test';
import { DomainIndex } from '@petrel/config';
import { runtimeConfigOf, runtimeDomain } from '@petrel/config/testing';
import { type Mailbox, parsePathArgument, type Reply } from '@petrel/smtp';
import { RelayPolicy } from './policy.ts';

const index = new DomainIndex(
  runtimeConfigOf([
    runtimeDomain('example.org', {
      source: 'default/example-org',
      users: [
        { name: 'app@example.org', password: 'pw', allowedSenders: ['*@example.org', 'alerts@Example.NET'] },
        { name: 'bot', password: 'pw', allowedSenders: ['bot@example.org'] },
      ],
    }),
  ]),
);
const policy = new RelayPolicy(() => index);
const anonymous = { auth: undefined };
const app = { auth: { identity: 'app@example.org' } };
const bot = { auth: { identity: 'bot' } };

function mailbox(path: string): Mailbox {
  const parsed = parsePathArgument(path, false, { utf8: true });
  assert.ok(parsed.ok && parsed.value.mailbox, `${path} should parse`);
  return parsed.value.mailbox;
}

function assertRefused(verdict: Reply | undefined, code: number, enhanced: string, text: RegExp): void {
  assert.ok(verdict, 'expected a refusal');
  assert.equal(verdict.code, code);
  assert.equal(verdict.enhanced, enhanced);
  assert.match(verdict.lines.join(' '), text);
}

test('unauthenticated clients may send to managed domains only, case-insensitively', () => {
  assert.equal(policy.checkRecipient(anonymous, { mailbox: mailbox('<user@example.org>') }), undefined);
  assert.equal(policy.checkRecipient(anonymous, { mailbox: mailbox('<User@EXAMPLE.ORG>') }), undefined);
  assert.equal(policy.checkRecipient({}, { mailbox: mailbox('<user@example.org>') }), undefined);
  for (const path of ['<user@example.net>', '<user@sub.example.org>', '<user@example.org.evil.example>']) {
    assertRefused(
      policy.checkRecipient(anonymous, { mailbox: mailbox(path) }),
      550,
      '5.7.1',
      /Relaying denied/,
    );
  }
});

test('a look-alike IDN domain is simply not managed', () => {
  const lookalike = mailbox('<user@ex\u0430mple.org>');
  assert.notEqual(lookalike.domain, 'example.org');
  assertRefused(policy.checkRecipient(anonymous, { mailbox: lookalike }), 550, '5.7.1', /Relaying denied/);
});

test('authenticated users may relay anywhere', () => {
  assert.equal(policy.checkRecipient(app, { mailbox: mailbox('<someone@example.net>') }), undefined);
});

test('routing forms are refused with 550 5.7.1, also for authenticated users', () => {
  for (const path of [
    '<@relay.example:user@example.org>',
    '<user@[192.0.2.1]>',
    '<user@[IPv6:2001:db8::1]>',
    '<user@example.org.>',
    '<user%other.example@example.org>',
    '<other.example!user@example.org>',
    '<"user@other.example"@example.org>',
    // Full-width letters, which IDNA would fold onto example.org.
    '<user@\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45.org>',
  ]) {
    for (const session of [anonymous, app]) {
      const verdict = policy.checkRecipient(session, { mailbox: mailbox(path) });
      assertRefused(verdict, 550, '5.7.1', /Address form not accepted/);
    }
  }
});

test('unauthenticated senders are not restricted', () => {
  assert.equal(policy.checkSender(anonymous, mailbox('<anyone@anywhere.example>')), undefined);
  assert.equal(policy.checkSender(anonymous, undefined), undefined);
});

test('authenticated users may send only from their allowed senders', () => {
  assert.equal(policy.checkSender(app, mailbox('<anyone@example.org>')), undefined);
  assert.equal(policy.checkSender(app, mailbox('<anyone@EXAMPLE.org>')), undefined);
  assert.equal(policy.checkSender(app, mailbox('<alerts@example.net>')), undefined);
  assert.equal(policy.checkSender(bot, mailbox('<bot@Example.Org>')), undefined);
  const refusals: [{ auth: { identity: string } }, string | undefined][] = [
    [app, '<anyone@example.net>'],
    [app, '<Alerts@example.net>'],
    [app, '<anyone@sub.example.org>'],
    [app, '<anyone@example.org.>'],
    [app, '<@relay.example:anyone@example.org>'],
    [bot, '<Bot@example.org>'],
    [bot, '<other@example.org>'],
    [app, undefined],
    [{ auth: { identity: 'ghost@example.org' } }, '<ghost@example.org>'],
  ];
  for (const [session, path] of refusals) {
    const verdict = policy.checkSender(session, path === undefined ? undefined : mailbox(path));
    assertRefused(verdict, 553, '5.7.1', /Sender address not allowed for this user/);
  }
});

test('a configured relay network may relay anywhere without AUTH, from any sender; nobody else', () => {
  const networks = new BlockList();
  networks.addSubnet('10.1.0.0', 16, 'ipv4');
  networks.addSubnet('fd00::', 8, 'ipv6');
  const relaying = new RelayPolicy(() => index, networks);
  for (const remoteAddress of ['10.1.2.3', '::ffff:10.1.200.1', 'fd00::25']) {
    const session = { remoteAddress };
    assert.ok(relaying.trusted(session), remoteAddress);
    assert.equal(relaying.checkRecipient(session, { mailbox: mailbox('<someone@example.net>') }), undefined);
    assert.equal(relaying.checkSender(session, mailbox('<anyone@anywhere.example>')), undefined);
    assertRefused(
      relaying.checkRecipient(session, { mailbox: mailbox('<user%other.example@example.org>') }),
      550,
      '5.7.1',
      /Address form not accepted/,
    );
  }
  for (const remoteAddress of ['10.2.0.1', '127.0.0.1', '::1', '']) {
    const session = { remoteAddress };
    assert.equal(relaying.trusted(session), false, remoteAddress);
    assertRefused(
      relaying.checkRecipient(session, { mailbox: mailbox('<someone@example.net>') }),
      550,
      '5.7.1',
      /Relaying denied/,
    );
  }
  // Without the setting, loopback is not trusted either.
  assert.equal(policy.trusted({ remoteAddress: '127.0.0.1' }), false);
  // An authenticated client in a relay network is held to its allowed senders all the same.
  const user = { auth: { identity: 'bot' }, remoteAddress: '10.1.2.3' };
  assert.equal(relaying.trusted(user), false);
  assertRefused(relaying.checkSender(user, mailbox('<other@example.org>')), 553, '5.7.1', /not allowed/);
});
