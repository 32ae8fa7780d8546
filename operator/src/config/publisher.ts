import { createHash } from 'node:crypto';
import type { DeliveryPolicy, MailDomain, RuntimeConfig, RuntimeDomain, Secret } from '@petrel/config';
import {
  type CompileProblem,
  compileRuntimeConfig,
  type DomainMaterial,
  type Located,
  sourceOf,
} from './compile.ts';

export interface PublisherLog {
  info(fields: object, msg: string): void;
  warn(fields: object, msg: string): void;
  error(fields: object, msg: string): void;
}

export interface PublisherDeps {
  /** Every MailDomain the operator sees now, oldest first (the first declaration of a domain wins). */
  domains(): readonly Located<MailDomain>[];
  policies(): readonly Located<DeliveryPolicy>[];
  secret(namespace: string, name: string): Secret | undefined;
  /** Writes the config where the data plane reads it (NATS Object Store in a cluster, a file locally). */
  publish(config: RuntimeConfig): Promise<void>;
  /** The config in force before this process started: its entries stand in for domains not reconciled yet. */
  previous?: RuntimeConfig | undefined;
  /** Called after a publish with the sources whose published state changed (their status follows). */
  onPublished(sources: readonly string[]): void;
  log: PublisherLog;
  now(): number;
  /** Changes within this window are published together (default 200 ms). */
  debounceMs?: number;
}

/** What the published config says about one source (a MailDomain or DeliveryPolicy). */
export interface PublishedState {
  /** The generation of the last published config (absent: nothing published yet). */
  readonly configGeneration?: number;
  /** The resource's metadata.generation that config was compiled from; absent when left out. */
  readonly resourceGeneration?: number;
  /** The material fingerprint it carried (MailDomains). */
  readonly materialHash?: string;
  /** Why the resource is not in the config. */
  readonly problems: readonly string[];
  /** Whether the published config lists it (a draining domain is listed). */
  readonly listed: boolean;
}

/** A fingerprint of a domain's material, so a reconciler can tell whether its material was published. */
export function materialHash(material: DomainMaterial): string {
  return createHash('sha256')
    .update(
      JSON.stringify({
        d: material.dkimKeys.map((k) => [k.selector, k.algorithm, k.privateKeyPem]),
        t: material.tls ? [material.tls.certificatePem, material.tls.privateKeyPem] : null,
        h: material.hostnames,
        r: material.draining,
      }),
    )
    .digest('hex')
    .slice(0, 16);
}

/**
 * Compiles and publishes the runtime config whenever a resource, a Secret or a domain's
 * material changes, debounced. Never publishes a config that drops a domain it cannot compile
 * right now because of a transient gap: a domain not yet reconciled since start keeps the
 * material of the config in force before; a domain whose spec breaks is left out and its
 * problems are reported to its status (the data plane then refuses its mail, as for a domain
 * that is not declared). Only the leader runs one.
 */
export class RuntimeConfigPublisher {
  readonly #deps: PublisherDeps;
  readonly #material = new Map<string, { material: DomainMaterial; hash: string }>();
  readonly #state = new Map<string, PublishedState>();
  #previousByDomain: Map<string, RuntimeDomain>;
  #lastContent = '';
  #settled = false;
  #lastGeneration: number;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #again = false;
  #closed = false;
  /** How long the last compile and publish took: bursts are published less often when it is slow. */
  #lastDurationMs = 0;

  constructor(deps: PublisherDeps) {
    this.#deps = deps;
    this.#previousByDomain = new Map((deps.previous?.domains ?? []).map((d) => [d.source, d]));
    this.#lastGeneration = deps.previous?.generation ?? 0;
    if (deps.previous) this.#lastContent = configContent(deps.previous);
  }

  /** A MailDomain's current material (from its reconcile). */
  setMaterial(source: string, material: DomainMaterial): string {
    const hash = materialHash(material);
    if (this.#material.get(source)?.hash !== hash) {
      this.#material.set(source, { material, hash });
      this.schedule();
    }
    return hash;
  }

  /** The resource is gone: its material is dropped (it leaves the config at the next publish). */
  forget(source: string): void {
    this.#material.delete(source);
    this.#previousByDomain.delete(source);
    this.schedule();
  }

  /** The material last set for a source (in this process). */
  material(source: string): DomainMaterial | undefined {
    return this.#material.get(source)?.material;
  }

  state(source: string): PublishedState {
    return this.#state.get(source) ?? { problems: [], listed: false };
  }

