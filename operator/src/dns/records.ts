// The DNS records a MailDomain needs, as the operator shows them to the domain's admin and checks
// them: MX (RFC 5321 §5.1), SPF (RFC 7208), DKIM keys (RFC 6376), DMARC (RFC 7489) and the
// MTA-STS record (RFC 8461) with the policy file it announces.
import { createHash } from 'node:crypto';
import { DnsRecordError, DnsRecordErrorCode } from './errors.ts';
import { normaliseCertificateName, normaliseDomain, normaliseHostName } from './names.ts';

export const RecordPurpose = {
  Mx: 'MX',
  Spf: 'SPF',
  Dkim: 'DKIM',
  Dmarc: 'DMARC',
  MtaSts: 'MTA-STS',
} as const;
export type RecordPurpose = (typeof RecordPurpose)[keyof typeof RecordPurpose];

export type DesiredRecordType = 'MX' | 'TXT';

/** One record to publish. TXT `value` is the whole text; `txtStrings` cuts it for publishing. */
export interface DesiredRecord {
  purpose: RecordPurpose;
  type: DesiredRecordType;
  /** Owner name, lower case, without the trailing dot. */
  name: string;
  /** MX: `<preference> <exchange>.`; TXT: the text, its character-strings concatenated. */
  value: string;
}

/** RFC 7489 §6.3 p=. */
export type DmarcPolicy = 'none' | 'quarantine' | 'reject';
/** RFC 8461 §5. */
export type MtaStsMode = 'enforce' | 'testing' | 'none';

export interface MtaStsSettings {
  mode: MtaStsMode;
  /** RFC 8461 §3.2: at most 31557600 (a year); weeks are recommended. */
  maxAgeSeconds: number;
}

export interface MtaStsPolicyOptions extends MtaStsSettings {
  /** Allowed MX hosts, one `mx:` line each; `*.example.com` covers one label (RFC 8461 §4.1). */
  mxHosts: readonly string[];
}

export interface DesiredRecordsInput {
  domain: string;
  /** The relay's inbound host, the domain's MX exchange. */
  mxHost: string;
  /** The whole SPF record; default `v=spf1 mx -all` (the MX hosts send, nothing else). */
  spf?: string;
  dmarc?: {
    policy: DmarcPolicy;
    /** Aggregate report addresses: `mailto:` URIs, or bare addresses (mailto: is added). */
    rua?: string | readonly string[];
  };
  /**
   * The settings (the policy then names mxHost), or the policy text itself as served (the id is
   * derived from exactly that text, so the served file and the record cannot disagree).
   */
  mtaSts?: MtaStsSettings | { policy: string };
  /** Key records of the published DKIM keys (`DkimKeyPlan.published`, with dkimTxtValue). */
  dkim?: readonly { selector: string; txt: string }[];
}

/** RFC 5321 §5.1: one exchange, so its preference does not matter; 10 leaves room either side. */
export const MX_PREFERENCE = 10;
export const DEFAULT_SPF = 'v=spf1 mx -all';
/** RFC 1035 §3.3.14: a character-string is at most 255 octets. */
export const MAX_TXT_STRING = 255;
/** RFC 8461 §3.2. */
export const MAX_MTA_STS_AGE = 31_557_600;
/** RFC 8461 §3.1: id is 1*32(ALPHA / DIGIT). */
const MTA_STS_ID_LENGTH = 32;
/** Printable ASCII: what every record here is made of, and what needs no escaping but `"` and `\`. */
const PRINTABLE = /^[\x20-\x7e]*$/;

