export {
  type CertificateAuthority,
  type CreateCaOptions,
  createCa,
  type IssuedCertificate,
  type IssueServerCertificateOptions,
  issueServerCertificate,
  PKI_DEFAULTS,
} from './ca.ts';
export { PkiError, PkiErrorCode } from './errors.ts';
export {
  type CertificateInfo,
  certificateInfo,
  needsRenewal,
  RenewalCode,
  type RenewalOptions,
  type RenewalReason,
} from './info.ts';
