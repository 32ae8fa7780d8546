import type { Readable } from 'node:stream';
import type { DnsResolver } from '@petrel/dns';
import { Enhanced, type Reply, ReplyCode, reply } from '@petrel/smtp';
import { type AuthenticateResult, authenticate, type DNSResolver } from 'mailauth';
import { combineChecks, type EffectiveChecks, type InboundCheckFlags } from './flags.ts';
import { authenticationResults } from './header.ts';

export const InboundChecksErrorCode = {
  InvalidHostname: 'PETREL_ERR_INBOUND_INVALID_HOSTNAME',
  InvalidTimeout: 'PETREL_ERR_INBOUND_INVALID_TIMEOUT',
} as const;
export type InboundChecksErrorCode = (typeof InboundChecksErrorCode)[keyof typeof InboundChecksErrorCode];

export class InboundChecksError extends Error {
  readonly code: InboundChecksErrorCode;
  constructor(code: InboundChecksErrorCode, message: string) {
    super(message);
    this.name = 'InboundChecksError';
    this.code = code;
  }
}

/** DMARC policies (RFC 9989 §4.7 p=, sp=, np=). */
export const DmarcPolicy = { None: 'none', Quarantine: 'quarantine', Reject: 'reject' } as const;
export type DmarcPolicy = (typeof DmarcPolicy)[keyof typeof DmarcPolicy];

/**
 * RFC 7208 §4.6.4: an SPF evaluation may take up to 20 s; the SMTP client waits up to 10 minutes
 * for the reply to the final dot (RFC 5321 §4.5.3.2.6), so 20 s for all checks fits inside it.
 */
export const DEFAULT_CHECK_TIMEOUT_MS = 20_000;

/** RFC 8301 §3.2: verifiers MUST accept RSA keys of 1024-4096 bits and MAY refuse shorter ones. */
const MIN_RSA_BITS = 1024;

/** RFC 1123 §2.1 host name; the authserv-id of RFC 8601 §2.5 is our host name. */
const HOSTNAME =
  /^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

export interface InboundChecksOptions {
  /** The shared cached resolver (`petrel dev --dns-server` points it at a test server). */
  resolver: Pick<DnsResolver, 'mailauthResolver'>;
  /** Our host name, the authserv-id of the header (RFC 8601 §2.5). */
  hostname: string;
  /** Budget for all checks of one message; default 20 s. Past it, every check is temperror. */
  timeoutMs?: number;
  /**
   * Follow the RFCs exactly (mailauth strict mode); default true. Among others: a body hash
   * mismatch is dkim=fail (RFC 6376 §6.1.3), rsa-sha1 never passes (RFC 8301 §3.1).
   */
  strict?: boolean;
}

/** One message from an unauthenticated client on the MX port to managed domains. */
export interface InboundMessage {
  /** The message as received (header and body), before we add our own trace fields. */
  message: Buffer | Readable;
  /** MAIL FROM address without angle brackets; '' for the null reverse-path. */
  mailFrom: string;
  /** The EHLO/HELO argument. */
  helo: string;
  /** The client's IP address (IPv4-mapped IPv6 is read as IPv4). */
  clientIp: string;
  /** `inbound.checks` of every recipient's domain (one entry per domain). */
  recipientDomains: readonly InboundCheckFlags[];
}

/** Result keywords of RFC 8601 §2.7, as mailauth reports them. */
export interface InboundCheckSummary {
  spf?: string;
  dkim?: string[];
  dmarc?: string;
  arc?: string;
}

export interface InboundCheckResult {
  /** `Authentication-Results: <hostname>; ...` folded, CRLF-terminated; only enabled checks. */
  header: string;
  /** The author domain's policy for failing mail when DMARC failed; otherwise undefined. */
  dmarcPolicy: DmarcPolicy | undefined;
  /** 550 5.7.1 when DMARC failed under p=reject and every recipient domain wants it refused. */
  reject: Reply | undefined;
  /** Per-check result keywords, for logs and metrics. */
  results: InboundCheckSummary;
  /** The overall timeout fired; every enabled check reports temperror. */
  timedOut: boolean;
  /** An unexpected failure inside the checks (reported as temperror, never thrown). */
  error?: unknown;
}

const POLICIES = new Set<string>(Object.values(DmarcPolicy));

/**
 * SPF, DKIM, DMARC and ARC on mail from the internet to managed domains, with mailauth through our
 * cached resolver. Never throws for the message's sake: DNS failures and timeouts become
 * temperror results and the message is accepted (the decision stays with the caller).
 */
export class InboundChecks {
  readonly #resolver: Pick<DnsResolver, 'mailauthResolver'>;
  readonly #hostname: string;
  readonly #timeoutMs: number;
  readonly #strict: boolean;

