/**
 * SMTP reply codes (RFC 5321 §4.2.2-4.2.3) and enhanced status codes (RFC 3463, RFC 2034),
 * with the replies the engine and the services send. The wire text always comes from here.
 */
export const ReplyCode = {
  /** RFC 5321 §4.2.3 */
  HelpMessage: 214,
  ServiceReady: 220,
  Closing: 221,
  /** RFC 4954 §4 */
  AuthSuccessful: 235,
  Ok: 250,
  /** RFC 1985 §5: ETRN, no messages waiting for the node */
  NoMessagesWaiting: 251,
  CannotVerify: 252,
  /** RFC 4954 §4: server challenge */
  AuthContinue: 334,
  StartMailInput: 354,
  ServiceUnavailable: 421,
  /** RFC 4954 §6: a password transition is needed */
  PasswordTransition: 432,
  MailboxUnavailableTemp: 450,
  LocalError: 451,
  InsufficientStorage: 452,
  /** RFC 4954 §6: temporary authentication failure */
  AuthTempFailure: 454,
  /** RFC 1985 §5: ETRN, no messages waiting for the node */
  EtrnNoMessages: 251,
  /** RFC 1985 §5: ETRN, <n> pending messages for the node started */
  EtrnPendingStarted: 253,
  /** RFC 1985 §5: ETRN, unable to queue messages for the node */
  EtrnUnableToQueue: 458,
  /** RFC 1985 §5: ETRN, node not allowed */
  EtrnNodeNotAllowed: 459,
  SyntaxError: 500,
  ParameterSyntaxError: 501,
  NotImplemented: 502,
  BadSequence: 503,
  ParameterNotImplemented: 504,
  /** RFC 4954 §6 / RFC 3207 §4: authentication or STARTTLS required */
  AuthRequired: 530,
  /** RFC 4954 §6: authentication mechanism is too weak */
  MechanismTooWeak: 534,
  /** RFC 4954 §6: authentication credentials invalid */
  AuthInvalid: 535,
  /** RFC 4954 §6: encryption required for requested authentication mechanism */
  EncryptionRequired: 538,
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
  /** RFC 4954 §6: authentication succeeded */
  AuthOk: '2.7.0',
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
  /** X.3.3 system not capable of selected features (e.g. BINARYMIME with DATA) */
  NotCapable: '5.3.3',
  /** X.3.4 message too big for system */
  MessageTooBig: '5.3.4',
  /** X.4.2 bad connection */
  BadConnection: '4.4.2',
  /** X.4.6 routing loop detected (RFC 5321 §6.3: too many Received fields) */
  RoutingLoop: '5.4.6',
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
  /** X.5.6 authentication exchange line is too long (RFC 4954 §6) */
  AuthLineTooLong: '5.5.6',
  /** X.6.0 other or undefined media error */
  MediaError: '5.6.0',
  /** X.6.7 non-ASCII addresses not permitted for that sender/recipient (RFC 6531 §3.7.4.1) */
  NonAsciiAddress: '5.6.7',
  /** X.7.0 other or undefined security status */
  SecurityTemp: '4.7.0',
  /** X.7.0 security: authentication or STARTTLS required */
  SecurityRequired: '5.7.0',
  /** X.7.1 delivery not authorized, message refused */
  NotAuthorized: '5.7.1',
  /** X.7.8 authentication credentials invalid (RFC 4954 §6) */
  AuthCredentialsInvalid: '5.7.8',
  /** X.7.9 authentication mechanism is too weak (RFC 4954 §6) */
  MechanismTooWeak: '5.7.9',
  /** X.7.10 REQUIRETLS needs TLS (RFC 8689 §5) */
  RequireTlsNeeded: '5.7.10',
  /** X.7.11 encryption required for requested authentication mechanism (RFC 4954 §6) */
  EncryptionRequired: '5.7.11',
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
  /** RFC 3207 */
  StartTls: 'STARTTLS',
  /** RFC 4954 */
  Auth: 'AUTH',
  /** RFC 3030 */
  Chunking: 'CHUNKING',
  /** RFC 3030 */
  BinaryMime: 'BINARYMIME',
  /** RFC 3461 */
  Dsn: 'DSN',
  /** RFC 8689 */
  RequireTls: 'REQUIRETLS',
  /** RFC 2852 */
  DeliverBy: 'DELIVERBY',
  /** RFC 1985 */
  Etrn: 'ETRN',
} as const;
export type Extension = (typeof Extension)[keyof typeof Extension];

/** RFC 5321 §4.5.3.1.4: command line including CRLF. */
export const MAX_COMMAND_LINE = 512;
/**
 * Octets that advertised extensions add to the command line limit: RFC 1870 §3 SIZE (26),
 * RFC 3461 §4 ENVID (100) and ORCPT (500), RFC 4954 §5 AUTH= (500), RFC 2852 BY= (about 20),
 * RFC 6152/6531/8689/3030 keywords (BODY=BINARYMIME, SMTPUTF8, REQUIRETLS: 40).
 */
export const EXTENSION_COMMAND_ALLOWANCE = 26 + 100 + 500 + 500 + 20 + 40;
/** RFC 4954 §4: the AUTH command and SASL responses may be up to 12288 octets. */
export const MAX_AUTH_LINE = 12_288;
/** RFC 5321 §6.3: more Received fields than this means a mail loop. */
export const MAX_RECEIVED_FIELDS = 100;
/** RFC 5321 §4.5.3.1.6: text line excluding CRLF. */
export const MAX_TEXT_LINE = 998;
/** RFC 5321 §4.5.3.1.8: recipients buffer minimum; our default per-message limit. */
export const DEFAULT_MAX_RECIPIENTS = 100;
