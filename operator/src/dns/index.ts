export { DnsRecordError, DnsRecordErrorCode } from './errors.ts';
export { normaliseCertificateName, normaliseDomain, normaliseHostName } from './names.ts';
export {
  DEFAULT_SPF,
  type DesiredRecord,
  type DesiredRecordsInput,
  type DesiredRecordType,
  type DmarcPolicy,
  desiredRecords,
  MAX_MTA_STS_AGE,
  MAX_TXT_STRING,
  type MtaStsMode,
  type MtaStsPolicyOptions,
  type MtaStsSettings,
  MX_PREFERENCE,
  mtaStsId,
  mtaStsPolicy,
  presentation,
  RecordPurpose,
  txtStrings,
} from './records.ts';
export {
  type DnsResolverLike,
  type Verification,
  type VerificationSummary,
  type VerifiedRecord,
  VerifyCode,
  type VerifyOptions,
  verifyRecords,
} from './verify.ts';
