// Test builders for runtime configs, in the form the operator writes them.
import { parseRuntimeConfig, RUNTIME_CONFIG_VERSION, type RuntimeConfig } from '../src/runtime.ts';

/** Every inbound check, greylisting and the tarpit off. */
export const INBOUND_OFF = {
  checks: { spf: false, dkim: false, dmarc: false, arc: false, dmarcReject: false },
  greylisting: { enabled: false, delaySeconds: 300, expireSeconds: 3600 },
  tarpit: { enabled: false, delayMs: 0 },
} as const;

/** A runtime-config domain with no routes, no users and INBOUND_OFF; `fields` add or replace. */
export function runtimeDomain(domain: string, fields: Record<string, unknown> = {}): Record<string, unknown> {
  return { source: `mail/${domain}`, domain, inboundRoutes: [], users: [], inbound: INBOUND_OFF, ...fields };
}

/** A parsed runtime config of these domains (e.g. runtimeDomain's). */
export function runtimeConfigOf(domains: readonly unknown[], generation = 1): RuntimeConfig {
  return parseRuntimeConfig({ version: RUNTIME_CONFIG_VERSION, generation, domains }, 'test');
}
