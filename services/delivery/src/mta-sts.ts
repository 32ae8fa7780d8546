/**
 * MTA-STS (RFC 8461): a domain publishes `_mta-sts.<domain>` TXT "v=STSv1; id=…" and a policy at
 * https://mta-sts.<domain>/.well-known/mta-sts.txt naming its MX hosts and a mode. In "enforce"
 * mode mail goes only to MX hosts the policy names, over TLS with a certificate that validates
 * for the host; otherwise it is deferred. Policies are cached up to their max_age and refreshed
 * when the TXT id changes (§5.1); a cached policy survives a failed refresh.
 */
import type { LookupFunction } from 'node:net';
import { type DnsResolver, RrType } from '@petrel/dns';
import { Agent, request } from 'undici';

export type StsMode = 'enforce' | 'testing' | 'none';

export interface StsPolicy {
  readonly id: string;
  readonly mode: StsMode;
  /** MX patterns: "mx.example.com" or "*.example.com" (one leftmost label). */
  readonly mx: readonly string[];
  readonly maxAgeSeconds: number;
  readonly fetchedAt: number;
}

/** §3.1: exactly one TXT record starting with v=STSv1; its id (1-32 alphanumerics). */
export function parseStsRecord(records: readonly (readonly string[])[]): string | undefined {
  const sts = records.map((chunks) => chunks.join('')).filter((r) => /^v=STSv1\s*(;|$)/.test(r));
  if (sts.length !== 1) return undefined;
  const id = /(?:^|;)\s*id=([A-Za-z0-9]{1,32})\s*(;|$)/.exec(sts[0] as string)?.[1];
  return id;
}

/** §3.2: "key: value" lines (CRLF or LF); version STSv1, mode, max_age and mx lines. */
export function parsePolicy(text: string): Omit<StsPolicy, 'id' | 'fetchedAt'> | undefined {
  let version: string | undefined;
  let mode: StsMode | undefined;
  let maxAge: number | undefined;
  const mx: string[] = [];
  for (const line of text.split(/\r?\n/)) {
    const m = /^([A-Za-z0-9_]+):[ \t]*(.*?)[ \t]*$/.exec(line);
    if (m === null) continue;
    const [, key, value] = m as unknown as [string, string, string];
    if (key === 'version') version = value;
    else if (key === 'mode' && (value === 'enforce' || value === 'testing' || value === 'none')) mode = value;
    else if (key === 'max_age' && /^\d{1,10}$/.test(value)) maxAge = Math.min(Number(value), 31_557_600);
    else if (key === 'mx' && value !== '') mx.push(value.toLowerCase());
  }
  if (version !== 'STSv1' || mode === undefined || maxAge === undefined) return undefined;
  if (mode !== 'none' && mx.length === 0) return undefined;
  return { mode, mx, maxAgeSeconds: maxAge };
}

/** §4.1: an MX host matches a pattern exactly, or "*.d" matches one label left of d. */
export function mxMatches(patterns: readonly string[], host: string): boolean {
  const name = host.toLowerCase().replace(/\.$/, '');
  return patterns.some((p) => {
    if (!p.startsWith('*.')) return p === name;
    const rest = p.slice(1);
    return name.endsWith(rest) && !name.slice(0, -rest.length).includes('.') && name.length > rest.length;
  });
}

/**
 * MtaStsOptions.txt through the resolver's `settled`: most domains publish no MTA-STS record, and
 * a thrown copy of the cached NXDOMAIN for every message was ~0.7 % of the worker.
 */
export function stsTxtVia(resolver: Pick<DnsResolver, 'settled'>): MtaStsOptions['txt'] {
  return async (name) => {
    const outcome = await resolver.settled(name, RrType.TXT);
    return outcome.ok ? outcome.value : undefined;
  };
}

