import assert from 'node:assert/strict';
import { createHash, createHmac, pbkdf2Sync } from 'node:crypto';
import { describe, test } from 'node:test';
import {
  cramMd5Response,
  createSaslExchange,
  parseSaslMechanism,
  plainResponse,
  SaslError,
  SaslErrorCode,
  SaslMechanism,
  type SaslOptions,
  type SaslStep,
  saslPrep,
  scramClient,
} from './sasl.ts';

const users: Record<string, string> = {
  'app@example.org': 'secret',
  user: 'pencil',
  'spaced@example.org': 'pass word',
  'bell@example.org': 'a\u0007b',
};
const options: SaslOptions = {
  credentials: { password: (u: string) => users[u] },
  hostname: 'mx.test',
  scramSaltKey: Buffer.from('test salt key'),
};

function challengeOf(step: SaslStep): Buffer {
  assert.equal(step.kind, 'challenge', JSON.stringify(step));
  return (step as { data: Buffer }).data;
}

function assertFailure(step: SaslStep, reason: string, detail?: string): void {
  assert.equal(step.kind, 'failure', JSON.stringify(step));
  if (step.kind !== 'failure') return;
  assert.equal(step.reason, reason, JSON.stringify(step));
  if (detail !== undefined) assert.equal(step.detail, detail, JSON.stringify(step));
}

const start = (mechanism: SaslMechanism, initial: Buffer | string | undefined, opts = options) =>
  createSaslExchange(mechanism, opts).start(typeof initial === 'string' ? Buffer.from(initial) : initial);

test('mechanism names are case-insensitive and limited to the four we implement', () => {
  assert.equal(parseSaslMechanism('scram-sha-256'), SaslMechanism.ScramSha256);
  assert.equal(parseSaslMechanism('Plain'), SaslMechanism.Plain);
  assert.equal(parseSaslMechanism('login'), SaslMechanism.Login);
  assert.equal(parseSaslMechanism('cram-md5'), SaslMechanism.CramMd5);
  assert.equal(parseSaslMechanism('DIGEST-MD5'), undefined);
  assert.equal(parseSaslMechanism('SCRAM-SHA-256-PLUS'), undefined);
});

describe('PLAIN (RFC 4616)', () => {
  test('initial response and the empty-challenge path both succeed with the identity', async () => {
    assert.deepEqual(await start('PLAIN', plainResponse('app@example.org', 'secret')), {
      kind: 'success',
      identity: 'app@example.org',
    });
    const ex = createSaslExchange('PLAIN', options);
    assert.equal(challengeOf(await ex.start(undefined)).length, 0);
    assert.deepEqual(await ex.next(plainResponse('app@example.org', 'secret')), {
      kind: 'success',
      identity: 'app@example.org',
    });
  });

  test('wrong password and unknown user fail alike, naming the claimed user', async () => {
    assert.deepEqual(await start('PLAIN', plainResponse('app@example.org', 'secreT')), {
      kind: 'failure',
      reason: 'bad-credentials',
      identity: 'app@example.org',
    });
    assert.deepEqual(await start('PLAIN', plainResponse('ghost@example.org', 'secret')), {
      kind: 'failure',
      reason: 'bad-credentials',
      identity: 'ghost@example.org',
    });
    // The dummy password an unknown user is checked against is not the empty string.
    assertFailure(await start('PLAIN', plainResponse('ghost@example.org', 'x')), 'bad-credentials');
  });

  test('authzid must be empty or the authcid', async () => {
    assertFailure(
      await start('PLAIN', plainResponse('app@example.org', 'secret', 'boss@example.org')),
      'authzid-mismatch',
    );
    assert.equal(
      (await start('PLAIN', plainResponse('app@example.org', 'secret', 'app@example.org'))).kind,
      'success',
    );
  });

  test('NUL structure, empty fields, "=" and bad UTF-8 are malformed', async () => {
    const cases: (string | Buffer)[] = [
      'app@example.org\0secret', // one NUL
      'app@example.org secret', // none
      '\0app@example.org\0secret\0', // three
      '\0\0secret', // empty authcid
      '\0app@example.org\0', // empty password
      '\0app\r\n@example.org\0secret', // control characters in the identity
      Buffer.alloc(0), // "AUTH PLAIN =" (RFC 4954 §4 empty initial response)
      Buffer.concat([Buffer.from('\0app@example.org\0'), Buffer.from([0xc3, 0x28])]),
      `\0${'a'.repeat(600)}\0secret`,
    ];
    for (const bad of cases) {
      assertFailure(await start('PLAIN', bad), 'malformed');
    }
  });

  test('passwords are compared after SASLprep (RFC 4013), like SCRAM does', async () => {
    // U+00A0 NO-BREAK SPACE maps to SPACE; U+00AD SOFT HYPHEN maps to nothing.
    assert.equal(
      (await start('PLAIN', plainResponse('spaced@example.org', 'pass\u00a0word'))).kind,
      'success',
    );
    assert.equal(
      (await start('PLAIN', plainResponse('spaced@example.org', 'pass w\u00adord'))).kind,
      'success',
    );
    // A password SASLprep prohibits is compared raw, so it still works exactly.
    assert.equal((await start('PLAIN', plainResponse('bell@example.org', 'a\u0007b'))).kind, 'success');
    assertFailure(await start('PLAIN', plainResponse('bell@example.org', 'ab')), 'bad-credentials');
  });
});

