export { DnsError, DnsErrorCode, type DnsErrorDetails } from './errors.ts';
export {
  DNS_DEFAULTS,
  type DnsAnswer,
  type DnsAnswers,
  DnsResolver,
  type DnsResolverOptions,
  type MailauthResolver,
  RrType,
  reverseName,
} from './resolver.ts';
export { parseServer, parseServers } from './servers.ts';
