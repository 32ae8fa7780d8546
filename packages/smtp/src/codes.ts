/**
 * SMTP reply codes (RFC 5321 §4.2.2-4.2.3) and enhanced status codes (RFC 3463, RFC 2034),
 * with the replies the engine and the services send. The wire text always comes from here.
 */
export const ReplyCode = {
  /** RFC 5321 §4.2.3 */
  ServiceReady: 220,
  Closing: 221,
  Ok: 250,
  CannotVerify: 252,
  StartMailInput: 354,
  ServiceUnavailable: 421,
  MailboxUnavailableTemp: 450,
  LocalError: 451,
  InsufficientStorage: 452,
  SyntaxError: 500,
  ParameterSyntaxError: 501,
  NotImplemented: 502,
  BadSequence: 503,
  ParameterNotImplemented: 504,
  MailboxUnavailable: 550,
  ExceededStorage: 552,
  MailboxNameNotAllowed: 553,
  TransactionFailed: 554,
  /** RFC 5321 §4.2.3: MAIL FROM/RCPT TO parameters not recognized or not implemented */
  ParametersNotRecognized: 555,
} as const;
export type ReplyCode = (typeof ReplyCode)[keyof typeof ReplyCode];

/** Enhanced status codes, RFC 3463 §3 (class.subject.detail). */
export const Enhanced = {
  Ok: '2.0.0',
  SenderOk: '2.1.0',
  RecipientOk: '2.1.5',
  /** RFC 3463 §3.2 X.1.1 bad destination mailbox address */
  BadDestinationMailbox: '5.1.1',
  /** X.1.3 bad destination mailbox address syntax */
  BadDestinationSyntax: '5.1.3',
  /** X.1.7 bad sender's mailbox address syntax */
  BadSenderSyntax: '5.1.7',
  /** X.3.0 other or undefined mail system status */
  MailSystemTemp: '4.3.0',
  /** X.3.2 system not accepting network messages */
  NotAccepting: '4.3.2',
  /** X.3.4 message too big for system */
  MessageTooBig: '5.3.4',
  /** X.4.2 bad connection */
  BadConnection: '4.4.2',
  /** X.5.0 other or undefined protocol status */
  ProtocolError: '5.5.0',
  /** X.5.1 invalid command */
  InvalidCommand: '5.5.1',
  /** X.5.2 syntax error */
  SyntaxError: '5.5.2',
  /** X.5.3 too many recipients */
  TooManyRecipients: '4.5.3',
  /** X.5.4 invalid command arguments */
  InvalidArguments: '5.5.4',
  /** X.6.0 other or undefined media error */
  MediaError: '5.6.0',
  /** X.7.0 other or undefined security status */
  SecurityTemp: '4.7.0',
  /** X.7.1 delivery not authorized, message refused */
  NotAuthorized: '5.7.1',
} as const;
export type Enhanced = (typeof Enhanced)[keyof typeof Enhanced];

/** ESMTP extension keywords advertised in the EHLO reply. */
export const Extension = {
  /** RFC 2920 */
  Pipelining: 'PIPELINING',
  /** RFC 6152 */
  EightBitMime: '8BITMIME',
  /** RFC 1870 */
  Size: 'SIZE',
  /** RFC 2034 */
  EnhancedStatusCodes: 'ENHANCEDSTATUSCODES',
  /** RFC 6531 */
  SmtpUtf8: 'SMTPUTF8',
} as const;
export type Extension = (typeof Extension)[keyof typeof Extension];

/** RFC 5321 §4.5.3.1.4: command line including CRLF. */
export const MAX_COMMAND_LINE = 512;
/** RFC 5321 §4.5.3.1.6: text line excluding CRLF. */
export const MAX_TEXT_LINE = 998;
/** RFC 5321 §4.5.3.1.8: recipients buffer minimum; our default per-message limit. */
export const DEFAULT_MAX_RECIPIENTS = 100;
