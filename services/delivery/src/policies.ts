/**
 * Which DeliveryPolicy shapes a destination (docs/delivery.md, "Delivery policies"): a policy
 * that names the recipient domain (exact beats "*.parent", the longest parent wins) applies to
 * that domain alone; otherwise a policy whose MX host suffix matches one of the domain's MX hosts
 * (the longest suffix wins) applies to all such domains together — the provider roll-up.
 */
import type { RuntimePolicy } from '@petrel/config';

export type PolicyMatch =
  /** Limits for this recipient domain alone. */
  | { readonly scope: 'domain'; readonly policy: RuntimePolicy }
  /** Limits shared by every domain whose MX is under the policy's suffix. */
  | { readonly scope: 'rollup'; readonly policy: RuntimePolicy; readonly suffix: string };

export class PolicyIndex {
  readonly #exact = new Map<string, RuntimePolicy>();
  readonly #wildcard = new Map<string, RuntimePolicy>();
  readonly #suffixes: { suffix: string; policy: RuntimePolicy }[] = [];

  constructor(policies: readonly RuntimePolicy[]) {
    for (const policy of policies) {
      for (const d of policy.domains) {
        if (d.startsWith('*.')) this.#wildcard.set(d.slice(2), policy);
        else this.#exact.set(d, policy);
      }
      for (const suffix of policy.mxHostSuffixes) this.#suffixes.push({ suffix, policy });
    }
    this.#suffixes.sort((a, b) => b.suffix.length - a.suffix.length);
  }

  /** The policy that names this recipient domain, if any. */
  forDomain(domain: string): RuntimePolicy | undefined {
    const d = domain.toLowerCase();
    const exact = this.#exact.get(d);
    if (exact !== undefined) return exact;
    for (let i = d.indexOf('.'); i !== -1; i = d.indexOf('.', i + 1)) {
      const p = this.#wildcard.get(d.slice(i + 1));
      if (p !== undefined) return p;
    }
    return undefined;
  }

  /** The roll-up policy of the first MX host (in preference order) under a configured suffix. */
  forMxHosts(names: readonly string[]): { policy: RuntimePolicy; suffix: string } | undefined {
    if (this.#suffixes.length === 0) return undefined;
    for (const raw of names) {
      const name = raw.toLowerCase().replace(/\.$/, '');
      for (const { suffix, policy } of this.#suffixes) {
        if (name === suffix || name.endsWith(`.${suffix}`)) return { policy, suffix };
      }
    }
    return undefined;
  }

  match(domain: string, mxHosts: readonly string[]): PolicyMatch | undefined {
    const policy = this.forDomain(domain);
    if (policy !== undefined) return { scope: 'domain', policy };
    const rollup = this.forMxHosts(mxHosts);
    return rollup === undefined ? undefined : { scope: 'rollup', ...rollup };
  }
}
