// Host-name syntax shared by the DNS records, DKIM selectors and certificate names the operator makes.

/** An LDH label (RFC 1123 §2.1, RFC 5890 §2.3.1): at most 63 octets, no leading or trailing hyphen. */
const LABEL = '[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?';
const HOST = new RegExp(`^${LABEL}(?:\\.${LABEL})*$`);
/** RFC 1035 §2.3.4: 255 octets on the wire, so 253 characters in text without the root dot. */
const MAX_NAME = 253;

/**
 * The name in lower case without a trailing dot (RFC 4343 §3: case does not make another name),
 * or undefined when it is not a host name of LDH labels. A single label is accepted (selectors,
 * prefixes); callers that need a domain check for a dot themselves.
 */
export function normaliseHostName(name: string): string | undefined {
  const lower = name.toLowerCase();
  const bare = lower.endsWith('.') ? lower.slice(0, -1) : lower;
  if (bare.length === 0 || bare.length > MAX_NAME || !HOST.test(bare)) return undefined;
  return bare;
}

/** A domain: a host name of at least two labels. */
export function normaliseDomain(name: string): string | undefined {
  const host = normaliseHostName(name);
  return host?.includes('.') ? host : undefined;
}

/**
 * A certificate dNSName (RFC 5280 §4.2.1.6): a host name (single labels too: in-cluster Service
 * names), or a domain with `*` as its whole leftmost label (RFC 6125 §6.4.3: the only wildcard
 * form clients must match).
 */
export function normaliseCertificateName(name: string): string | undefined {
  if (name.startsWith('*.')) {
    const rest = normaliseDomain(name.slice(2));
    return rest === undefined ? undefined : `*.${rest}`;
  }
  return normaliseHostName(name);
}
