import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  sign,
  verify,
} from 'node:crypto';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { DkimError, DkimErrorCode } from './errors.ts';
import { DkimAlgorithm, dkimTxtValue, generateDkimKey, keyFingerprint } from './keys.ts';

const run = promisify(execFile);
/** RFC 8410 §4: the DER SubjectPublicKeyInfo of an Ed25519 key, up to the 32 key octets. */
const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

/** The tags of a key record, in order. */
function tags(txt: string): [string, string][] {
  return txt.split(';').map((part) => {
    const [name = '', ...rest] = part.trim().split('=');
    return [name, rest.join('=')];
  });
}

function pOf(txt: string): Buffer {
  const p = tags(txt).find(([name]) => name === 'p')?.[1];
  assert.ok(p !== undefined && /^[A-Za-z0-9+/]+={0,2}$/.test(p), `p= is base64: ${txt}`);
  return Buffer.from(p, 'base64');
}

async function opensslPubkeyText(der: Buffer): Promise<string> {
  const child = run('openssl', ['pkey', '-pubin', '-inform', 'DER', '-noout', '-text']);
  child.child.stdin?.end(der);
  return (await child).stdout;
}

function throwsDkim(fn: () => unknown, code: DkimErrorCode): void {
  assert.throws(fn, (error: unknown) => error instanceof DkimError && error.code === code);
}

describe('generateDkimKey', () => {
  it('makes a 2048-bit RSA key whose record carries the SubjectPublicKeyInfo (RFC 6376 §3.6.1)', async () => {
    const key = await generateDkimKey(DkimAlgorithm.RsaSha256);
    assert.equal(key.algorithm, 'rsa-sha256');
    assert.match(key.privateKeyPem, /^-----BEGIN PRIVATE KEY-----\n/, 'PKCS#8');
    const privateKey = createPrivateKey(key.privateKeyPem);
    assert.equal(privateKey.asymmetricKeyDetails?.modulusLength, 2048);
    assert.deepEqual(
      tags(key.publicKeyDns).map(([name]) => name),
      ['v', 'k', 'p'],
    );
    assert.match(key.publicKeyDns, /^v=DKIM1; k=rsa; p=/);

    // The p= octets are the key's public half, as verifiers read them.
    const der = pOf(key.publicKeyDns);
    const publicKey = createPublicKey({ key: der, format: 'der', type: 'spki' });
    const data = Buffer.from('header hash input');
    assert.ok(verify('sha256', data, publicKey, sign('sha256', data, privateKey)));
    assert.match(await opensslPubkeyText(der), /Public-Key: \(2048 bit\)/);
  });

  it('makes an Ed25519 key whose record carries the raw 32-octet public key (RFC 8463 §4.2)', async () => {
    const key = await generateDkimKey(DkimAlgorithm.Ed25519Sha256);
    assert.match(key.privateKeyPem, /^-----BEGIN PRIVATE KEY-----\n/);
    assert.match(key.publicKeyDns, /^v=DKIM1; k=ed25519; p=/);
    const raw = pOf(key.publicKeyDns);
    assert.equal(raw.length, 32);
    const publicKey = createPublicKey({
      key: Buffer.concat([ED25519_SPKI_PREFIX, raw]),
      format: 'der',
      type: 'spki',
    });
    const data = Buffer.from('sha256 of the header hash input');
    assert.ok(verify(null, data, publicKey, sign(null, data, createPrivateKey(key.privateKeyPem))));
    assert.match(await opensslPubkeyText(Buffer.concat([ED25519_SPKI_PREFIX, raw])), /ED25519 Public-Key/);
  });

  it('makes a different key every time and refuses other algorithms', async () => {
    const [a, b] = await Promise.all([
      generateDkimKey(DkimAlgorithm.Ed25519Sha256),
      generateDkimKey(DkimAlgorithm.Ed25519Sha256),
    ]);
    assert.notEqual(a?.publicKeyDns, b?.publicKeyDns);
    await assert.rejects(
      generateDkimKey('rsa-sha1' as DkimAlgorithm),
      (error: unknown) => error instanceof DkimError && error.code === DkimErrorCode.UnsupportedAlgorithm,
    );
  });
});

