import type { DomainIndex } from '@petrel/config';
import type { Envelope } from '@petrel/proto';

export interface NextHop {
  readonly host: string;
  readonly port: number;
  readonly lmtp: boolean;
}

/**
 * Where an entry goes: the smarthost when one is set; else, for a managed domain, the first
 * inbound route its MailDomain names. MX routing arrives with the delivery issue; until then
 * an entry without a next hop waits in the queue (never dropped).
 */
export function nextHop(
  envelope: Envelope,
  domains: DomainIndex,
  smarthost?: { host: string; port: number },
): NextHop | undefined {
  if (smarthost) return { host: smarthost.host, port: smarthost.port, lmtp: false };
  const route = domains.managed(envelope.destinationDomain)?.inboundRoutes[0];
  return route ? { host: route.host, port: route.port, lmtp: route.protocol === 'lmtp' } : undefined;
}
