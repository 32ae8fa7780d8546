import type { Reply } from './reply.ts';

/** Stable codes of client-side failures (a reply from the server is not a failure). */
export const SmtpClientErrorCode = {
  Connect: 'PETREL_ERR_SMTP_CONNECT',
  Timeout: 'PETREL_ERR_SMTP_TIMEOUT',
  /** The connection closed, or the server announced it would (421). */
  ConnectionLost: 'PETREL_ERR_SMTP_CONNECTION_LOST',
  /** Malformed replies, over-long reply lines or replies, codes that differ across lines. */
  Protocol: 'PETREL_ERR_SMTP_PROTOCOL',
  /** A connection-level refusal: greeting, EHLO/HELO/LHLO, RSET. */
  Rejected: 'PETREL_ERR_SMTP_REJECTED',
  /** tls 'required' and STARTTLS not offered or refused, the handshake failed, the certificate did not validate (rejectUnauthorized), or verifyPeer refused the server. */
  Tls: 'PETREL_ERR_SMTP_TLS',
  /** AUTH configured but not possible: not offered, no common mechanism, or no TLS (and not allowed in clear). */
  AuthUnavailable: 'PETREL_ERR_SMTP_AUTH_UNAVAILABLE',
  /** The server refused the credentials (535 5.7.8) or the exchange (other 4xx/5xx, in `reply`). */
  AuthFailed: 'PETREL_ERR_SMTP_AUTH_FAILED',
  /** send() on a connection that is busy with another send() or already closed. */
  Unusable: 'PETREL_ERR_SMTP_UNUSABLE',
} as const;
export type SmtpClientErrorCode = (typeof SmtpClientErrorCode)[keyof typeof SmtpClientErrorCode];

/** Where a client connection was when something went wrong (and which timeout applied). */
export const ClientPhase = {
  Connect: 'connect',
  Greeting: 'greeting',
  Hello: 'hello',
  StartTls: 'starttls',
  TlsHandshake: 'tls-handshake',
  Auth: 'auth',
  Rset: 'rset',
  Mail: 'mail',
  Rcpt: 'rcpt',
  DataInit: 'data-init',
  DataBlock: 'data-block',
  DataEnd: 'data-end',
  Quit: 'quit',
} as const;
export type ClientPhase = (typeof ClientPhase)[keyof typeof ClientPhase];

export class SmtpClientError extends Error {
  readonly code: SmtpClientErrorCode;
  /** The server's reply, when the failure is a reply at the connection level (greeting, EHLO, 421, AUTH). */
  readonly reply: Reply | undefined;
  /** What the client was doing; for timeouts, which RFC 5321 §4.5.3.2 timeout expired. */
  readonly phase: ClientPhase | undefined;
  constructor(
    code: SmtpClientErrorCode,
    message: string,
    options?: ErrorOptions & { reply?: Reply; phase?: ClientPhase },
  ) {
    super(message, options);
    this.name = 'SmtpClientError';
    this.code = code;
    this.reply = options?.reply;
    this.phase = options?.phase;
  }
}

export function replyText(r: Reply): string {
  return `${r.code}${r.enhanced ? ` ${r.enhanced}` : ''} ${r.lines.join(' ')}`.trimEnd();
}
