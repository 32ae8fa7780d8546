import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  cramMd5Response,
  createSaslExchange,
  parseSaslMechanism,
  plainResponse,
  SaslMechanism,
  type SaslStep,
  scramClient,
} from './sasl.ts';

const users: Record<string, string> = { 'app@example.org': 'secret', user: 'pencil' };
const credentials = { password: (u: string) => users[u] };
const options = { credentials, hostname: 'mx.test' };

function expectChallenge(step: SaslStep): Buffer {
  assert.equal(step.kind, 'challenge', JSON.stringify(step));
  return (step as { data: Buffer }).data;
}

test('mechanism names are case-insensitive and limited to the four we implement', () => {
  assert.equal(parseSaslMechanism('scram-sha-256'), SaslMechanism.ScramSha256);
  assert.equal(parseSaslMechanism('Plain'), SaslMechanism.Plain);
  assert.equal(parseSaslMechanism('DIGEST-MD5'), undefined);
});

test('PLAIN: initial response, challenge path, wrong password, unknown user, authzid, malformed', async () => {
  const ok = await createSaslExchange('PLAIN', options).start(plainResponse('app@example.org', 'secret'));
  assert.deepEqual(ok, { kind: 'success', identity: 'app@example.org' });
  const ex = createSaslExchange('PLAIN', options);
  assert.equal(expectChallenge(await ex.start(undefined)).length, 0);
  assert.equal((await ex.next(plainResponse('app@example.org', 'secret'))).kind, 'success');
  assert.deepEqual(
    await createSaslExchange('PLAIN', options).start(plainResponse('app@example.org', 'nope')),
    {
      kind: 'failure',
      reason: 'bad-credentials',
      identity: 'app@example.org',
    },
  );
  const unknown = await createSaslExchange('PLAIN', options).start(
    plainResponse('ghost@example.org', 'secret'),
  );
  assert.equal(unknown.kind === 'failure' && unknown.reason, 'bad-credentials');
  const other = await createSaslExchange('PLAIN', options).start(
    plainResponse('app@example.org', 'secret', 'boss'),
  );
  assert.equal(other.kind === 'failure' && other.reason, 'authzid-mismatch');
  const same = await createSaslExchange('PLAIN', options).start(
    plainResponse('app@example.org', 'secret', 'app@example.org'),
  );
  assert.equal(same.kind, 'success');
  for (const bad of ['app@example.org\0secret', '\0\0secret', 'a\0b\0c\0d']) {
    const r = await createSaslExchange('PLAIN', options).start(Buffer.from(bad));
    assert.equal(r.kind === 'failure' && r.reason, 'malformed', JSON.stringify(bad));
  }
});

test('LOGIN: username then password challenges, with or without an initial response', async () => {
  const ex = createSaslExchange('LOGIN', options);
  assert.equal(expectChallenge(await ex.start(undefined)).toString(), 'Username:');
  assert.equal(expectChallenge(await ex.next(Buffer.from('app@example.org'))).toString(), 'Password:');
  assert.deepEqual(await ex.next(Buffer.from('secret')), { kind: 'success', identity: 'app@example.org' });
  const initial = createSaslExchange('LOGIN', options);
  assert.equal(expectChallenge(await initial.start(Buffer.from('app@example.org'))).toString(), 'Password:');
  const wrong = await initial.next(Buffer.from('secreT'));
  assert.equal(wrong.kind === 'failure' && wrong.reason, 'bad-credentials');
});

test('CRAM-MD5: the challenge names our host; the HMAC is checked', async () => {
  const ex = createSaslExchange('CRAM-MD5', options);
  const text = expectChallenge(await ex.start(undefined));
  assert.match(text.toString(), /^<[0-9a-f]{16}\.\d+@mx\.test>$/);
  assert.deepEqual(await ex.next(cramMd5Response('app@example.org', 'secret', text)), {
    kind: 'success',
    identity: 'app@example.org',
  });
  const bad = createSaslExchange('CRAM-MD5', options);
  const t2 = expectChallenge(await bad.start(undefined));
  const r = await bad.next(cramMd5Response('app@example.org', 'secret', Buffer.from(`${t2.toString()}x`)));
  assert.equal(r.kind === 'failure' && r.reason, 'bad-credentials');
  const junk = createSaslExchange('CRAM-MD5', options);
  await junk.start(undefined);
  const j = await junk.next(Buffer.from('no-digest'));
  assert.equal(j.kind === 'failure' && j.reason, 'malformed');
});

test('SCRAM-SHA-256 matches the RFC 7677 §3 test vector', async () => {
  const ex = createSaslExchange('SCRAM-SHA-256', {
    ...options,
    scramSalt: Buffer.from('W22ZaJ0SNY7soEsUEjb6gQ==', 'base64'),
    scramServerNonce: '%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0',
  });
  const serverFirst = expectChallenge(await ex.start(Buffer.from('n,,n=user,r=rOprNGfwEbeRWgbNEkqO')));
  assert.equal(
    serverFirst.toString(),
    'r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096',
  );
  const done = await ex.next(
    Buffer.from(
      'c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=',
    ),
  );
  assert.equal(done.kind, 'success');
  assert.equal(
    done.kind === 'success' ? done.data?.toString() : '',
    'v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=',
  );
});

test('SCRAM-SHA-256: our client against our server, and every tampering fails', async () => {
  const run = async (password: string, tamper?: (final: string) => string) => {
    const client = scramClient('app@example.org', password);
    const ex = createSaslExchange('SCRAM-SHA-256', options);
    const serverFirst = expectChallenge(await ex.start(client.first()));
    const final = client.final(serverFirst).toString();
    const step = await ex.next(Buffer.from(tamper ? tamper(final) : final));
    return { step, client };
  };
  const good = await run('secret');
  assert.equal(good.step.kind, 'success');
  assert.ok(good.step.kind === 'success' && good.client.verify(good.step.data ?? Buffer.alloc(0)));
  assert.equal((await run('wrong')).step.kind, 'failure');
  const nonce = await run('secret', (f) => f.replace(/,r=([^,]+)/, ',r=$1x'));
  assert.equal(nonce.step.kind === 'failure' && nonce.step.reason, 'malformed');
  const binding = await run('secret', (f) => f.replace(/^c=[^,]+/, 'c=eSws'));
  assert.equal(binding.step.kind === 'failure' && binding.step.reason, 'malformed');
  const proof = await run('secret', (f) =>
    f.replace(/p=(.)/, (_m, c: string) => `p=${c === 'A' ? 'B' : 'A'}`),
  );
  assert.equal(proof.step.kind === 'failure' && proof.step.reason, 'bad-credentials');
  // Channel binding and mandatory extensions are refused as unsupported.
  for (const first of ['p=tls-unique,,n=user,r=abc', 'n,,n=user,r=abc,m=ext']) {
    const r = await createSaslExchange('SCRAM-SHA-256', options).start(Buffer.from(first));
    assert.equal(r.kind === 'failure' && r.reason, 'unsupported', first);
  }
  const unknown = scramClient('ghost', 'x');
  const ex = createSaslExchange('SCRAM-SHA-256', options);
  const sf = expectChallenge(await ex.start(unknown.first()));
  const r = await ex.next(unknown.final(sf));
  assert.equal(r.kind === 'failure' && r.reason, 'bad-credentials');
});
