/** Failure codes of the DNS record builder; stable, so callers can branch on them. */
export const DnsRecordErrorCode = {
  /** The domain, MX host or a DKIM selector is not a host name of LDH labels. */
  InvalidName: 'PETREL_ERR_DNS_RECORD_INVALID_NAME',
  /** A record value or setting that cannot be published as given (SPF, DKIM TXT, DMARC rua, MTA-STS). */
  InvalidValue: 'PETREL_ERR_DNS_RECORD_INVALID_VALUE',
} as const;
export type DnsRecordErrorCode = (typeof DnsRecordErrorCode)[keyof typeof DnsRecordErrorCode];

export class DnsRecordError extends Error {
  readonly code: DnsRecordErrorCode;
  constructor(code: DnsRecordErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'DnsRecordError';
    this.code = code;
  }
}
