// Whether DNS serves the records a MailDomain needs, as receivers would read them.
import type { DnsResolver } from '@petrel/dns';
import { type DesiredRecord, RecordPurpose } from './records.ts';

/** Why a record does not verify. */
export const VerifyCode = {
  /** No record of this kind: NXDOMAIN, no records of the type, or only unrelated TXT records. */
  Missing: 'Missing',
  /** Records of this kind exist, none with the wanted value. */
  Mismatch: 'Mismatch',
  /**
   * The wanted record is there, and another of its kind too, which receivers treat as an error
   * or as no record at all (SPF RFC 7208 §4.5, DMARC RFC 7489 §6.6.3, MTA-STS RFC 8461 §3.1,
   * DKIM RFC 6376 §3.6.2.2).
   */
  Conflict: 'Conflict',
  /** The lookup failed (timeout, SERVFAIL, unreachable server): try again later. */
  LookupFailed: 'LookupFailed',
  /** The desired record itself cannot be checked (an MX value without an exchange). */
  Invalid: 'Invalid',
} as const;
export type VerifyCode = (typeof VerifyCode)[keyof typeof VerifyCode];

export interface VerifiedRecord extends DesiredRecord {
  verified: boolean;
  /** Set when not verified. */
  reason?: { code: VerifyCode; message: string };
  /** What DNS answered at the name for the type: MX as `<preference> <exchange>`, TXT concatenated. */
  found: string[];
}

export interface VerificationSummary {
  total: number;
  verified: number;
  unverified: number;
  allVerified: boolean;
  byPurpose: Partial<Record<RecordPurpose, { total: number; verified: number }>>;
}

export interface Verification {
  records: VerifiedRecord[];
  summary: VerificationSummary;
}

/** A DnsResolver, or anything answering like its `settled`. */
export type DnsResolverLike = Pick<DnsResolver, 'settled'>;

export interface VerifyOptions {
  /** Its cache decides how fresh the answers are: give the operator a resolver with short cache times. */
  resolver: DnsResolverLike;
}

type Answer = { ok: true; found: string[] } | { ok: false; missing: boolean; message: string };

/**
 * Looks every record up (each name and type once) and says which DNS serves. Never throws for
 * DNS failures: NXDOMAIN, NODATA, timeouts and unreachable servers make unverified records.
 */
export async function verifyRecords(
  records: readonly DesiredRecord[],
  options: VerifyOptions,
): Promise<Verification> {
  const lookups = new Map<string, Promise<Answer>>();
  const answer = (record: DesiredRecord): Promise<Answer> => {
    const key = `${record.type} ${record.name.toLowerCase()}`;
    let lookup = lookups.get(key);
    if (lookup === undefined) {
      lookup = look(options.resolver, record);
      lookups.set(key, lookup);
    }
    return lookup;
  };
  const verified = await Promise.all(
    records.map(async (record): Promise<VerifiedRecord> => judge(record, await answer(record))),
  );
  return { records: verified, summary: summarise(verified) };
}

async function look(resolver: DnsResolverLike, record: DesiredRecord): Promise<Answer> {
  try {
    if (record.type === 'MX') {
      const result = await resolver.settled(record.name, 'MX');
      if (!result.ok) return failure(result.error);
      return { ok: true, found: result.value.map((mx) => `${mx.priority} ${mx.exchange}`) };
    }
    const result = await resolver.settled(record.name, 'TXT');
    if (!result.ok) return failure(result.error);
    // RFC 7208 §3.3, RFC 6376 §3.6.2.2: a record's character-strings are read concatenated.
    return { ok: true, found: result.value.map((strings) => strings.join('')) };
  } catch (error) {
    return { ok: false, missing: false, message: error instanceof Error ? error.message : String(error) };
  }
}

function failure(error: { code: string; message: string; temporary: boolean }): Answer {
  return { ok: false, missing: !error.temporary, message: error.message };
}

