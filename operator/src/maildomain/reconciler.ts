import { type MailDomain, MailDomainSchema, parseDuration } from '@petrel/config';
import type { DnsResolver } from '@petrel/dns';
import type { RuntimeConfigPublisher } from '../config/publisher.ts';
import { parseResource } from '../config/resource.ts';
import { type Condition, setCondition } from '../controller/conditions.ts';
import { desiredRecords, mtaStsPolicy, verifyRecords } from '../dns/index.ts';

type DnsResolverLike = Pick<DnsResolver, 'settled'>;

import { reconcileDkim } from './dkim.ts';
import type { DrainChecker } from './drain.ts';
import {
  ANNOTATION_DRAIN,
  FINALIZER,
  LABEL_PURPOSE,
  PURPOSE_DKIM,
  PURPOSE_TLS,
  tlsSecretName,
} from './names.ts';
import { type KubePorts, type MailDomainObject, ownedBy } from './ports.ts';
import { hostnamesOf, reconcileTls, type TlsSettings } from './tls.ts';

export const ConditionType = {
  Ready: 'Ready',
  DKIMReady: 'DKIMReady',
  CertificateReady: 'CertificateReady',
  ConfigPublished: 'ConfigPublished',
  DNSVerified: 'DNSVerified',
} as const;

export type { Condition };

export interface MailDomainSettings {
  tls: TlsSettings;
  /** How often DNS is asked whether it shows the records (default 5 minutes). */
  dnsCheckIntervalMs: number;
  /** Resolver of the DNS checks; undefined turns them off (DNSVerified Unknown). */
  resolver?: DnsResolverLike | undefined;
  /** Queued mail of a deleted domain; undefined waits for the domain's queue lifetime instead. */
  drain?: DrainChecker | undefined;
  /** After the draining config is published: time for in-flight mail to reach the recorder (default 2 min). */
  drainGraceMs: number;
}

export interface MailDomainDeps {
  kube: KubePorts;
  publisher: RuntimeConfigPublisher;
  settings: MailDomainSettings;
  now(): number;
}

export interface ReconcileResult {
  requeueAfterMs?: number;
}

const DAY = 86_400_000;

/**
 * Reconciles one MailDomain: its DKIM keys, its certificate, its part of the runtime config and
 * its status (conditions, the DNS records to publish and whether DNS shows them). Deleting it
 * stops accepting its mail, waits for its queued mail, then removes what the operator made.
 * Level-based: everything is derived from the objects as they are now, so a reconcile cut
 * short (a killed operator) is completed by the next one.
 */
