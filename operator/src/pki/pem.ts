import { createPrivateKey, type KeyObject, X509Certificate } from 'node:crypto';
import { PkiError, PkiErrorCode } from './errors.ts';

const CERTIFICATE_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;

/** Every certificate in PEM text, in order (a chain: leaf first). */
export function parseCertificates(pem: string): X509Certificate[] {
  const blocks = pem.match(CERTIFICATE_BLOCK) ?? [];
  if (blocks.length === 0) throw new PkiError(PkiErrorCode.InvalidCertificate, 'no PEM certificate found');
  return blocks.map((block, index) => {
    try {
      return new X509Certificate(block);
    } catch (error) {
      throw new PkiError(PkiErrorCode.InvalidCertificate, `PEM certificate ${index + 1} cannot be parsed`, {
        cause: error,
      });
    }
  });
}

/** The first certificate of PEM text (the leaf of a chain). */
export function parseCertificate(pem: string): X509Certificate {
  const [first] = parseCertificates(pem);
  if (first === undefined) throw new PkiError(PkiErrorCode.InvalidCertificate, 'no PEM certificate found');
  return first;
}

/** An unencrypted private key (PKCS#8, SEC1 or PKCS#1 PEM). */
export function parsePrivateKey(pem: string): KeyObject {
  try {
    return createPrivateKey({ key: pem, format: 'pem' });
  } catch (error) {
    throw new PkiError(
      PkiErrorCode.InvalidKey,
      'the private key cannot be parsed (unencrypted PEM expected)',
      {
        cause: error,
      },
    );
  }
}

/** PEM text ending in one newline, so that blocks concatenate into a chain file. */
export function pemText(pem: string): string {
  return `${pem.trimEnd()}\n`;
}