describe('LOGIN (draft-murchison-sasl-login)', () => {
  test('user name then password challenges, with or without an initial response', async () => {
    const ex = createSaslExchange('LOGIN', options);
    assert.equal(challengeOf(await ex.start(undefined)).toString(), 'Username:');
    assert.equal(challengeOf(await ex.next(Buffer.from('app@example.org'))).toString(), 'Password:');
    assert.deepEqual(await ex.next(Buffer.from('secret')), { kind: 'success', identity: 'app@example.org' });
    const initial = createSaslExchange('LOGIN', options);
    assert.equal(challengeOf(await initial.start(Buffer.from('app@example.org'))).toString(), 'Password:');
    assert.equal((await initial.next(Buffer.from('secret'))).kind, 'success');
  });

  test('wrong password and unknown user fail with bad-credentials', async () => {
    for (const [user, password] of [
      ['app@example.org', 'secreT'],
      ['ghost@example.org', 'secret'],
    ] as const) {
      const ex = createSaslExchange('LOGIN', options);
      challengeOf(await ex.start(Buffer.from(user)));
      assert.deepEqual(await ex.next(Buffer.from(password)), {
        kind: 'failure',
        reason: 'bad-credentials',
        identity: user,
      });
    }
  });

  test('empty or control-character user names and empty passwords are malformed', async () => {
    assertFailure(await start('LOGIN', Buffer.alloc(0)), 'malformed');
    assertFailure(await start('LOGIN', 'app\0@example.org'), 'malformed');
    const ex = createSaslExchange('LOGIN', options);
    challengeOf(await ex.start(Buffer.from('app@example.org')));
    assertFailure(await ex.next(Buffer.alloc(0)), 'malformed');
  });
});

describe('CRAM-MD5 (RFC 2195)', () => {
  const fixed: SaslOptions = { ...options, random: (n) => Buffer.alloc(n, 0xab) };

  test('the challenge is <random.time@host>; the right HMAC succeeds', async () => {
    const ex = createSaslExchange('CRAM-MD5', fixed);
    const text = challengeOf(await ex.start(undefined));
    assert.match(text.toString(), /^<abababababababab\.\d+@mx\.test>$/);
    assert.deepEqual(await ex.next(cramMd5Response('app@example.org', 'secret', text)), {
      kind: 'success',
      identity: 'app@example.org',
    });
  });

  test('wrong password, unknown user and an HMAC over another challenge fail', async () => {
    for (const [user, password, suffix] of [
      ['app@example.org', 'secreT', ''],
      ['ghost@example.org', 'secret', ''],
      ['app@example.org', 'secret', 'x'],
    ] as const) {
      const ex = createSaslExchange('CRAM-MD5', options);
      const text = challengeOf(await ex.start(undefined));
      const response = cramMd5Response(user, password, Buffer.from(`${text.toString()}${suffix}`));
      assertFailure(await ex.next(response), 'bad-credentials');
    }
  });

  test('an initial response, also "=", is malformed (RFC 4954 §4); so is a response without digest', async () => {
    assertFailure(await start('CRAM-MD5', Buffer.alloc(0)), 'malformed', 'initial-response');
    assertFailure(await start('CRAM-MD5', 'app@example.org'), 'malformed');
    for (const bad of ['no-digest', `app@example.org ${'A'.repeat(32)}`, ` ${'a'.repeat(32)}`]) {
      const ex = createSaslExchange('CRAM-MD5', options);
      await ex.start(undefined);
      assertFailure(await ex.next(Buffer.from(bad)), 'malformed');
    }
  });
});

