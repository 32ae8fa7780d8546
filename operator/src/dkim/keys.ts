// DKIM signing keys the operator generates for a MailDomain, and the TXT records that publish them.
import { createHash, createPublicKey, generateKeyPair, type KeyObject } from 'node:crypto';
import { DkimError, DkimErrorCode } from './errors.ts';

/** The signing algorithms (RFC 6376 §3.3 with RFC 8301 §3.1; RFC 8463 §3). */
export const DkimAlgorithm = {
  RsaSha256: 'rsa-sha256',
  Ed25519Sha256: 'ed25519-sha256',
} as const;
export type DkimAlgorithm = (typeof DkimAlgorithm)[keyof typeof DkimAlgorithm];
export const DKIM_ALGORITHMS: readonly DkimAlgorithm[] = Object.values(DkimAlgorithm);

/** RFC 8301 §3.2: signers MUST use at least 1024 bits and SHOULD use 2048; verifiers handle up to 4096. */
export const RSA_KEY_BITS = 2048;
const MIN_RSA_BITS = 1024;
const MAX_RSA_BITS = 4096;

/** k= of the key record (RFC 6376 §3.6.1; RFC 8463 §4.2 registers ed25519). */
const KEY_TYPE: Record<DkimAlgorithm, 'rsa' | 'ed25519'> = {
  'rsa-sha256': 'rsa',
  'ed25519-sha256': 'ed25519',
};

export interface GeneratedDkimKey {
  algorithm: DkimAlgorithm;
  /** PKCS#8 PEM, unencrypted. */
  privateKeyPem: string;
  /** The TXT value to publish at `<selector>._domainkey.<domain>`: `v=DKIM1; k=...; p=...`. */
  publicKeyDns: string;
}

export function isDkimAlgorithm(value: unknown): value is DkimAlgorithm {
  return typeof value === 'string' && (DKIM_ALGORITHMS as readonly string[]).includes(value);
}

/** A new key: RSA 2048 bits (RFC 8301 §3.2) or Ed25519 (RFC 8463). Generated off the event loop. */
export async function generateDkimKey(algorithm: DkimAlgorithm): Promise<GeneratedDkimKey> {
  checkAlgorithm(algorithm);
  const privateKey = await new Promise<KeyObject>((resolve, reject) => {
    const done = (error: Error | null, _publicKey: KeyObject, key: KeyObject) =>
      error ? reject(error) : resolve(key);
    if (algorithm === DkimAlgorithm.RsaSha256) generateKeyPair('rsa', { modulusLength: RSA_KEY_BITS }, done);
    else generateKeyPair('ed25519', {}, done);
  });
  const privateKeyPem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  return {
    algorithm,
    privateKeyPem,
    publicKeyDns: txtValue(algorithm, publicKeyOf(privateKeyPem, algorithm)),
  };
}

/**
 * The key record's TXT value for a private (or public) key PEM (RFC 6376 §3.6.1): for rsa, p= is
 * the base64 DER SubjectPublicKeyInfo, as every published record and verifier has it; for
 * ed25519, the raw 32-octet public key (RFC 8463 §4.2), not an SPKI.
 */
export function dkimTxtValue(keyPem: string, algorithm: DkimAlgorithm): string {
  checkAlgorithm(algorithm);
  return txtValue(algorithm, publicKeyOf(keyPem, algorithm));
}

/**
 * A short, stable identity of a key pair for status and logs: SHA-256 of the public key's DER
 * SubjectPublicKeyInfo, lower-case hex. The private and the public PEM of a pair give the same value.
 */
export function keyFingerprint(keyPem: string): string {
  const der = parsePublicKey(keyPem).export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(der).digest('hex');
}

function txtValue(algorithm: DkimAlgorithm, p: string): string {
  return `v=DKIM1; k=${KEY_TYPE[algorithm]}; p=${p}`;
}

function checkAlgorithm(algorithm: string): asserts algorithm is DkimAlgorithm {
  if (!isDkimAlgorithm(algorithm)) {
    throw new DkimError(
      DkimErrorCode.UnsupportedAlgorithm,
      `algorithm ${JSON.stringify(algorithm)} is not one of ${DKIM_ALGORITHMS.join(', ')}`,
    );
  }
}

function parsePublicKey(keyPem: string): KeyObject {
  try {
    // A private key PEM gives its public half.
    return createPublicKey({ key: keyPem, format: 'pem' });
  } catch (error) {
    throw new DkimError(DkimErrorCode.InvalidKey, 'the key cannot be parsed (unencrypted PEM expected)', {
      cause: error,
    });
  }
}

/** p= for the key, after checking that it suits the algorithm. */
function publicKeyOf(keyPem: string, algorithm: DkimAlgorithm): string {
  const key = parsePublicKey(keyPem);
  const type = key.asymmetricKeyType;
  if (algorithm === DkimAlgorithm.RsaSha256) {
    if (type !== 'rsa') {
      throw new DkimError(
        DkimErrorCode.KeyTypeMismatch,
        `an ${type ?? 'unknown'} key cannot sign rsa-sha256`,
      );
    }
    const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
    if (bits < MIN_RSA_BITS || bits > MAX_RSA_BITS) {
      throw new DkimError(
        DkimErrorCode.KeySize,
        `RSA key of ${bits} bits; ${MIN_RSA_BITS}-${MAX_RSA_BITS} allowed`,
      );
    }
    return key.export({ type: 'spki', format: 'der' }).toString('base64');
  }
  if (type !== 'ed25519') {
    throw new DkimError(
      DkimErrorCode.KeyTypeMismatch,
      `an ${type ?? 'unknown'} key cannot sign ed25519-sha256`,
    );
  }
  const x = key.export({ format: 'jwk' }).x;
  if (typeof x !== 'string')
    throw new DkimError(DkimErrorCode.InvalidKey, 'Ed25519 key without a public value');
  return Buffer.from(x, 'base64url').toString('base64');
}