export async function reconcileMailDomain(
  object: MailDomainObject,
  deps: MailDomainDeps,
): Promise<ReconcileResult> {
  const now = deps.now();
  const source = `${object.metadata.namespace}/${object.metadata.name}`;
  const { value: domain, error } = parseResource(MailDomainSchema, object);
  const conditions: Omit<Condition, 'lastTransitionTime'>[] = [];
  const generation = object.metadata.generation;
  const cond = (
    type: string,
    c: { status: 'True' | 'False' | 'Unknown'; reason: string; message: string },
  ): void => {
    conditions.push({ type, ...c, ...(generation === undefined ? {} : { observedGeneration: generation }) });
  };

  if (domain === undefined) {
    cond(ConditionType.Ready, { status: 'False', reason: 'InvalidSpec', message: error ?? 'invalid spec' });
    await writeStatus(object, deps, conditions, {});
    return {};
  }
  if (object.metadata.deletionTimestamp !== undefined) return await finalize(object, domain, deps, now);
  if (!(object.metadata.finalizers ?? []).includes(FINALIZER))
    await deps.kube.addFinalizer(object, FINALIZER);

  const previous = statusOf(object);
  const names = hostnamesOf(domain);
  const verified = new Map((previous.dnsRecords ?? []).map((r) => [`${r.type} ${r.name}`, r.verified]));
  const dkim = await reconcileDkim(object, domain, deps.kube, now, (selector) =>
    verified.get(`TXT ${selector}._domainkey.${domain.spec.domain}`),
  );
  cond(ConditionType.DKIMReady, dkim.condition);

  let tls: Awaited<ReturnType<typeof reconcileTls>>;
  try {
    tls = await reconcileTls(object, domain, deps.kube, deps.settings.tls, now);
  } catch (err) {
    tls = {
      condition: {
        status: 'False',
        reason: 'IssueFailed',
        message: err instanceof Error ? err.message : String(err),
      },
    };
  }
  cond(ConditionType.CertificateReady, tls.condition);

  const hash = deps.publisher.setMaterial(source, {
    dkimKeys: dkim.signing,
    tls: tls.material,
    hostnames: names.all,
    draining: false,
  });
  const published = deps.publisher.state(source);
  const configDone =
    published.listed && published.resourceGeneration === generation && published.materialHash === hash;
  // A spec change with the same material (routes, users, limits) still needs a publish.
  if (!configDone) deps.publisher.schedule();
  const before = previous.conditions?.find((c) => c.type === ConditionType.ConfigPublished);
  if (!deps.publisher.settled && before !== undefined && before.observedGeneration === generation) {
    // A new leader has not compiled yet: what the last one published still stands (no flapping).
    cond(ConditionType.ConfigPublished, {
      status: before.status,
      reason: before.reason,
      message: before.message,
    });
  } else {
    cond(
      ConditionType.ConfigPublished,
      configDone
        ? {
            status: 'True',
            reason: 'Published',
            message: `in runtime config generation ${published.configGeneration}`,
          }
        : published.problems.length > 0
          ? { status: 'False', reason: 'CompileFailed', message: published.problems.join('; ') }
          : {
              status: 'False',
              reason: 'Publishing',
              message: 'waiting for the runtime config to be published',
            },
    );
  }

  // DNS: what the owner must publish, and whether DNS shows it (checked every interval).
  const dns = domain.spec.dns;
  const mtaSts = {
    mode: dns?.mtaSts?.mode ?? 'testing',
    maxAgeSeconds: dns?.mtaSts?.maxAgeSeconds ?? 604_800,
  } as const;
  const policy = mtaStsPolicy({ ...mtaSts, mxHosts: [names.mx] });
  const records = desiredRecords({
    domain: domain.spec.domain,
    mxHost: names.mx,
    ...(dns?.spf === undefined ? {} : { spf: dns.spf }),
    dmarc: { policy: dns?.dmarc?.policy ?? 'none', ...(dns?.dmarc?.rua ? { rua: dns.dmarc.rua } : {}) },
    mtaSts: { policy },
    dkim: dkim.published,
  });
  const recordsChanged =
    JSON.stringify(records.map((r) => [r.type, r.name, r.value])) !==
    JSON.stringify((previous.dnsRecords ?? []).map((r) => [r.type, r.name, r.value]));
  const lastCheck = previous.dnsCheckedAt ? Date.parse(previous.dnsCheckedAt) : 0;
  const verify = (dns?.verify ?? true) && deps.settings.resolver !== undefined;
  let dnsRecords = records.map((r) => ({
    ...r,
    ...(verified.has(`${r.type} ${r.name}`) ? { verified: verified.get(`${r.type} ${r.name}`) } : {}),
  }));
  let dnsCheckedAt = previous.dnsCheckedAt;
  if (verify && (recordsChanged || now - lastCheck >= deps.settings.dnsCheckIntervalMs)) {
    const results = await verifyRecords(records, { resolver: deps.settings.resolver as DnsResolverLike });
    dnsRecords = results.records.map((r) => ({
      purpose: r.purpose,
      type: r.type,
      name: r.name,
      value: r.value,
      verified: r.verified,
    }));
    dnsCheckedAt = new Date(now).toISOString();
  }
  const missing = dnsRecords.filter((r) => r.verified !== true);
  cond(
    ConditionType.DNSVerified,
    !verify
      ? { status: 'Unknown', reason: 'NotChecked', message: 'DNS checks are turned off' }
      : dnsCheckedAt === undefined
        ? { status: 'Unknown', reason: 'Pending', message: 'not checked yet' }
        : missing.length === 0
          ? { status: 'True', reason: 'RecordsFound', message: 'DNS shows every record of status.dnsRecords' }
          : {
              status: 'False',
              reason: 'RecordsMissing',
              message: `DNS does not show ${missing.map((r) => `${r.purpose} ${r.name}`).join(', ')}`,
            },
  );

  // Ready is the operator's side only: DNS is the owner's job and does not gate it.
  const gating = conditions.filter((c) => c.type !== ConditionType.DNSVerified);
  const notReady = gating.filter((c) => c.status !== 'True');
  cond(
    ConditionType.Ready,
    notReady.length === 0
      ? { status: 'True', reason: 'Ready', message: `accepting and relaying mail for ${domain.spec.domain}` }
      : {
          status: 'False',
          reason: notReady[0]?.reason ?? 'NotReady',
          message: notReady.map((c) => `${c.type}: ${c.message}`).join('; '),
        },
  );

  await writeStatus(object, deps, conditions, {
    dnsRecords,
    dkimKeys: dkim.keys,
    ...(tls.status ? { certificate: tls.status } : {}),
    ...(configDone && published.configGeneration !== undefined
      ? { configGeneration: published.configGeneration }
      : {}),
    ...(dnsCheckedAt ? { dnsCheckedAt } : {}),
    mtaStsPolicy: policy,
  });

  const next = [
    dkim.nextAt,
    tls.nextAt,
    verify ? (dnsCheckedAt ? Date.parse(dnsCheckedAt) : now) + deps.settings.dnsCheckIntervalMs : undefined,
  ]
    .filter((t): t is number => t !== undefined)
    .map((t) => Math.max(1000, t - now));
  return next.length > 0 ? { requeueAfterMs: Math.min(...next, DAY) } : {};
}

