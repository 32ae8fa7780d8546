/** Failure codes of DKIM key generation and rotation planning; stable, so callers can branch on them. */
export const DkimErrorCode = {
  /** An algorithm other than rsa-sha256 and ed25519-sha256 (RFC 8301 §3.1 retires rsa-sha1). */
  UnsupportedAlgorithm: 'PETREL_ERR_DKIM_UNSUPPORTED_ALGORITHM',
  /** Text that holds no unencrypted key node can parse. */
  InvalidKey: 'PETREL_ERR_DKIM_INVALID_KEY',
  /** The key is not of the algorithm's type (an Ed25519 key for rsa-sha256, an EC key, ...). */
  KeyTypeMismatch: 'PETREL_ERR_DKIM_KEY_TYPE_MISMATCH',
  /** An RSA key outside 1024-4096 bits (RFC 8301 §3.2). */
  KeySize: 'PETREL_ERR_DKIM_KEY_SIZE',
  /** The generate settings are out of range (generation, durations, prefix, algorithms). */
  InvalidSpec: 'PETREL_ERR_DKIM_INVALID_SPEC',
  /** The recorded keys contradict each other (a selector twice, a bad generation or date). */
  InvalidKeys: 'PETREL_ERR_DKIM_INVALID_KEYS',
} as const;
export type DkimErrorCode = (typeof DkimErrorCode)[keyof typeof DkimErrorCode];

export class DkimError extends Error {
  readonly code: DkimErrorCode;
  /** The selector the error is about, when it is about one key. */
  readonly selector: string | undefined;
  constructor(code: DkimErrorCode, message: string, options?: ErrorOptions & { selector?: string }) {
    super(message, options);
    this.name = 'DkimError';
    this.code = code;
    this.selector = options?.selector;
  }
}
