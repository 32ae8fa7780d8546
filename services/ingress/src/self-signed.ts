import { KeyObject, webcrypto } from 'node:crypto';
import { isIP } from 'node:net';

/** ECDSA P-256 with SHA-256 (RFC 5480 §2.1.1.1, RFC 5758 §3.2): small keys, fast handshakes. */
const Algorithm = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

export const SelfSignedDefaults = {
  validityDays: 365,
  /** notBefore is backdated so that a client whose clock is a little behind still accepts it. */
  backdateMs: 5 * 60 * 1000,
} as const;

export interface SelfSignedOptions {
  /** The subject CN and first subjectAltName. */
  hostname: string;
  /** Further subjectAltNames (DNS names or IP addresses). */
  names?: readonly string[];
  /** Injected for tests that need an already expired certificate. */
  now?: Date;
  validityDays?: number;
  crypto?: webcrypto.Crypto;
}

export interface SelfSignedPair {
  /** PEM certificate. */
  cert: string;
  /** PEM PKCS#8 private key. */
  key: string;
  notAfter: Date;
}

/** Generates a self-signed server certificate for local mode (never used with mounted certificates). */
export async function createSelfSigned(options: SelfSignedOptions): Promise<SelfSignedPair> {
  const crypto = options.crypto ?? webcrypto;
  const x509 = await loadX509();
  const now = options.now ?? new Date();
  const notBefore = new Date(now.getTime() - SelfSignedDefaults.backdateMs);
  const notAfter = new Date(
    now.getTime() + (options.validityDays ?? SelfSignedDefaults.validityDays) * 24 * 60 * 60 * 1000,
  );
  const keys = await crypto.subtle.generateKey(Algorithm, true, ['sign', 'verify']);
  const subjectAltNames = [
    ...new Set([options.hostname, ...(options.names ?? [])].map((n) => n.toLowerCase())),
  ].map((value) => ({ type: isIP(value) === 0 ? ('dns' as const) : ('ip' as const), value }));
  const cert = await x509.X509CertificateGenerator.createSelfSigned(
    {
      name: [{ CN: [options.hostname] }],
      keys,
      signingAlgorithm: Algorithm,
      notBefore,
      notAfter,
      extensions: [
        // RFC 5280 §4.2.1.6: clients match the host against these, not the CN.
        new x509.SubjectAlternativeNameExtension(subjectAltNames),
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      ],
    },
    // The types of @peculiar/x509 name the DOM's Crypto; Node's webcrypto is the same API.
    crypto as unknown as Parameters<typeof x509.X509CertificateGenerator.createSelfSigned>[1],
  );
  const key = KeyObject.from(keys.privateKey).export({ type: 'pkcs8', format: 'pem' });
  // A final newline, so that the file can be concatenated into a chain like any other PEM file.
  const pem = `${cert.toString('pem').trimEnd()}\n`;
  return { cert: pem, key: typeof key === 'string' ? key : key.toString('utf8'), notAfter };
}

/**
 * @peculiar/x509 resolves its algorithms through tsyringe, which refuses to load without the
 * Reflect metadata API (normally the reflect-metadata package, which is not a dependency here).
 * tsyringe only reads constructor parameter types through it, and the library's classes need
 * none, so a minimal stand-in is installed when no implementation exists. The library is
 * imported lazily so that a deployment with mounted certificates never loads it.
 */
async function loadX509(): Promise<typeof import('@peculiar/x509')> {
  installReflectMetadata();
  return await import('@peculiar/x509');
}

function installReflectMetadata(): void {
  const reflect = Reflect as unknown as Record<string, unknown>;
  if (typeof reflect['getMetadata'] === 'function') return;
  const store = new WeakMap<object, Map<string, Map<unknown, unknown>>>();
  const own = (target: object, property: unknown, create: boolean): Map<unknown, unknown> | undefined => {
    let byProperty = store.get(target);
    if (byProperty === undefined) {
      if (!create) return undefined;
      byProperty = new Map();
      store.set(target, byProperty);
    }
    const name = String(property ?? '');
    let values = byProperty.get(name);
    if (values === undefined && create) {
      values = new Map();
      byProperty.set(name, values);
    }
    return values;
  };
  const getOwnMetadata = (key: unknown, target: object, property?: unknown): unknown =>
    own(target, property, false)?.get(key);
  const getMetadata = (key: unknown, target: object, property?: unknown): unknown => {
    for (let t: object | null = target; t !== null; t = Object.getPrototypeOf(t)) {
      const values = own(t, property, false);
      if (values?.has(key)) return values.get(key);
    }
    return undefined;
  };
  const defineMetadata = (key: unknown, value: unknown, target: object, property?: unknown): void => {
    own(target, property, true)?.set(key, value);
  };
  Object.assign(reflect, { getMetadata, getOwnMetadata, defineMetadata });
}
