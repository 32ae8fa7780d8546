export {
  DEFAULT_CHECK_TIMEOUT_MS,
  DmarcPolicy,
  type InboundCheckResult,
  type InboundCheckSummary,
  InboundChecks,
  InboundChecksError,
  InboundChecksErrorCode,
  type InboundChecksOptions,
  type InboundMessage,
} from './checks.ts';
export { combineChecks, type EffectiveChecks, type InboundCheckFlags } from './flags.ts';
export { authenticationResults, fold } from './header.ts';
