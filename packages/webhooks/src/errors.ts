/** Why an attempt or a job failed; the code is stable, the message is for people (and the delivery log). */
export const WebhookErrorCode = {
  /** The receiver answered with a status other than 2xx. */
  Status: 'PETREL_ERR_WEBHOOK_STATUS',
  /** No answer within the request timeout. */
  Timeout: 'PETREL_ERR_WEBHOOK_TIMEOUT',
  /** The connection failed (refused, reset, DNS, TLS). */
  Request: 'PETREL_ERR_WEBHOOK_REQUEST',
  /** A job in PETREL_WEBHOOKS does not decode (written by another release, or not by us). */
  Job: 'PETREL_ERR_WEBHOOK_JOB',
  /** Options out of range (at start). */
  Options: 'PETREL_ERR_WEBHOOK_OPTIONS',
} as const;
export type WebhookErrorCode = (typeof WebhookErrorCode)[keyof typeof WebhookErrorCode];

export class WebhookError extends Error {
  readonly code: WebhookErrorCode;
  /** The HTTP status of a Status error. */
  readonly statusCode: number | undefined;
  constructor(code: WebhookErrorCode, message: string, options?: ErrorOptions & { statusCode?: number }) {
    super(message, options);
    this.name = 'WebhookError';
    this.code = code;
    this.statusCode = options?.statusCode;
  }
}