function judge(record: DesiredRecord, answer: Answer): VerifiedRecord {
  const unverified = (code: VerifyCode, message: string, found: string[] = []): VerifiedRecord => ({
    ...record,
    verified: false,
    reason: { code, message },
    found,
  });
  if (!answer.ok) {
    return answer.missing
      ? unverified(VerifyCode.Missing, `no ${record.type} record at ${record.name}`)
      : unverified(VerifyCode.LookupFailed, answer.message);
  }
  const { found } = answer;

  if (record.type === 'MX') {
    const wanted = mxExchange(record.value);
    if (wanted === undefined)
      return unverified(VerifyCode.Invalid, `MX value ${JSON.stringify(record.value)}`, found);
    // The exchange counts, not its preference; case and a trailing dot do not (RFC 4343 §3).
    const present = found.some((mx) => mxExchange(mx) === wanted);
    if (present) return { ...record, verified: true, found };
    return unverified(VerifyCode.Mismatch, `${record.name} MX does not name ${wanted}`, found);
  }

  const { sameKind, normalise } = TXT_RULES[record.purpose];
  const wanted = normalise(record.value);
  const ofKind = found.filter(sameKind);
  const matching = ofKind.filter((text) => normalise(text) === wanted);
  if (matching.length > 0 && ofKind.length === 1) return { ...record, verified: true, found };
  if (matching.length > 0) {
    return unverified(
      VerifyCode.Conflict,
      `${ofKind.length} ${record.purpose} records at ${record.name}; one is wanted`,
      found,
    );
  }
  if (ofKind.length === 0)
    return unverified(VerifyCode.Missing, `no ${record.purpose} record at ${record.name}`, found);
  return unverified(VerifyCode.Mismatch, `the ${record.purpose} record at ${record.name} differs`, found);
}

/** `<preference> <exchange>` → the exchange, lower case, no trailing dot. */
function mxExchange(value: string): string | undefined {
  const match = /^\s*\d+\s+(\S+?)\.?\s*$/.exec(value);
  return match?.[1]?.toLowerCase();
}

interface TxtRule {
  /** Records at the name that receivers would read as this kind (so two of them conflict). */
  sameKind: (text: string) => boolean;
  /** The form in which two records of the kind that mean the same compare equal. */
  normalise: (text: string) => string;
}

/**
 * A tag=value list (DKIM RFC 6376 §3.2, DMARC RFC 7489 §6.4, MTA-STS RFC 8461 §3.1): whitespace
 * around `;` and `=` does not count, nor does a final `;`; tags in any order after v, which
 * must come first. A tag twice makes the list invalid (RFC 6376 §3.2): no canonical form then.
 */
function tagList(text: string, squeeze: readonly string[] = []): string | undefined {
  const parts = text.split(';').map((part) => part.trim());
  if (parts.at(-1) === '') parts.pop();
  const tags = new Map<string, string>();
  for (const part of parts) {
    const eq = part.indexOf('=');
    if (eq <= 0) return undefined;
    const name = part.slice(0, eq).trim();
    let value = part.slice(eq + 1).trim();
    // Base64 values may be folded with whitespace anywhere (RFC 6376 §3.6.1 p=).
    if (squeeze.includes(name)) value = value.replace(/\s+/g, '');
    if (tags.has(name)) return undefined;
    tags.set(name, value);
  }
  const entries = [...tags];
  const head = entries[0]?.[0] === 'v' ? entries.slice(0, 1) : [];
  const rest = entries.slice(head.length).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const ordered = [...head, ...rest];
  return ordered.map(([name, value]) => `${name}=${value}`).join('; ');
}

/** Records that cannot be read compare unequal to anything, themselves included. */
const unreadable = (text: string) => `\0${text}`;

function tagRule(version: RegExp | undefined, squeeze: readonly string[] = []): TxtRule {
  return {
    sameKind: (text) => version === undefined || version.test(text),
    normalise: (text) => tagList(text, squeeze) ?? unreadable(text),
  };
}

const TXT_RULES: Record<RecordPurpose, TxtRule> = {
  [RecordPurpose.Spf]: {
    // RFC 7208 §4.5: "v=spf1" then a space or the end; the version is case-insensitive.
    sameKind: (text) => /^v=spf1( |$)/i.test(text),
    // RFC 7208 §4.6.1: terms are separated by runs of spaces.
    normalise: (text) => text.trim().replace(/ +/g, ' '),
  },
  // The selector's name holds the key record only, with or without its optional v=.
  [RecordPurpose.Dkim]: tagRule(undefined, ['p']),
  // RFC 7489 §6.6.3: records that do not start with v=DMARC1 are not DMARC records.
  [RecordPurpose.Dmarc]: tagRule(/^v\s*=\s*DMARC1\s*(;|$)/),
  // RFC 8461 §3.1.
  [RecordPurpose.MtaSts]: tagRule(/^v\s*=\s*STSv1\s*(;|$)/),
  [RecordPurpose.Mx]: { sameKind: () => false, normalise: (text) => text },
};

function summarise(records: readonly VerifiedRecord[]): VerificationSummary {
  const byPurpose: VerificationSummary['byPurpose'] = {};
  for (const record of records) {
    const entry = byPurpose[record.purpose] ?? { total: 0, verified: 0 };
    entry.total++;
    if (record.verified) entry.verified++;
    byPurpose[record.purpose] = entry;
  }
  const verified = records.filter((record) => record.verified).length;
  return {
    total: records.length,
    verified,
    unverified: records.length - verified,
    allVerified: verified === records.length,
    byPurpose,
  };
}