  constructor(options: InboundChecksOptions) {
    if (!HOSTNAME.test(options.hostname)) {
      throw new InboundChecksError(
        InboundChecksErrorCode.InvalidHostname,
        `inbound checks: ${JSON.stringify(options.hostname)} is not a host name`,
      );
    }
    const timeoutMs = options.timeoutMs ?? DEFAULT_CHECK_TIMEOUT_MS;
    if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) {
      throw new InboundChecksError(
        InboundChecksErrorCode.InvalidTimeout,
        'inbound checks: timeoutMs must be > 0',
      );
    }
    this.#resolver = options.resolver;
    this.#hostname = options.hostname;
    this.#timeoutMs = timeoutMs;
    this.#strict = options.strict ?? true;
  }

  async check(input: InboundMessage): Promise<InboundCheckResult> {
    const checks = combineChecks(input.recipientDomains);
    if (!checks.spf && !checks.dkim && !checks.dmarc && !checks.arc) {
      return this.#result({}, [], undefined, false);
    }
    const controller = new AbortController();
    // mailauth's type says string arrays; at run time it takes node:dns shapes (MX objects too).
    const resolver = this.#resolver.mailauthResolver({ signal: controller.signal }) as DNSResolver;
    const work = authenticate(input.message, {
      resolver,
      sender: input.mailFrom,
      // Without an IP mailauth answers SPF without DNS; when neither SPF nor DMARC is wanted, skip it.
      ip: checks.spf || checks.dmarc ? input.clientIp : undefined,
      helo: input.helo,
      mta: this.#hostname,
      strict: this.#strict,
      minBitLength: MIN_RSA_BITS,
      disableDmarc: !checks.dmarc,
      disableArc: !checks.arc,
      disableBimi: true,
    }).then(
      (value) => ({ ok: true as const, value }),
      (error: unknown) => ({ ok: false as const, error }),
    );
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), this.#timeoutMs);
    });
    try {
      const outcome = await Promise.race([work, deadline]);
      if (outcome === 'timeout') return this.#temperror(checks, 'timeout', true);
      if (!outcome.ok) return { ...this.#temperror(checks, 'internal error', false), error: outcome.error };
      return this.#fromAuthentication(checks, outcome.value);
    } finally {
      clearTimeout(timer);
      // Lookups mailauth still makes after we stopped waiting fail at once.
      controller.abort();
    }
  }

  #fromAuthentication(checks: EffectiveChecks, auth: AuthenticateResult): InboundCheckResult {
    const lines: string[] = [];
    const results: InboundCheckSummary = {};
    // Entries in the order spf, dkim, dmarc, arc.
    if (checks.spf) {
      results.spf = auth.spf ? auth.spf.status.result : 'none';
      lines.push(auth.spf ? auth.spf.info : 'spf=none');
    }
    if (checks.dkim) {
      const signatures = auth.dkim.results;
      results.dkim = signatures.length > 0 ? signatures.map((s) => s.status.result) : ['none'];
      lines.push(...(signatures.length > 0 ? signatures.map((s) => s.info) : ['dkim=none']));
    }
    let dmarcPolicy: DmarcPolicy | undefined;
    let reject: Reply | undefined;
    if (checks.dmarc) {
      const dmarc = auth.dmarc;
      if (dmarc) {
        results.dmarc = dmarc.status.result;
        lines.push(dmarc.info);
        if (dmarc.status.result === 'fail' && POLICIES.has(dmarc.policy)) {
          dmarcPolicy = dmarc.policy as DmarcPolicy;
        }
        if (dmarcPolicy === DmarcPolicy.Reject && checks.dmarcReject) {
          const domain = dmarc.status.header?.from ?? dmarc.domain;
          // RFC 9989 §5.8 / RFC 7489 §7.3: refuse during the SMTP transaction, naming DMARC.
          reject = reply(
            ReplyCode.MailboxUnavailable,
            Enhanced.NotAuthorized,
            `Message rejected: it fails the DMARC policy of ${domain}`,
          );
        }
      } else {
        // No single author domain to evaluate (RFC 9989 §5.3.1), or no From at all.
        results.dmarc = 'none';
        lines.push(auth.dmarcSkipReason ? `dmarc=none (${auth.dmarcSkipReason})` : 'dmarc=none');
      }
    }
    if (checks.arc) {
      const arc = auth.arc;
      results.arc = arc ? arc.status.result : 'none';
      lines.push(arc ? (arc.info ?? `arc=${arc.status.result}`) : 'arc=none');
    }
    return this.#result(results, lines, dmarcPolicy, false, reject);
  }

  #temperror(checks: EffectiveChecks, why: string, timedOut: boolean): InboundCheckResult {
    const results: InboundCheckSummary = {};
    const lines: string[] = [];
    if (checks.spf) results.spf = 'temperror';
    if (checks.dkim) results.dkim = ['temperror'];
    if (checks.dmarc) results.dmarc = 'temperror';
    if (checks.arc) results.arc = 'temperror';
    for (const [method, result] of Object.entries(results)) {
      if (result !== undefined) lines.push(`${method}=temperror (${why})`);
    }
    return this.#result(results, lines, undefined, timedOut);
  }

  #result(
    results: InboundCheckSummary,
    lines: readonly string[],
    dmarcPolicy: DmarcPolicy | undefined,
    timedOut: boolean,
    reject?: Reply,
  ): InboundCheckResult {
    return { header: authenticationResults(this.#hostname, lines), dmarcPolicy, reject, results, timedOut };
  }
}