/** An independent SCRAM-SHA-256 client computation (RFC 5802 §3), for messages our client never sends. */
function scramFinal(
  password: string,
  bare: string,
  serverFirst: string,
  gs2Header: string,
  extensions = '',
): string {
  const params = /r=([^,]+),s=([^,]+),i=(\d+)/.exec(serverFirst);
  assert.ok(params);
  const salted = pbkdf2Sync(
    password,
    Buffer.from(params[2] as string, 'base64'),
    Number(params[3]),
    32,
    'sha256',
  );
  const withoutProof = `c=${Buffer.from(gs2Header).toString('base64')},r=${params[1]}${extensions}`;
  const authMessage = `${bare},${serverFirst},${withoutProof}`;
  const clientKey = createHmac('sha256', salted).update('Client Key').digest();
  const storedKey = createHash('sha256').update(clientKey).digest();
  const signature = createHmac('sha256', storedKey).update(authMessage).digest();
  const proof = Buffer.from(clientKey.map((b, i) => b ^ (signature[i] as number)));
  return `${withoutProof},p=${proof.toString('base64')}`;
}

describe('SCRAM-SHA-256 (RFC 5802, RFC 7677)', () => {
  const vector = {
    salt: Buffer.from('W22ZaJ0SNY7soEsUEjb6gQ==', 'base64'),
    serverNonce: '%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0',
    clientFirst: 'n,,n=user,r=rOprNGfwEbeRWgbNEkqO',
    serverFirst: 'r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096',
    clientFinal:
      'c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=',
    serverFinal: 'v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=',
  };
  const vectorOptions: SaslOptions = {
    ...options,
    scramSalt: vector.salt,
    scramServerNonce: vector.serverNonce,
  };

  test('the server reproduces the RFC 7677 §3 exchange', async () => {
    const ex = createSaslExchange('SCRAM-SHA-256', vectorOptions);
    assert.equal(challengeOf(await ex.start(Buffer.from(vector.clientFirst))).toString(), vector.serverFirst);
    const done = await ex.next(Buffer.from(vector.clientFinal));
    assert.equal(done.kind, 'success');
    assert.equal(done.kind === 'success' && done.identity, 'user');
    assert.equal(done.kind === 'success' && done.data?.toString(), vector.serverFinal);
  });

  test('our client reproduces the RFC 7677 §3 exchange', async () => {
    const client = scramClient('user', 'pencil', { nonce: 'rOprNGfwEbeRWgbNEkqO' });
    assert.equal(client.first().toString(), vector.clientFirst);
    assert.equal((await client.final(Buffer.from(vector.serverFirst))).toString(), vector.clientFinal);
    assert.equal(client.verify(Buffer.from(vector.serverFinal)), true);
    assert.equal(client.verify(Buffer.from('v=7rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=')), false);
    assert.equal(client.verify(Buffer.from('e=invalid-proof')), false);
  });

  /** Our client against our server, with an optional change to the client-final message. */
  async function run(user: string, password: string, tamper?: (final: string) => string) {
    const client = scramClient(user, password);
    const ex = createSaslExchange('SCRAM-SHA-256', options);
    const serverFirst = challengeOf(await ex.start(client.first()));
    const final = (await client.final(serverFirst)).toString();
    return { step: await ex.next(Buffer.from(tamper ? tamper(final) : final)), client, serverFirst, ex };
  }

  test('our client and server agree; the client verifies the server signature', async () => {
    const { step, client, ex } = await run('app@example.org', 'secret');
    assert.equal(step.kind, 'success');
    assert.equal(step.kind === 'success' && step.identity, 'app@example.org');
    assert.ok(step.kind === 'success' && client.verify(step.data ?? Buffer.alloc(0)));
    // The exchange is over: nothing more is accepted.
    assertFailure(await ex.next(Buffer.alloc(0)), 'malformed', 'out-of-order');
  });

  test('an empty challenge asks for the client-first message when there is no initial response', async () => {
    const client = scramClient('app@example.org', 'secret');
    const ex = createSaslExchange('SCRAM-SHA-256', options);
    assert.equal(challengeOf(await ex.start(undefined)).length, 0);
    const serverFirst = challengeOf(await ex.next(client.first()));
    assert.equal((await ex.next(await client.final(serverFirst))).kind, 'success');
  });

  test('wrong password, unknown user and a tampered proof fail with bad-credentials', async () => {
    assertFailure((await run('app@example.org', 'secreT')).step, 'bad-credentials', 'invalid-proof');
    assertFailure((await run('ghost@example.org', 'secret')).step, 'bad-credentials', 'invalid-proof');
    const tampered = await run('app@example.org', 'secret', (f) =>
      f.replace(/p=(.)/, (_m, c: string) => `p=${c === 'A' ? 'B' : 'A'}`),
    );
    assertFailure(tampered.step, 'bad-credentials', 'invalid-proof');
  });

  test('the salt is stable per user and unknown users look the same as known ones', async () => {
    const saltOf = async (user: string) =>
      /,s=([^,]+),i=4096$/.exec(
        challengeOf(await start('SCRAM-SHA-256', `n,,n=${user},r=abc`)).toString(),
      )?.[1];
    const known = await saltOf('app@example.org');
    const ghost = await saltOf('ghost@example.org');
    assert.ok(known !== undefined && ghost !== undefined);
    assert.equal(await saltOf('app@example.org'), known);
    assert.equal(await saltOf('ghost@example.org'), ghost);
    assert.notEqual(known, ghost);
    assert.equal(Buffer.from(known, 'base64').length, Buffer.from(ghost, 'base64').length);
  });

  test('an unknown user costs the same PBKDF2 work as a known one', async () => {
    // Without the dummy derivation an unknown user would answer in microseconds.
    const heavy: SaslOptions = { ...options, scramIterations: 200_000 };
    const time = async (user: string) => {
      const begin = process.hrtime.bigint();
      challengeOf(await start('SCRAM-SHA-256', `n,,n=${user},r=abc`, heavy));
      return Number(process.hrtime.bigint() - begin) / 1e6;
    };
    const known: number[] = [];
    const unknown: number[] = [];
    for (let i = 0; i < 5; i++) {
      known.push(await time('app@example.org'));
      unknown.push(await time('ghost@example.org'));
    }
    // Medians of 5 with a wide factor: a stall or two on a busy host moves neither much, while the
    // missing derivation (microseconds against tens of ms) still fails by orders of magnitude.
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;
    assert.ok(median(unknown) > median(known) * 0.25, `known ${known}, unknown ${unknown}`);
  });

  test('a wrong nonce, a wrong channel-binding attribute or a bad proof encoding are malformed', async () => {
    const cases: [(f: string) => string, string][] = [
      [(f) => f.replace(/,r=([^,]+)/, ',r=$1x'), 'nonce-mismatch'],
      [(f) => f.replace(/,r=([^,]+)/, (_m, r: string) => `,r=${r.slice(0, -1)}`), 'nonce-mismatch'],
      [(f) => f.replace(/^c=[^,]+/, 'c=eSws'), 'channel-bindings-dont-match'], // "y,,"
      [(f) => f.replace(/^c=[^,]+/, 'c=biws!'), 'channel-bindings-dont-match'],
      [(f) => f.replace(/^c=[^,]+,/, ''), 'invalid-encoding'],
      [(f) => f.replace(/,p=.*$/, ',p=AAAA'), 'invalid-encoding'], // 3 bytes, not 32
      [(f) => f.replace(/=$/, ''), 'invalid-encoding'], // unpadded base64
      [(f) => `${f},x=1`, 'invalid-encoding'], // p= must be last
    ];
    for (const [tamper, detail] of cases) {
      assertFailure((await run('app@example.org', 'secret', tamper)).step, 'malformed', detail);
    }
  });

  test('channel binding "p=" is refused as unsupported; "y" (client could, thinks we cannot) works', async () => {
    assertFailure(
      await start('SCRAM-SHA-256', 'p=tls-server-end-point,,n=user,r=abc'),
      'unsupported',
      'channel-binding-not-supported',
    );
    assertFailure(await start('SCRAM-SHA-256', 'p=,,n=user,r=abc'), 'malformed');
    const ex = createSaslExchange('SCRAM-SHA-256', options);
    const bare = 'n=app@example.org,r=ynonce';
    const serverFirst = challengeOf(await ex.start(Buffer.from(`y,,${bare}`))).toString();
    assert.equal(
      (await ex.next(Buffer.from(scramFinal('secret', bare, serverFirst, 'y,,')))).kind,
      'success',
    );
    // The same proof with c= for "n,," must not pass: the gs2 header is bound into c=.
    const other = createSaslExchange('SCRAM-SHA-256', options);
    const sf = challengeOf(await other.start(Buffer.from(`y,,${bare}`))).toString();
    assertFailure(await other.next(Buffer.from(scramFinal('secret', bare, sf, 'n,,'))), 'malformed');
  });

  test('mandatory extensions ("m=") are unsupported; other extensions are ignored', async () => {
    for (const first of ['n,,m=ext,n=user,r=abc', 'n,,n=user,r=abc,m=ext']) {
      assertFailure(await start('SCRAM-SHA-256', first), 'unsupported', 'extensions-not-supported');
    }
    const ex = createSaslExchange('SCRAM-SHA-256', options);
    const bare = 'n=app@example.org,r=extnonce,x=hello';
    const serverFirst = challengeOf(await ex.start(Buffer.from(`n,,${bare}`))).toString();
    assert.equal(
      (await ex.next(Buffer.from(scramFinal('secret', bare, serverFirst, 'n,,', ',x=1')))).kind,
      'success',
    );
    const mext = createSaslExchange('SCRAM-SHA-256', options);
    const sf = challengeOf(await mext.start(Buffer.from(`n,,${bare}`))).toString();
    assertFailure(
      await mext.next(Buffer.from(scramFinal('secret', bare, sf, 'n,,', ',m=1'))),
      'unsupported',
      'extensions-not-supported',
    );
  });

  test('authzid must be absent or the user; saslname escapes are decoded', async () => {
    assertFailure(await start('SCRAM-SHA-256', 'n,a=boss,n=user,r=abc'), 'authzid-mismatch');
    assertFailure(await start('SCRAM-SHA-256', 'n,a=,n=user,r=abc'), 'malformed');
    const ex = createSaslExchange('SCRAM-SHA-256', options);
    const bare = 'n=user,r=abc';
    const serverFirst = challengeOf(await ex.start(Buffer.from(`n,a=user,${bare}`))).toString();
    assert.equal(
      (await ex.next(Buffer.from(scramFinal('pencil', bare, serverFirst, 'n,a=user,')))).kind,
      'success',
    );
    // "=3D" is "=", "=2C" is ","; any other "=" escape is malformed.
    const weird = {
      ...options,
      credentials: { password: (u: string) => (u === 'a=b,c' ? 'pw' : undefined) },
    };
    const client = scramClient('a=b,c', 'pw');
    assert.equal(client.first().toString().split(',')[2], 'n=a=3Db=2Cc');
    const ex2 = createSaslExchange('SCRAM-SHA-256', weird);
    const sf2 = challengeOf(await ex2.start(client.first()));
    const done = await ex2.next(await client.final(sf2));
    assert.equal(done.kind === 'success' && done.identity, 'a=b,c');
  });

  test('malformed client-first messages', async () => {
    const cases = [
      '', // "AUTH SCRAM-SHA-256 =" is not a client-first message
      'n,,n=user', // no nonce
      'n,,r=abc,n=user', // order
      'x,,n=user,r=abc', // gs2 flag
      'n,n=user,r=abc', // gs2 header without authzid field
      'n,,n=,r=abc', // empty user
      'n,,n=a=2Bb,r=abc', // unknown escape
      'n,,n=us\u0001er,r=abc', // control character
      'n,,n=user,r=', // empty nonce
      'n,,n=user,r=ab\u00e9', // nonce not printable ASCII
      'n,,n=user,r=abc,bogus', // extension not attr=value
    ];
    for (const first of cases) assertFailure(await start('SCRAM-SHA-256', first), 'malformed');
    assertFailure(await start('SCRAM-SHA-256', Buffer.from([0x6e, 0x2c, 0x2c, 0xff])), 'malformed');
  });

  test('SASLprep: a password with non-ASCII spaces matches its prepared form; raw fallback for controls', async () => {
    assert.equal((await run('spaced@example.org', 'pass\u2003word')).step.kind, 'success');
    assert.equal((await run('bell@example.org', 'a\u0007b')).step.kind, 'success');
    assertFailure((await run('bell@example.org', 'ab')).step, 'bad-credentials');
  });

  test('bad options are refused with a typed error', () => {
    for (const scramIterations of [0, -1, 1.5, Number.NaN]) {
      assert.throws(
        () => createSaslExchange('SCRAM-SHA-256', { ...options, scramIterations }),
        (e: unknown) => e instanceof SaslError && e.code === SaslErrorCode.InvalidOptions,
      );
    }
  });
});

