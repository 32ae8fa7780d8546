/**
 * Petrel-Signature: `t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>` (the scheme
 * Stripe uses). The timestamp is signed too, so a captured request cannot be replayed after the
 * receiver's tolerance; the receiver must verify the raw body bytes, before any JSON parsing.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

export const SIGNATURE_HEADER = 'Petrel-Signature';
/** Default clock skew (and replay window) a receiver accepts. */
export const DEFAULT_TOLERANCE_S = 300;

function hmac(secret: string, timestamp: number, body: string | Uint8Array): Buffer {
  return createHmac('sha256', secret).update(`${timestamp}.`).update(body).digest();
}

/** The header value for a body sent at `timestamp` (unix seconds). */
export function signatureHeader(secret: string, body: string | Uint8Array, timestamp: number): string {
  return `t=${timestamp},v1=${hmac(secret, timestamp, body).toString('hex')}`;
}

export interface VerifyOptions {
  /** How far the signed time may be from now, in seconds (default 300). */
  readonly toleranceS?: number;
  /** Now, in milliseconds since the epoch (tests). */
  readonly now?: number;
}

/**
 * Whether `header` is a valid signature of `body` with `secret`, made within the tolerance. Several
 * v1= entries are accepted (any may match: room for signing with two secrets during a rotation).
 * The comparison is constant-time.
 */
export function verifySignature(
  secret: string,
  header: string | undefined | null,
  body: string | Uint8Array,
  options: VerifyOptions = {},
): boolean {
  if (typeof header !== 'string' || header.length > 4096) return false;
  let timestamp: number | undefined;
  const signatures: Buffer[] = [];
  for (const part of header.split(',')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    const key = part.slice(0, eq).trim();
    const value = part.slice(eq + 1).trim();
    if (key === 't' && /^\d{1,12}$/.test(value)) timestamp = Number(value);
    else if (key === 'v1' && /^[0-9a-f]{64}$/i.test(value)) signatures.push(Buffer.from(value, 'hex'));
  }
  if (timestamp === undefined || signatures.length === 0) return false;
  const nowS = (options.now ?? Date.now()) / 1000;
  if (Math.abs(nowS - timestamp) > (options.toleranceS ?? DEFAULT_TOLERANCE_S)) return false;
  const expected = hmac(secret, timestamp, body);
  // Every candidate is compared (no early exit), each in constant time.
  let ok = false;
  for (const signature of signatures) ok = timingSafeEqual(signature, expected) || ok;
  return ok;
}
