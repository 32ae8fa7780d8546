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
  Extension,
  MAX_COMMAND_LINE,
  MAX_TEXT_LINE,
  ReplyCode,
} from './codes.ts';
export { DataDecoder, type DataDecoderOptions, type DataProblems, dotStuff } from './data.ts';
export { InputReader, type LineResult } from './reader.ts';
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
  type Recipient,
  ServerSession,
  type ServerSessionOptions,
  type SessionHandler,
  type SessionInfo,
  type Transaction,
} from './server.ts';