describe('SCRAM client checks the server', () => {
  const serverFirst = (text: string) => Buffer.from(text);

  test('refuses a nonce that does not extend ours, bad salt, too many iterations, m=', async () => {
    const cases = [
      'r=other,s=QSXCR+Q6sek8bf92,i=4096',
      'r=abc,s=QSXCR+Q6sek8bf92,i=4096', // the server added nothing
      'r=abcX,s=not base64,i=4096',
      'r=abcX,s=QSXCR+Q6sek8bf92,i=0',
      'r=abcX,s=QSXCR+Q6sek8bf92,i=2000000',
      'm=x,r=abcX,s=QSXCR+Q6sek8bf92,i=4096',
      'r=abcX,s=QSXCR+Q6sek8bf92,i=4096,m=x',
    ];
    for (const text of cases) {
      await assert.rejects(
        scramClient('user', 'pencil', { nonce: 'abc' }).final(serverFirst(text)),
        (e: unknown) => e instanceof SaslError && e.code === SaslErrorCode.InvalidServerMessage,
        text,
      );
    }
    const client = scramClient('user', 'pencil', { nonce: 'abc' });
    assert.equal(client.verify(Buffer.from('v=anything')), false); // before final()
    await client.final(serverFirst('r=abcX,s=QSXCR+Q6sek8bf92,i=1'));
    await assert.rejects(client.final(serverFirst('r=abcX,s=QSXCR+Q6sek8bf92,i=1')), {
      code: SaslErrorCode.OutOfOrder,
    });
  });
});

