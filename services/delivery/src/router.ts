import type { DomainIndex } from '@petrel/config';
import type { TlsaRecord } from '@petrel/dns';
import type { Envelope } from '@petrel/proto';
import { type RouteResolver, resolveRoute } from './mx.ts';
import type { PolicyIndex } from './policies.ts';

/** SMTP AUTH at a relay host or smarthost (RFC 4954; only over TLS). */
export interface RelayAuth {
  readonly username: string;
  readonly password: string;
}

/** A relay host: the global smarthost, or a DeliveryPolicy's relay for its destinations. */
export interface RelayHost {
  readonly host: string;
  readonly port: number;
  readonly auth?: RelayAuth | undefined;
}

/** One place to connect to: an address (or host name) and port, and the name TLS should verify. */
export interface Target {
  readonly host: string;
  readonly port: number;
  /** The MX (or relay) host name: TLS server name and the Remote-MTA of DSNs. */
  readonly name: string;
  readonly lmtp: boolean;
  /**
   * 'verified': TLS with a certificate valid for `name` (MTA-STS enforce, policy tls: verified);
   * 'encrypted': TLS with any certificate; 'dane': TLS authenticated by `tlsa` (RFC 7672);
   * default opportunistic.
   */
  readonly tls?: 'verified' | 'encrypted' | 'dane' | undefined;
  /** The usable TLSA records of a 'dane' target. */
  readonly tlsa?: readonly TlsaRecord[] | undefined;
  readonly auth?: RelayAuth | undefined;
  /** Transactions per connection (a DeliveryPolicy's messagesPerConnection). */
  readonly maxMessages?: number | undefined;
}

export type Routing =
  /** `viaMx`: the targets are the domain's MX hosts (MTA-STS applies to those only). */
  | { readonly kind: 'targets'; readonly targets: readonly Target[]; readonly viaMx?: boolean }
  /** No delivery possible now (temporary) or ever (permanent: bounce with this status). */
  | {
      readonly kind: 'fail';
      readonly permanent: boolean;
      readonly status: string;
      readonly code: number;
      readonly reason: string;
    };

export interface RouterDeps {
  readonly domains: () => DomainIndex;
  readonly smarthost?: RelayHost | undefined;
  readonly policies?: PolicyIndex | undefined;
  readonly resolver: RouteResolver;
  /** Port of MX hosts: 25, or a loopback test port (local mode --mx-port). */
  readonly mxPort: number;
  readonly random?: () => number;
}

/**
 * Where an entry goes, in the order to try: the smarthost when one is set; the relay host of the
 * DeliveryPolicy that names the domain; for a managed domain,
 * the inbound routes its MailDomain names (SMTP or LMTP); otherwise the domain's MX hosts
 * (RFC 5321 §5.1), every address of each, in preference order.
 */
export async function route(envelope: Envelope, deps: RouterDeps): Promise<Routing> {
  const relay = deps.smarthost ?? relayOf(deps.policies?.forDomain(envelope.destinationDomain)?.relay);
  if (relay) {
    const { host, port, auth } = relay;
    return { kind: 'targets', targets: [{ host, port, name: host, lmtp: false, ...(auth ? { auth } : {}) }] };
  }
  // known(): mail queued for a draining domain still goes to its routes.
  const inbound = deps.domains().known(envelope.destinationDomain)?.inboundRoutes ?? [];
  if (inbound.length > 0) {
    return {
      kind: 'targets',
      targets: inbound.map((r) => ({
        host: r.host,
        port: r.port,
        name: r.host,
        lmtp: r.protocol === 'lmtp',
      })),
    };
  }
  const result = await resolveRoute(deps.resolver, envelope.destinationDomain, {
    ...(deps.random ? { random: deps.random } : {}),
  });
  switch (result.kind) {
    case 'hosts':
      return {
        kind: 'targets',
        viaMx: true,
        targets: result.hosts.flatMap((h) =>
          h.addresses.map((address) => ({ host: address, port: deps.mxPort, name: h.name, lmtp: false })),
        ),
      };
    case 'nullMx':
      // RFC 7505 §4.3: 556 5.1.10 for a domain that accepts no mail.
      return { kind: 'fail', permanent: true, status: result.status, code: 556, reason: result.reason };
    default:
      return {
        kind: 'fail',
        permanent: result.kind === 'permanent',
        status: result.status,
        code: result.kind === 'permanent' ? 550 : 451,
        reason: result.reason,
      };
  }
}

function relayOf(
  relay:
    | { host: string; port: number; username?: string | undefined; password?: string | undefined }
    | undefined,
): RelayHost | undefined {
  if (relay === undefined) return undefined;
  return {
    host: relay.host,
    port: relay.port,
    ...(relay.username !== undefined && relay.password !== undefined
      ? { auth: { username: relay.username, password: relay.password } }
      : {}),
  };
}
