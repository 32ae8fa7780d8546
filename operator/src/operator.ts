// Composition root of `petrel operator`: Kubernetes connection, informers per managed
// namespace, leader election, the MailDomain and DeliveryPolicy controllers, and the runtime
// config publisher (NATS Object Store). Everything is built here and passed down.
import { hostname } from 'node:os';
import {
  CoordinationV1Api,
  CoreV1Api,
  EventsV1Api,
  type KubernetesObject,
  type V1Secret,
} from '@kubernetes/client-node';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import {
  API_GROUP,
  type DeliveryPolicy,
  DeliveryPolicySchema,
  type MailDomain,
  MailDomainSchema,
} from '@petrel/config';
import { DnsResolver } from '@petrel/dns';
import { loadConfigKey, publishRuntimeConfig, readRuntimeConfig } from '@petrel/queue';
import { type Located, secretData, secretValue } from './config/compile.ts';
import { RuntimeConfigPublisher } from './config/publisher.ts';
import { parseResource } from './config/resource.ts';
import { Controller } from './controller/controller.ts';
import { isConflict, isNotFound } from './controller/errors.ts';
import { EventRecorder } from './controller/events.ts';
import { Informer } from './controller/informer.ts';
import { loadKubeConfig } from './controller/kubeconfig.ts';
import { LeaderElector } from './controller/leader.ts';
import { listWatchClient } from './controller/listwatch-client.ts';
import type { Logger } from './controller/logger.ts';
import { reconcileDeliveryPolicy } from './deliverypolicy/reconciler.ts';
import { reuseConnections } from './kube-connections.ts';
import { type DrainChecker, postgresDrainChecker } from './maildomain/drain.ts';
import { kubePorts } from './maildomain/kube-ports.ts';
import { CA_SECRET_NAME, LABEL_PURPOSE, ownedLabels, PURPOSE_CA } from './maildomain/names.ts';
import type { MailDomainObject } from './maildomain/ports.ts';
import { reconcileMailDomain } from './maildomain/reconciler.ts';
import type { OperatorCa } from './maildomain/tls.ts';
import { createCa } from './pki/index.ts';

export interface OperatorOptions {
  kubeconfig?: string | undefined;
  /** The operator's own namespace (Lease, CA); default: the kubeconfig's or the pod's. */
  namespace?: string | undefined;
  /** Namespaces whose MailDomains and DeliveryPolicies it manages; default its own. */
  watchNamespaces?: readonly string[] | undefined;
  natsUrl: string;
  configKeyFile: string;
  configBucket?: string | undefined;
  /** Postgres of the recorder: lets a deleted domain finish as soon as its queue drained. */
  databaseUrl?: string | undefined;
  /** DNS checks through this server (host:port); default the system's resolvers. */
  dnsServer?: string | undefined;
  dnsCheckIntervalMs?: number | undefined;
  drainGraceMs?: number | undefined;
  defaultIssuer?: { kind: 'Issuer' | 'ClusterIssuer'; name: string } | undefined;
  identity?: string | undefined;
  leaseName?: string | undefined;
  /** Leader-election timings (tests shorten them). */
  leaseDurationMs?: number | undefined;
  renewDeadlineMs?: number | undefined;
  retryPeriodMs?: number | undefined;
  workers?: number | undefined;
  logger: Logger;
}

export interface OperatorHandle {
  /** Resolves when the operator stopped: 'stopped' (asked to) or 'lost' (leadership lost: exit non-zero). */
  readonly done: Promise<'stopped' | 'lost'>;
  stop(): Promise<void>;
  isLeader(): boolean;
}

const MAILDOMAINS = { group: API_GROUP, version: 'v1alpha1', plural: 'maildomains' };
const DELIVERYPOLICIES = { group: API_GROUP, version: 'v1alpha1', plural: 'deliverypolicies' };
const SECRETS = { group: '', version: 'v1', plural: 'secrets' };

function created(object: KubernetesObject): string {
  const t = object.metadata?.creationTimestamp;
  return t === undefined ? '' : t instanceof Date ? t.toISOString() : String(t);
}

