export {
  type Mailbox,
  type PathArgument,
  type PathParseResult,
  parseDomain,
  parseMailbox,
  parsePathArgument,
} from './address.ts';
export {
  type ClientOptions,
  type RecipientResult,
  type SendResult,
  SmtpClient,
  SmtpClientError,
  SmtpClientErrorCode,
} from './client.ts';
export {
  DEFAULT_MAX_RECIPIENTS,
  Enhanced,
  EXTENSION_COMMAND_ALLOWANCE,
  Extension,
  MAX_AUTH_LINE,
  MAX_COMMAND_LINE,
  MAX_RECEIVED_FIELDS,
  MAX_TEXT_LINE,
  ReplyCode,
} from './codes.ts';
export {
  type BareLineEndings,
  DataDecoder,
  type DataDecoderOptions,
  type DataProblems,
  dotStuff,
} from './data.ts';
export {
  type BodyType,
  type DeliverBy,
  type DsnNotify,
  decodeXtext,
  encodeXtext,
  type MailParameters,
  parseMailParameters,
  parseRecipientParameters,
  type RecipientParameters,
} from './params.ts';
export {
  crc32c,
  encodeProxyV1,
  encodeProxyV2,
  PROXY_V1_MAX,
  PROXY_V2_MAX,
  PROXY_V2_MAX_LENGTH,
  type ProxyEndpoint,
  ProxyErrorCode,
  type ProxyFamily,
  type ProxyParse,
  type ProxyV2Options,
  parseProxyHeader,
} from './proxy.ts';
export { InputReader, type LineResult } from './reader.ts';
export {
  countReceived,
  MAX_RECEIVED_HOPS,
  type ReceivedInfo,
  type ReceivedProtocol,
  receivedHeader,
  receivedProtocol,
  rfc5322Date,
} from './received.ts';
export {
  formatReply,
  isPermanent,
  isPositive,
  isTransient,
  parseReplyLines,
  type Reply,
  reply,
} from './reply.ts';
export {
  cramMd5Response,
  createSaslExchange,
  encodeSaslName,
  parseSaslMechanism,
  plainResponse,
  type SaslCredentials,
  type SaslExchange,
  SaslFailure,
  SaslMechanism,
  type SaslOptions,
  type SaslStep,
  saslPrep,
  scramClient,
} from './sasl.ts';
export {
  type AuthHandler,
  type AuthInfo,
  ListenerMode,
  type Recipient,
  ServerSession,
  type ServerSessionOptions,
  SessionEvent,
  type SessionHandler,
  type SessionInfo,
  type TlsInfo,
  type Transaction,
} from './server.ts';
