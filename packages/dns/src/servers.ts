import { isIP, isIPv4, isIPv6 } from 'node:net';
import { DnsError, DnsErrorCode } from './errors.ts';

const BRACKETED = /^\[([^\]]+)\](?::(\d+))?$/;

function invalid(server: string, why: string): DnsError {
  return new DnsError(DnsErrorCode.InvalidServer, `DNS server ${JSON.stringify(server)}: ${why}`);
}

function checkPort(server: string, text: string): void {
  const port = Number(text);
  if (!/^\d{1,5}$/.test(text) || port < 1 || port > 65_535) throw invalid(server, 'port must be 1-65535');
}

/**
 * Checks one server address in the forms node's `Resolver.setServers` takes: `ip`, `ipv4:port`,
 * `[ipv6]` or `[ipv6]:port`. Names are refused: resolving the resolver would need a resolver.
 */
export function parseServer(text: string): string {
  const server = text.trim();
  const bracketed = BRACKETED.exec(server);
  if (bracketed) {
    if (!isIPv6(bracketed[1] ?? '')) throw invalid(server, 'not an IPv6 address');
    if (bracketed[2] !== undefined) checkPort(server, bracketed[2]);
    return server;
  }
  if (isIP(server) !== 0) return server;
  const colon = server.lastIndexOf(':');
  if (colon > 0 && isIPv4(server.slice(0, colon))) {
    checkPort(server, server.slice(colon + 1));
    return server;
  }
  throw invalid(server, 'expected ip, ipv4:port or [ipv6]:port');
}

/** A comma-separated list (as in PETREL_DNS_SERVERS or `petrel dev --dns-server`); empty → []. */
export function parseServers(list: string): string[] {
  return list
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
    .map(parseServer);
}