/** The records `input` calls for: MX, SPF, one per DKIM key, DMARC and MTA-STS when configured. */
export function desiredRecords(input: DesiredRecordsInput): DesiredRecord[] {
  const domain = domainOf(input.domain);
  const mxHost = hostOf(input.mxHost, 'MX host');
  const records: DesiredRecord[] = [
    { purpose: RecordPurpose.Mx, type: 'MX', name: domain, value: `${MX_PREFERENCE} ${mxHost}.` },
    { purpose: RecordPurpose.Spf, type: 'TXT', name: domain, value: spfValue(input.spf) },
  ];
  for (const key of input.dkim ?? []) {
    const selector = hostOf(key.selector, 'DKIM selector');
    records.push({
      purpose: RecordPurpose.Dkim,
      type: 'TXT',
      // RFC 6376 §3.6.2.1.
      name: `${selector}._domainkey.${domain}`,
      value: textValue(key.txt.trim(), `DKIM record of ${selector}`),
    });
  }
  if (input.dmarc !== undefined) {
    records.push({
      purpose: RecordPurpose.Dmarc,
      type: 'TXT',
      // RFC 7489 §6.1.
      name: `_dmarc.${domain}`,
      value: dmarcValue(input.dmarc.policy, input.dmarc.rua),
    });
  }
  if (input.mtaSts !== undefined) {
    const policy =
      'policy' in input.mtaSts
        ? policyText(input.mtaSts.policy)
        : mtaStsPolicy({ ...input.mtaSts, mxHosts: [mxHost] });
    records.push({
      purpose: RecordPurpose.MtaSts,
      type: 'TXT',
      // RFC 8461 §3.1.
      name: `_mta-sts.${domain}`,
      value: `v=STSv1; id=${mtaStsId(policy)}`,
    });
  }
  for (const record of records) checkName(record.name);
  return records;
}

/**
 * The policy file served at `https://mta-sts.<domain>/.well-known/mta-sts.txt` (RFC 8461 §3.2),
 * CRLF-separated. Mode none is still a policy: publishing it (with a new id) is how a domain
 * withdraws MTA-STS without senders holding on to a cached enforce policy (§8.3).
 */
export function mtaStsPolicy(settings: MtaStsPolicyOptions): string {
  if (!['enforce', 'testing', 'none'].includes(settings.mode)) {
    throw new DnsRecordError(
      DnsRecordErrorCode.InvalidValue,
      `MTA-STS mode ${JSON.stringify(settings.mode)}`,
    );
  }
  const age = settings.maxAgeSeconds;
  if (!Number.isInteger(age) || age < 0 || age > MAX_MTA_STS_AGE) {
    throw new DnsRecordError(
      DnsRecordErrorCode.InvalidValue,
      `MTA-STS max_age must be a whole number of seconds from 0 to ${MAX_MTA_STS_AGE}`,
    );
  }
  if (settings.mxHosts.length === 0) {
    // RFC 8461 §3.2: one or more mx lines (a policy without them matches no host).
    throw new DnsRecordError(DnsRecordErrorCode.InvalidValue, 'an MTA-STS policy names at least one MX host');
  }
  const mx = settings.mxHosts.map((host) => {
    const pattern = normaliseCertificateName(host);
    if (pattern === undefined) {
      throw new DnsRecordError(
        DnsRecordErrorCode.InvalidName,
        `MTA-STS mx ${JSON.stringify(host)} is not a host name`,
      );
    }
    return `mx: ${pattern}`;
  });
  return ['version: STSv1', `mode: ${settings.mode}`, ...new Set(mx), `max_age: ${age}`, ''].join('\r\n');
}

/** A policy given as text: it must at least be an STSv1 policy (RFC 8461 §3.2, version first). */
function policyText(policy: string): string {
  if (!/^version: *STSv1 *\r?\n/.test(policy)) {
    throw new DnsRecordError(
      DnsRecordErrorCode.InvalidValue,
      'an MTA-STS policy starts with "version: STSv1"',
    );
  }
  return policy;
}

/**
 * The policy's id: the start of its SHA-256 in hex, so that the id changes exactly when the
 * policy does (RFC 8461 §3.1: senders fetch the policy again when the id changes).
 */