test('SASLprep (RFC 4013 §3 examples, as far as handled)', () => {
  assert.equal(saslPrep('I\u00adX'), 'IX');
  assert.equal(saslPrep('user'), 'user');
  assert.equal(saslPrep('USER'), 'USER');
  assert.equal(saslPrep('\u00aa'), 'a');
  assert.equal(saslPrep('\u2168'), 'IX');
  assert.equal(saslPrep('\u0007'), undefined);
  assert.equal(saslPrep('a\u00a0b\u3000c'), 'a b c');
  assert.equal(saslPrep('pass\ue000'), undefined); // private use
  assert.equal(saslPrep('x\u{1fffe}'), undefined); // non-character outside the BMP
  assert.equal(saslPrep('x\ud800'), undefined); // lone surrogate
  // Every printable ASCII string is its own SASLprep.
  let ascii = '';
  for (let c = 0x20; c < 0x7f; c++) ascii += String.fromCharCode(c);
  assert.equal(saslPrep(ascii), ascii);
});

test('an unknown user fails even with the password the dummy check runs against', async () => {
  // With `random` fixed, the per-exchange dummy password is known; it must still not let anyone in.
  const fixed: SaslOptions = { ...options, random: (n) => Buffer.alloc(n, 7) };
  const dummy = Buffer.alloc(24, 7).toString('base64');
  assertFailure(await start('PLAIN', plainResponse('ghost@example.org', dummy), fixed), 'bad-credentials');
  const login = createSaslExchange('LOGIN', fixed);
  challengeOf(await login.start(Buffer.from('ghost@example.org')));
  assertFailure(await login.next(Buffer.from(dummy)), 'bad-credentials');
  const cram = createSaslExchange('CRAM-MD5', fixed);
  const text = challengeOf(await cram.start(undefined));
  assertFailure(await cram.next(cramMd5Response('ghost@example.org', dummy, text)), 'bad-credentials');
  const client = scramClient('ghost@example.org', dummy);
  const scram = createSaslExchange('SCRAM-SHA-256', fixed);
  const serverFirst = challengeOf(await scram.start(client.first()));
  assertFailure(await scram.next(await client.final(serverFirst)), 'bad-credentials', 'invalid-proof');
});

test('an exchange runs once: start twice, or next before start, is malformed', async () => {
  const ex = createSaslExchange('PLAIN', options);
  assertFailure(await ex.next(plainResponse('app@example.org', 'secret')), 'malformed', 'out-of-order');
  const again = createSaslExchange('PLAIN', options);
  assert.equal((await again.start(plainResponse('app@example.org', 'secreT'))).kind, 'failure');
  // A second password attempt in the same exchange is not checked.
  assertFailure(await again.next(plainResponse('app@example.org', 'secret')), 'malformed', 'out-of-order');
  assertFailure(await again.start(plainResponse('app@example.org', 'secret')), 'malformed', 'out-of-order');
  // Two responses in flight at once: only the first is looked at.
  const login = createSaslExchange('LOGIN', options);
  challengeOf(await login.start(Buffer.from('app@example.org')));
  const [first, second] = await Promise.all([
    login.next(Buffer.from('nope')),
    login.next(Buffer.from('secret')),
  ]);
  assertFailure(first, 'bad-credentials');
  assertFailure(second, 'malformed', 'out-of-order');
});
