export {
  buildDsn,
  composeDsn,
  DEFAULT_MAX_RETURN_SIZE,
  DSN_ACTIONS,
  DSN_SUBJECTS,
  type DsnAction,
  type DsnClientInfo,
  type DsnGenerators,
  type DsnInput,
  type DsnMessage,
  type DsnOriginal,
  type DsnRecipientResult,
  type DsnReturned,
} from './build.ts';
export { originalFromEnvelope } from './envelope.ts';
export { headerSection, rfc5322Date } from './mime.ts';
export { type DsnRequest, dsnEnvelopeSender, isDeliveryReport, shouldSendDsn } from './policy.ts';