describe('dkimTxtValue', () => {
  it('gives the record of a private key in PKCS#8 or PKCS#1, or of its public key', async () => {
    const key = await generateDkimKey(DkimAlgorithm.RsaSha256);
    const privateKey = createPrivateKey(key.privateKeyPem);
    const pkcs1 = privateKey.export({ type: 'pkcs1', format: 'pem' }).toString();
    assert.match(pkcs1, /BEGIN RSA PRIVATE KEY/);
    const spki = createPublicKey(privateKey).export({ type: 'spki', format: 'pem' }).toString();
    for (const pem of [key.privateKeyPem, pkcs1, spki]) {
      assert.equal(dkimTxtValue(pem, DkimAlgorithm.RsaSha256), key.publicKeyDns);
    }
    const ed = await generateDkimKey(DkimAlgorithm.Ed25519Sha256);
    assert.equal(dkimTxtValue(ed.privateKeyPem, DkimAlgorithm.Ed25519Sha256), ed.publicKeyDns);
  });

  it('refuses a key of the wrong type or size, and text that is no key', () => {
    const pem = (key: ReturnType<typeof generateKeyPairSync>['privateKey']) =>
      key.export({ type: 'pkcs8', format: 'pem' }).toString();
    const ed = pem(generateKeyPairSync('ed25519').privateKey);
    const ec = pem(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey);
    const small = pem(generateKeyPairSync('rsa', { modulusLength: 768 }).privateKey);
    throwsDkim(() => dkimTxtValue(ed, DkimAlgorithm.RsaSha256), DkimErrorCode.KeyTypeMismatch);
    throwsDkim(() => dkimTxtValue(ec, DkimAlgorithm.RsaSha256), DkimErrorCode.KeyTypeMismatch);
    throwsDkim(() => dkimTxtValue(ec, DkimAlgorithm.Ed25519Sha256), DkimErrorCode.KeyTypeMismatch);
    throwsDkim(() => dkimTxtValue(small, DkimAlgorithm.RsaSha256), DkimErrorCode.KeySize);
    throwsDkim(() => dkimTxtValue('not a key', DkimAlgorithm.RsaSha256), DkimErrorCode.InvalidKey);
    throwsDkim(() => dkimTxtValue(ed, 'ed448' as DkimAlgorithm), DkimErrorCode.UnsupportedAlgorithm);
  });
});

describe('keyFingerprint', () => {
  it('is the SHA-256 of the public SubjectPublicKeyInfo, the same from the private and the public PEM', async () => {
    const key = await generateDkimKey(DkimAlgorithm.Ed25519Sha256);
    const other = await generateDkimKey(DkimAlgorithm.Ed25519Sha256);
    // openssl's own DER of the public key, hashed: the value does not depend on node's export.
    const child = run('openssl', ['pkey', '-pubout', '-outform', 'DER'], { encoding: 'buffer' });
    child.child.stdin?.end(key.privateKeyPem);
    const der = (await child).stdout;
    const spkiPem = createPublicKey(key.privateKeyPem).export({ type: 'spki', format: 'pem' }).toString();
    const fingerprint = keyFingerprint(key.privateKeyPem);
    assert.match(fingerprint, /^[0-9a-f]{64}$/);
    assert.equal(fingerprint, createHash('sha256').update(der).digest('hex'));
    assert.equal(keyFingerprint(spkiPem), fingerprint);
    assert.notEqual(keyFingerprint(other.privateKeyPem), fingerprint);
    throwsDkim(() => keyFingerprint('nope'), DkimErrorCode.InvalidKey);
  });
});