/** Oldest first, then by namespace and name: the first declaration of a domain keeps it. */
function byAge(a: KubernetesObject, b: KubernetesObject): number {
  const ka = `${created(a)} ${a.metadata?.namespace}/${a.metadata?.name}`;
  const kb = `${created(b)} ${b.metadata?.namespace}/${b.metadata?.name}`;
  return ka < kb ? -1 : ka > kb ? 1 : 0;
}

/** Names of Secrets a MailDomain's spec references (passwords, own DKIM keys, webhooks, TLS). */
function referencedSecrets(spec: MailDomain['spec']): Set<string> {
  const names = new Set<string>();
  for (const u of spec.submission?.users ?? []) names.add(u.passwordSecretRef.name);
  for (const k of spec.dkim?.keys ?? []) names.add(k.privateKeySecretRef.name);
  for (const w of spec.webhooks ?? []) names.add(w.secretRef.name);
  if (spec.tls?.secretName) names.add(spec.tls.secretName);
  return names;
}

export async function startOperator(options: OperatorOptions): Promise<OperatorHandle> {
  const log = options.logger;
  const loaded = loadKubeConfig(options.kubeconfig ? { kubeconfig: options.kubeconfig } : {});
  const kc = reuseConnections(loaded.kubeConfig);
  const ownNamespace = options.namespace ?? loaded.namespace ?? 'petrel-system';
  const namespaces = [...new Set(options.watchNamespaces?.length ? options.watchNamespaces : [ownNamespace])];
  const identity = options.identity ?? process.env['POD_NAME'] ?? hostname();
  const key = await loadConfigKey(options.configKeyFile);
  const bucket = options.configBucket;
  const nc: NatsConnection = await connect({ servers: options.natsUrl, name: `petrel-operator ${identity}` });
  const core = kc.makeApiClient(CoreV1Api);
  const client = listWatchClient(kc);

  const informer = <T extends KubernetesObject>(resource: typeof MAILDOMAINS, namespace: string) =>
    new Informer<T>({ client, resource, namespace, logger: log, resyncPeriodMs: 10 * 60_000 });
  const domainInformers = namespaces.map((ns) =>
    informer<MailDomainObject & KubernetesObject>(MAILDOMAINS, ns),
  );
  const policyInformers = namespaces.map((ns) =>
    informer<MailDomainObject & KubernetesObject>(DELIVERYPOLICIES, ns),
  );
  const secretInformers = new Map(namespaces.map((ns) => [ns, informer<V1Secret>(SECRETS, ns)]));
  const all = [...domainInformers, ...policyInformers, ...secretInformers.values()];
  for (const i of all) i.start();

  const events = new EventRecorder({
    api: kc.makeApiClient(EventsV1Api),
    reportingInstance: identity,
    logger: log,
  });
  const kube = kubePorts({
    kubeConfig: kc,
    cachedSecrets: (ns) => secretInformers.get(ns)?.list(ns) ?? [],
    event: (object, type, reason, message) => {
      void events.record({
        type,
        regarding: object as unknown as KubernetesObject,
        reason,
        action: reason,
        note: message,
      });
    },
  });

  // The operator's CA: made once, kept in a Secret of its own namespace, never replaced.
  let ca: Promise<OperatorCa> | undefined;
  const ensureCa = async (): Promise<OperatorCa> => {
    const decode = (s: V1Secret): OperatorCa => ({
      certPem: secretValue(s, 'ca.crt') ?? '',
      keyPem: secretValue(s, 'ca.key') ?? '',
    });
    try {
      return decode(await core.readNamespacedSecret({ name: CA_SECRET_NAME, namespace: ownNamespace }));
    } catch (error) {
      if (!isNotFound(error)) throw error;
    }
    const made = await createCa({ commonName: `Petrel operator CA ${ownNamespace}`, now: new Date() });
    try {
      await core.createNamespacedSecret({
        namespace: ownNamespace,
        body: {
          apiVersion: 'v1',
          kind: 'Secret',
          type: 'Opaque',
          metadata: { name: CA_SECRET_NAME, labels: ownedLabels('operator', PURPOSE_CA) },
          data: secretData({ 'ca.crt': made.certPem, 'ca.key': made.keyPem }),
        },
      });
      log.info({ namespace: ownNamespace, secret: CA_SECRET_NAME }, 'operator CA created');
      return made;
    } catch (error) {
      // Another replica made it first: use theirs.
      if (!isConflict(error)) throw error;
      return decode(await core.readNamespacedSecret({ name: CA_SECRET_NAME, namespace: ownNamespace }));
    }
  };

  const caOnce = (): Promise<OperatorCa> => {
    ca ??= ensureCa().catch((error: unknown) => {
      ca = undefined; // tried again at the next reconcile
      throw error;
    });
    return ca;
  };

  const located = <T>(
    objects: (MailDomainObject & KubernetesObject)[],
    parse: (o: MailDomainObject) => T | undefined,
  ) =>
    objects
      .filter((o) => o.metadata.deletionTimestamp === undefined || (o.metadata.finalizers ?? []).length > 0)
      .sort(byAge)
      .flatMap((o) => {
        const value = parse(o);
        return value === undefined
          ? []
          : [{ value, where: `${o.kind} ${o.metadata.namespace}/${o.metadata.name}` }];
      });
  const domainObjects = () => domainInformers.flatMap((i) => i.list());
  const policyObjects = () => policyInformers.flatMap((i) => i.list());

  const resolver = new DnsResolver({
    ...(options.dnsServer ? { servers: [options.dnsServer] } : {}),
    // DNS checks want fresh answers: the owner is fixing records and waits for the status.
    defaultTtlSeconds: 30,
    maxTtlSeconds: 60,
    negativeTtlSeconds: 10,
  });
  const drain: DrainChecker | undefined = options.databaseUrl
    ? postgresDrainChecker(options.databaseUrl)
    : undefined;

  let mdController: Controller | undefined;
  let dpController: Controller | undefined;
  let publisher: RuntimeConfigPublisher | undefined;

  const startLeading = async (leadership: AbortSignal): Promise<void> => {
    await Promise.all(all.map((i) => i.waitForSync(leadership)));
    const previous = (await readRuntimeConfig(nc, { key, ...(bucket ? { bucket } : {}) }))?.config;
    const pub = new RuntimeConfigPublisher({
      domains: () =>
        located<MailDomain>(
          domainObjects(),
          (o) => parseResource(MailDomainSchema, o).value,
        ) as Located<MailDomain>[],
      policies: () =>
        located<DeliveryPolicy>(policyObjects(), (o) => parseResource(DeliveryPolicySchema, o).value),
      secret: (ns, name) => {
        const s = secretInformers.get(ns)?.get(name, ns);
        return s === undefined
          ? undefined
          : { apiVersion: 'v1' as const, kind: 'Secret' as const, metadata: { name }, data: s.data ?? {} };
      },
      publish: async (config) => {
        await publishRuntimeConfig(nc, config, { key, ...(bucket ? { bucket } : {}) });
      },
      previous,
      onPublished: (sources) => {
        for (const source of sources) {
          mdController?.enqueue(source);
          dpController?.enqueue(source);
        }
      },
      log,
      now: Date.now,
    });
    publisher = pub;
    const md = new Controller({
      name: 'maildomain',
      workers: options.workers ?? 8,
      logger: log,
      reconcile: async (k) => {
        const object = domainInformers.map((i) => i.getByKey(k)).find((o) => o !== undefined);
        if (object === undefined) {
          pub.forget(k);
          return;
        }
        return await reconcileMailDomain(object, {
          kube,
          publisher: pub,
          now: Date.now,
          settings: {
            tls: { ca: caOnce, defaultIssuer: options.defaultIssuer },
            dnsCheckIntervalMs: options.dnsCheckIntervalMs ?? 5 * 60_000,
            resolver,
            drain,
            drainGraceMs: options.drainGraceMs ?? 2 * 60_000,
          },
        });
      },
    });
    const dp = new Controller({
      name: 'deliverypolicy',
      workers: 1,
      logger: log,
      reconcile: async (k) => {
        const object = policyInformers.map((i) => i.getByKey(k)).find((o) => o !== undefined);
        if (object === undefined) {
          pub.schedule();
          return;
        }
        await reconcileDeliveryPolicy(object, { kube, publisher: pub, now: Date.now });
        pub.schedule();
      },
    });
    mdController = md;
    dpController = dp;
    for (const i of domainInformers) md.watch(i);
    for (const i of policyInformers) dp.watch(i);
    for (const [ns, i] of secretInformers) {
      i.addHandler({
        add: (s) => onSecret(ns, s),
        update: (_p, s) => onSecret(ns, s),
        delete: (s) => onSecret(ns, s),
      });
    }
    md.start();
    dp.start();
    pub.schedule();
    log.info({ identity, namespaces }, 'leading: controllers started');
  };

  const onSecret = (ns: string, secret: V1Secret): void => {
    const owner = secret.metadata?.ownerReferences?.find((r) => r.kind === 'MailDomain');
    if (owner && secret.metadata?.labels?.[LABEL_PURPOSE]) {
      mdController?.enqueue(`${ns}/${owner.name}`);
      return;
    }
    const name = secret.metadata?.name ?? '';
    let referenced = false;
    for (const o of domainObjects().filter((d) => d.metadata.namespace === ns)) {
      const parsed = parseResource(MailDomainSchema, o).value;
      if (parsed && referencedSecrets(parsed.spec).has(name)) {
        referenced = true;
        mdController?.enqueue(`${ns}/${o.metadata.name}`);
      }
    }
    for (const p of policyObjects().filter((d) => d.metadata.namespace === ns)) {
      const parsed = parseResource(DeliveryPolicySchema, p).value;
      if (parsed?.spec.relay?.auth?.passwordSecretRef.name === name) {
        referenced = true;
        dpController?.enqueue(`${ns}/${p.metadata.name}`);
      }
    }
    if (referenced) publisher?.schedule();
  };

  let resolveDone: (reason: 'stopped' | 'lost') => void = () => {};
  const done = new Promise<'stopped' | 'lost'>((r) => {
    resolveDone = r;
  });
  const stopControllers = async (): Promise<void> => {
    await Promise.all([mdController?.stop({ timeoutMs: 20_000 }), dpController?.stop({ timeoutMs: 20_000 })]);
    await publisher?.close();
  };
  let shuttingDown = false;
  const elector = new LeaderElector({
    api: kc.makeApiClient(CoordinationV1Api),
    namespace: ownNamespace,
    name: options.leaseName ?? 'petrel-operator',
    identity,
    ...(options.leaseDurationMs ? { leaseDurationMs: options.leaseDurationMs } : {}),
    ...(options.renewDeadlineMs ? { renewDeadlineMs: options.renewDeadlineMs } : {}),
    ...(options.retryPeriodMs ? { retryPeriodMs: options.retryPeriodMs } : {}),
    logger: log,
    onStartedLeading: (leadership) => {
      startLeading(leadership).catch((error) => {
        if (leadership.aborted) return;
        log.error({ err: error }, 'starting the controllers failed; giving up leadership');
        void shutdown('lost');
      });
    },
    onStoppedLeading: (reason) => {
      if (reason === 'lost' && !shuttingDown) {
        log.error({ identity }, 'leadership lost: stopping');
        void shutdown('lost');
      }
    },
    onNewLeader: (leader) => log.info({ leader }, 'leader observed'),
  });
  elector.start();
  log.info({ identity, namespace: ownNamespace, namespaces }, 'operator started; waiting for leadership');

  const shutdown = async (reason: 'stopped' | 'lost'): Promise<void> => {
    if (shuttingDown) return;
    shuttingDown = true;
    // Controllers first (work in flight finishes), then the lease is released for the next leader.
    await stopControllers();
    await elector.stop({ release: reason === 'stopped' });
    for (const i of all) i.stop();
    await drain?.close();
    await nc.close();
    resolveDone(reason);
  };

  return {
    done,
    stop: async () => {
      await shutdown('stopped');
      await done;
    },
    isLeader: () => elector.isLeader(),
  };
}