/**
 * A deleted MailDomain: published as draining (the ingress refuses new mail for it, workers
 * still deliver what is queued), then, once its queued mail is gone, its Secrets and
 * Certificate are deleted, it leaves the runtime config and the finalizer is removed.
 */
async function finalize(
  object: MailDomainObject,
  domain: MailDomain,
  deps: MailDomainDeps,
  now: number,
): Promise<ReconcileResult> {
  const source = `${object.metadata.namespace}/${object.metadata.name}`;
  if (!(object.metadata.finalizers ?? []).includes(FINALIZER)) return {};
  const namespace = object.metadata.namespace;
  const generation = object.metadata.generation;
  const conditions: Omit<Condition, 'lastTransitionTime'>[] = [];
  const cond = (
    type: string,
    c: { status: 'True' | 'False' | 'Unknown'; reason: string; message: string },
  ): void => {
    conditions.push({ type, ...c, ...(generation === undefined ? {} : { observedGeneration: generation }) });
  };
  const deletedAt = Date.parse(String(object.metadata.deletionTimestamp));

  // Keys and certificate stay in the config while draining: queued mail is still signed and routed.
  const skip = object.metadata.annotations?.[ANNOTATION_DRAIN] === 'skip';
  let drained = skip;
  let message = 'queued mail is delivered before the keys and routes go';
  let requeueAfterMs = 10_000;
  if (!skip) {
    const draining = { ...currentMaterial(deps, source), draining: true };
    const hash = deps.publisher.setMaterial(source, draining);
    const stillPublished = deps.publisher.state(source);
    if (stillPublished.listed && stillPublished.materialHash !== hash) {
      message = 'publishing the runtime config that stops accepting mail for the domain';
      requeueAfterMs = 1000;
    } else if (deps.settings.drain !== undefined) {
      const waitUntil = deletedAt + deps.settings.drainGraceMs;
      if (now < waitUntil) {
        message = 'waiting for mail in flight to be recorded';
        requeueAfterMs = waitUntil - now;
      } else {
        try {
          const queued = await deps.settings.drain.queued(domain.spec.domain);
          drained = queued === 0;
          message = `${queued} recipient(s) still queued for or from ${domain.spec.domain}`;
          // Few domains drain at once: asking every few seconds is cheap and ends the drain promptly.
          requeueAfterMs = 5000;
        } catch (error) {
          message = `cannot ask the database how much mail is queued: ${error instanceof Error ? error.message : String(error)}`;
          requeueAfterMs = 30_000;
        }
      }
    } else {
      const lifetime = parseDuration(domain.spec.outbound?.queueLifetime ?? '5d');
      drained = now >= deletedAt + lifetime;
      message = `no database to ask: waiting for the queue lifetime (${domain.spec.outbound?.queueLifetime ?? '5d'}) after deletion`;
      requeueAfterMs = Math.max(1000, deletedAt + lifetime - now);
    }
  }
  if (!drained) {
    cond(ConditionType.Ready, { status: 'False', reason: 'Draining', message });
    await writeStatus(object, deps, conditions, {});
    return { requeueAfterMs: Math.min(requeueAfterMs, 60_000) };
  }

  // Drained: remove what the operator made, then leave the config, then let go.
  for (const secret of deps.kube.secrets(namespace)) {
    const purpose = secret.metadata?.labels?.[LABEL_PURPOSE];
    if (
      ownedBy(secret, object.metadata.uid) &&
      (purpose === PURPOSE_DKIM || purpose === PURPOSE_TLS) &&
      secret.metadata?.name
    ) {
      await deps.kube.deleteSecret(namespace, secret.metadata.name);
    }
  }
  if (await deps.kube.certManagerInstalled()) {
    const certificate = await deps.kube.certificate(namespace, tlsSecretName(object.metadata.name));
    const meta = certificate?.['metadata'] as { ownerReferences?: { uid: string }[] } | undefined;
    if (certificate && ownedBy({ metadata: meta ?? {} }, object.metadata.uid)) {
      await deps.kube.deleteCertificate(namespace, tlsSecretName(object.metadata.name));
    }
  }
  deps.publisher.forget(source);
  await deps.publisher.flush();
  if (deps.publisher.state(source).listed) return { requeueAfterMs: 1000 };
  await deps.kube.removeFinalizer(object, FINALIZER);
  deps.kube.event(
    object,
    'Normal',
    'Removed',
    `${domain.spec.domain} drained; keys, certificate and config removed`,
  );
  return {};
}