export function mtaStsId(policy: string): string {
  return createHash('sha256').update(policy).digest('hex').slice(0, MTA_STS_ID_LENGTH);
}

/**
 * The character-strings a TXT value is published as: cut every 255 octets (RFC 1035 §3.3.14;
 * RFC 7208 §3.3 and RFC 6376 §3.6.2.2 read them concatenated, without separators).
 */
export function txtStrings(value: string): string[] {
  const strings: string[] = [];
  for (let start = 0; start < value.length; start += MAX_TXT_STRING) {
    strings.push(value.slice(start, start + MAX_TXT_STRING));
  }
  return strings.length > 0 ? strings : [''];
}

/** The record in zone-file presentation format (RFC 1035 §5.1), e.g. for an admin to copy. */
export function presentation(record: DesiredRecord): string {
  const data =
    record.type === 'TXT'
      ? txtStrings(record.value)
          .map((s) => `"${s.replaceAll('\\', '\\\\').replaceAll('"', '\\"')}"`)
          .join(' ')
      : record.value;
  return `${record.name}. IN ${record.type} ${data}`;
}

function spfValue(spf: string | undefined): string {
  if (spf === undefined) return DEFAULT_SPF;
  const value = textValue(spf.trim(), 'SPF record');
  // RFC 7208 §4.5: only a record that starts with "v=spf1" and a space (or ends there) is SPF.
  if (!/^v=spf1( |$)/i.test(value)) {
    throw new DnsRecordError(DnsRecordErrorCode.InvalidValue, 'an SPF record starts with "v=spf1 "');
  }
  return value;
}

function dmarcValue(policy: DmarcPolicy, rua: string | readonly string[] | undefined): string {
  if (!['none', 'quarantine', 'reject'].includes(policy)) {
    throw new DnsRecordError(DnsRecordErrorCode.InvalidValue, `DMARC policy ${JSON.stringify(policy)}`);
  }
  // RFC 7489 §6.4: v first, then p.
  const tags = ['v=DMARC1', `p=${policy}`];
  const uris = (typeof rua === 'string' ? [rua] : (rua ?? [])).map((entry) => {
    const uri = entry.trim();
    const full = /^[a-z][a-z0-9+.-]*:/i.test(uri) ? uri : `mailto:${uri}`;
    // RFC 7489 §6.4: URIs are comma-separated, so a comma (or ;, or space) must be %-encoded.
    if (!/^mailto:[^\s,;@]+@[^\s,;@]+$/i.test(full) || !PRINTABLE.test(full)) {
      throw new DnsRecordError(
        DnsRecordErrorCode.InvalidValue,
        `DMARC rua ${JSON.stringify(entry)} is not a mailto: URI`,
      );
    }
    return full;
  });
  if (uris.length > 0) tags.push(`rua=${uris.join(',')}`);
  return tags.join('; ');
}

function textValue(value: string, what: string): string {
  if (value.length === 0 || !PRINTABLE.test(value)) {
    throw new DnsRecordError(DnsRecordErrorCode.InvalidValue, `${what} must be printable ASCII text`);
  }
  return value;
}

function domainOf(name: string): string {
  const domain = normaliseDomain(name);
  if (domain === undefined) {
    throw new DnsRecordError(DnsRecordErrorCode.InvalidName, `${JSON.stringify(name)} is not a domain name`);
  }
  return domain;
}

function hostOf(name: string, what: string): string {
  const host = normaliseHostName(name);
  if (host === undefined) {
    throw new DnsRecordError(
      DnsRecordErrorCode.InvalidName,
      `${what} ${JSON.stringify(name)} is not a host name`,
    );
  }
  return host;
}

/** RFC 1035 §2.3.4: the owner names built here must still fit. */
function checkName(name: string): void {
  if (name.length > 253 || name.split('.').some((label) => label.length > 63)) {
    throw new DnsRecordError(DnsRecordErrorCode.InvalidName, `record name ${name} is too long for DNS`);
  }
}