export interface MtaStsOptions {
  /**
   * TXT lookups (our cached resolver); the answer is only read. Undefined, or a thrown error, when
   * there is none: no record, or the lookup failed (both keep a cached policy, §5.1).
   */
  readonly txt: (name: string) => Promise<readonly (readonly string[])[] | undefined>;
  /** Address lookups for the policy host (our resolver), so tests and --dns-server apply here too. */
  readonly lookup?: LookupFunction;
  /** Extra CA certificates to trust for the policy host (tests). */
  readonly ca?: string | Buffer | undefined;
  /** HTTPS port of policy hosts: 443 (tests point it at a loopback server). */
  readonly port?: number;
  readonly timeoutMs?: number;
  readonly now?: () => number;
}

const MAX_POLICY_BYTES = 64 * 1024;

export class MtaSts {
  readonly #options: MtaStsOptions;
  readonly #cache = new Map<string, StsPolicy>();
  readonly #agent: Agent;

  constructor(options: MtaStsOptions) {
    this.#options = options;
    this.#agent = new Agent({
      connect: {
        ...(options.ca === undefined ? {} : { ca: options.ca }),
        ...(options.lookup === undefined ? {} : { lookup: options.lookup }),
        rejectUnauthorized: true,
      },
    });
  }

  /** The policy in force for a domain, or undefined (none published, or none valid). */
  async policy(domain: string): Promise<StsPolicy | undefined> {
    const now = (this.#options.now ?? Date.now)();
    const cached = this.#cache.get(domain);
    const fresh = cached !== undefined && now < cached.fetchedAt + cached.maxAgeSeconds * 1000;
    let records: readonly (readonly string[])[] | undefined;
    try {
      records = await this.#options.txt(`_mta-sts.${domain}`);
    } catch {
      records = undefined;
    }
    // §5.1: no record, or a DNS failure, keeps a cached policy.
    const id = records === undefined ? undefined : parseStsRecord(records);
    if (id === undefined) return fresh ? cached : undefined;
    if (fresh && cached.id === id) return cached;
    try {
      const policy = await this.#fetch(domain, id, now);
      if (policy !== undefined) this.#cache.set(domain, policy);
      return policy ?? (fresh ? cached : undefined);
    } catch {
      return fresh ? cached : undefined;
    }
  }

  async #fetch(domain: string, id: string, now: number): Promise<StsPolicy | undefined> {
    const port = this.#options.port ?? 443;
    const url = `https://mta-sts.${domain}${port === 443 ? '' : `:${port}`}/.well-known/mta-sts.txt`;
    const timeout = this.#options.timeoutMs ?? 10_000;
    // §3.3: no redirects; 200 only; text/plain.
    const response = await request(url, {
      dispatcher: this.#agent,
      headersTimeout: timeout,
      bodyTimeout: timeout,
    });
    if (
      response.statusCode !== 200 ||
      !/^text\/plain\b/i.test(String(response.headers['content-type'] ?? ''))
    ) {
      await response.body.dump();
      return undefined;
    }
    let size = 0;
    const chunks: Buffer[] = [];
    for await (const chunk of response.body) {
      size += (chunk as Buffer).length;
      if (size > MAX_POLICY_BYTES) {
        await response.body.dump();
        return undefined;
      }
      chunks.push(chunk as Buffer);
    }
    const parsed = parsePolicy(Buffer.concat(chunks).toString('utf8'));
    return parsed === undefined ? undefined : { ...parsed, id, fetchedAt: now };
  }

  async close(): Promise<void> {
    await this.#agent.close();
  }
}

/** A net/tls `lookup` that resolves through our DnsResolver (A records); the answer is only read. */
export function lookupVia(resolve: (name: string) => Promise<readonly string[]>): LookupFunction {
  return ((hostname: string, options: { all?: boolean }, callback: (...args: unknown[]) => void) => {
    resolve(hostname).then(
      (addresses) => {
        const first = addresses[0];
        if (first === undefined) {
          callback(Object.assign(new Error(`no address for ${hostname}`), { code: 'ENOTFOUND' }));
        } else if (options?.all) {
          callback(
            null,
            addresses.map((address) => ({ address, family: address.includes(':') ? 6 : 4 })),
          );
        } else {
          callback(null, first, first.includes(':') ? 6 : 4);
        }
      },
      (error: unknown) => callback(error),
    );
  }) as unknown as LookupFunction;
}