function currentMaterial(deps: MailDomainDeps, source: string) {
  return deps.publisher.material(source) ?? { dkimKeys: [], hostnames: [], draining: true };
}

interface StatusShape {
  conditions?: Condition[];
  dnsRecords?: { purpose: string; type: string; name: string; value: string; verified?: boolean }[];
  dnsCheckedAt?: string;
}

function statusOf(object: MailDomainObject): StatusShape {
  return (object.status ?? {}) as StatusShape;
}

/** Conditions keep their lastTransitionTime unless their status changes (KEP-1623). */
export function mergeConditions(
  previous: readonly Condition[] | undefined,
  next: readonly Omit<Condition, 'lastTransitionTime'>[],
  now: number,
): Condition[] {
  // Only the conditions computed now are kept (in this order), each through setCondition.
  return next.map(
    (c) =>
      setCondition(
        previous?.filter((p) => p.type === c.type),
        c,
        new Date(now),
      )[0] as Condition,
  );
}

export async function writeStatus(
  object: MailDomainObject,
  deps: { kube: KubePorts; now(): number },
  conditions: Omit<Condition, 'lastTransitionTime'>[],
  rest: Record<string, unknown>,
): Promise<void> {
  const previous = statusOf(object);
  const status = {
    ...(object.status ?? {}),
    ...rest,
    ...(object.metadata.generation === undefined ? {} : { observedGeneration: object.metadata.generation }),
    conditions: mergeConditions(previous.conditions, conditions, deps.now()),
  };
  // Unchanged status is not written: a write would trigger another reconcile, forever. Compared
  // with sorted keys: the API server returns fields in its own order.
  if (stableJson(status) === stableJson(object.status ?? {})) return;
  await deps.kube.patchStatus(object, status);
}

/** JSON with object keys sorted, for comparing what we would write with what the server has. */
export function stableJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v !== null && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(
          Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
        )
      : v,
  );
}
