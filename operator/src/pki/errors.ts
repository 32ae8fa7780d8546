/** Failure codes of the operator's CA; stable, so reconcilers and logs can branch on them. */
export const PkiErrorCode = {
  /** Options out of range: validity, common name, clock. */
  InvalidOptions: 'PETREL_ERR_PKI_INVALID_OPTIONS',
  /** A dNSName that is not a host name (or `*.` and a domain), or no names at all. */
  InvalidDnsName: 'PETREL_ERR_PKI_INVALID_DNS_NAME',
  /** Text that holds no certificate node can parse. */
  InvalidCertificate: 'PETREL_ERR_PKI_INVALID_CERTIFICATE',
  /** Text that holds no unencrypted private key node can parse. */
  InvalidKey: 'PETREL_ERR_PKI_INVALID_KEY',
  /** The CA certificate is not a CA (BasicConstraints cA false or absent) or cannot sign certificates. */
  NotCa: 'PETREL_ERR_PKI_NOT_CA',
  /** The CA's private key is not the key of its certificate. */
  KeyMismatch: 'PETREL_ERR_PKI_KEY_MISMATCH',
  /** The CA key is not an ECDSA P-256 key, the only kind createCa makes. */
  UnsupportedKey: 'PETREL_ERR_PKI_UNSUPPORTED_KEY',
  /** The CA is not valid at the issuing time (expired, or not yet valid). */
  CaNotValid: 'PETREL_ERR_PKI_CA_NOT_VALID',
} as const;
export type PkiErrorCode = (typeof PkiErrorCode)[keyof typeof PkiErrorCode];

export class PkiError extends Error {
  readonly code: PkiErrorCode;
  constructor(code: PkiErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'PkiError';
    this.code = code;
  }
}
