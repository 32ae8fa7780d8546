/**
 * Per-domain switches for the checks on mail from the internet (runtime config
 * `inbound.checks` of each MailDomain; every field defaults to true there). Declared here rather
 * than imported from @petrel/config so this module does not depend on the config's shape in time;
 * the runtime config's object is structurally the same.
 */
export interface InboundCheckFlags {
  readonly spf: boolean;
  readonly dkim: boolean;
  readonly dmarc: boolean;
  readonly arc: boolean;
  /** Refuse (550 5.7.1) mail that fails DMARC when the author domain publishes p=reject. */
  readonly dmarcReject: boolean;
}

/** What one transaction runs, from the flags of all its recipient domains. */
export interface EffectiveChecks {
  readonly spf: boolean;
  readonly dkim: boolean;
  readonly dmarc: boolean;
  readonly arc: boolean;
  readonly dmarcReject: boolean;
}

/**
 * One message goes to all its recipients, so it is checked once: a check runs when any
 * recipient domain wants it (the header then carries its result for everyone). Refusing the
 * message refuses it for every recipient, so DMARC reject applies only when every recipient
 * domain has both `dmarc` and `dmarcReject` on; otherwise the message is accepted and the
 * header says dmarc=fail.
 */
export function combineChecks(domains: readonly InboundCheckFlags[]): EffectiveChecks {
  const any = (pick: (d: InboundCheckFlags) => boolean): boolean => domains.some(pick);
  return {
    spf: any((d) => d.spf),
    dkim: any((d) => d.dkim),
    dmarc: any((d) => d.dmarc),
    arc: any((d) => d.arc),
    dmarcReject: domains.length > 0 && domains.every((d) => d.dmarc && d.dmarcReject),
  };
}