  /** Something the config depends on changed (a resource, a Secret): compile and publish soon. */
  schedule(): void {
    if (this.#closed) return;
    if (this.#timer !== undefined) return;
    // A publish compiles and encrypts every domain: with many domains it takes tens of ms, so
    // a burst of changes (hundreds of new MailDomains) waits a few publish-times between them.
    const delay = Math.min(2000, Math.max(this.#deps.debounceMs ?? 200, this.#lastDurationMs * 5));
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      void this.flush();
    }, delay);
  }

  /** Compiles and publishes now (one at a time; a request during a run runs once more after it). */
  async flush(): Promise<void> {
    if (this.#running) {
      this.#again = true;
      return await this.#running;
    }
    this.#running = (async () => {
      try {
        do {
          this.#again = false;
          await this.#publishOnce();
        } while (this.#again && !this.#closed);
      } finally {
        this.#running = undefined;
      }
    })();
    return await this.#running;
  }

  async #publishOnce(): Promise<void> {
    const started = performance.now();
    try {
      await this.#compileAndPublish();
    } finally {
      this.#lastDurationMs = performance.now() - started;
    }
  }

  async #compileAndPublish(): Promise<void> {
    const domains = this.#deps.domains();
    const policies = this.#deps.policies();
    const materialFor = (domain: MailDomain): DomainMaterial | undefined => {
      const source = sourceOf(domain);
      const own = this.#material.get(source);
      if (own) return own.material;
      const previous = this.#previousByDomain.get(source);
      if (previous === undefined) return undefined;
      return {
        dkimKeys: previous.dkimKeys,
        tls: previous.tls,
        hostnames: previous.hostnames,
        draining: previous.draining,
      };
    };
    const generation = Math.max(this.#lastGeneration + 1, this.#deps.now());
    // A domain with no material yet (created, not reconciled) is not published half-made
    // (accepting mail, but without its keys and certificate); its reconcile publishes it.
    const result = compileRuntimeConfig({
      domains: domains.filter(({ value }) => materialFor(value) !== undefined),
      policies,
      secret: (namespace, name) => this.#deps.secret(namespace, name),
      material: materialFor,
      generation,
    });
    const content = configContent(result.config);
    let configGeneration = this.#lastGeneration;
    if (content !== this.#lastContent) {
      try {
        await this.#deps.publish(result.config);
      } catch (error) {
        this.#deps.log.error({ err: error }, 'publishing the runtime config failed; retrying');
        // Retried by the next change or in a few seconds.
        setTimeout(() => this.schedule(), 2000).unref();
        return;
      }
      this.#lastContent = content;
      this.#lastGeneration = generation;
      configGeneration = generation;
      this.#deps.log.info(
        { generation, domains: result.config.domains.length, policies: result.config.policies.length },
        'runtime config published',
      );
    }
    this.#record(domains, policies, result.problems, result.config, configGeneration);
    this.#settled = true;
  }

  /** Whether this process has compiled (and, if needed, published) at least once: state() is known. */
  get settled(): boolean {
    return this.#settled;
  }

  #record(
    domains: readonly Located<MailDomain>[],
    policies: readonly Located<DeliveryPolicy>[],
    problems: readonly CompileProblem[],
    config: RuntimeConfig,
    configGeneration: number,
  ): void {
    const listed = new Set([...config.domains.map((d) => d.source), ...config.policies.map((p) => p.source)]);
    const changed: string[] = [];
    const next = new Map<string, PublishedState>();
    const put = (source: string, generation: number | undefined, hash: string | undefined): void => {
      const own = problems.filter((p) => p.source === source).map((p) => p.message);
      const isListed = listed.has(source);
      const entry = {
        ...(isListed && generation !== undefined ? { resourceGeneration: generation } : {}),
        ...(isListed && hash !== undefined ? { materialHash: hash } : {}),
        problems: own,
        listed: isListed,
      };
      const before = this.#state.get(source);
      const { configGeneration: _previousGeneration, ...beforeEntry } = before ?? {
        problems: [],
        listed: false,
      };
      // The config generation that first carried the entry as it is now: later publishes for
      // other resources do not touch it (or every publish would requeue every resource).
      if (before !== undefined && JSON.stringify(beforeEntry) === JSON.stringify(entry)) {
        next.set(source, before);
        return;
      }
      next.set(source, { ...(configGeneration > 0 ? { configGeneration } : {}), ...entry });
      changed.push(source);
    };
    for (const { value } of domains) {
      const source = sourceOf(value);
      put(source, generationOf(value), this.#material.get(source)?.hash);
    }
    for (const { value } of policies) put(sourceOf(value), generationOf(value), undefined);
    for (const source of this.#state.keys()) if (!next.has(source)) changed.push(source);
    this.#state.clear();
    for (const [k, v] of next) this.#state.set(k, v);
    if (changed.length > 0) this.#deps.onPublished(changed);
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#running;
  }
}

/** Kubernetes' metadata.generation, carried on the parsed resource's metadata. */
function generationOf(resource: MailDomain | DeliveryPolicy): number | undefined {
  const generation = (resource.metadata as { generation?: unknown }).generation;
  return typeof generation === 'number' ? generation : undefined;
}

/** The config without its generation: an unchanged config is not published (or written) again. */
export function configContent(config: RuntimeConfig): string {
  return JSON.stringify({ ...config, generation: 0 });
}
