import type { V1Secret } from '@kubernetes/client-node';
import { type MailDomain, parseDuration } from '@petrel/config';
import { secretData, secretValue } from '../config/compile.ts';
import {
  type DkimAlgorithm,
  type DkimKeyRecord,
  dkimTxtValue,
  generateDkimKey,
  planDkimKeys,
} from '../dkim/index.ts';
import {
  ANNOTATION_DKIM,
  DKIM_DNS_RECORD,
  DKIM_PRIVATE_KEY,
  dkimSecretName,
  LABEL_PURPOSE,
  ownedLabels,
  PURPOSE_DKIM,
} from './names.ts';
import { type KubePorts, type MailDomainObject, ownedBy, ownerOf } from './ports.ts';

/** A DKIM key as the status lists it. */
export interface DkimKeyStatus {
  selector: string;
  algorithm: string;
  state: 'Active' | 'Pending' | 'Retiring';
  secretName: string;
  createdAt: string;
  activatedAt?: string;
  retireAt?: string;
}

export interface DkimOutcome {
  /** Keys that sign now (private keys in the runtime config). */
  signing: { selector: string; algorithm: string; privateKeyPem: string }[];
  /** Keys to publish in DNS (Active, Pending and Retiring), with their TXT values. */
  published: { selector: string; txt: string }[];
  keys: DkimKeyStatus[];
  condition: { status: 'True' | 'False'; reason: string; message: string };
  /** When the plan changes next by itself (activation deadline, retirement), if ever. */
  nextAt?: number;
}

/** The key's record as its Secret's annotation carries it (times as ISO 8601). */
function recordOf(secret: V1Secret): DkimKeyRecord | undefined {
  const text = secret.metadata?.annotations?.[ANNOTATION_DKIM];
  if (text === undefined) return undefined;
  try {
    const raw = JSON.parse(text) as Record<string, unknown>;
    const date = (v: unknown): number | undefined =>
      typeof v === 'string' && Number.isFinite(Date.parse(v)) ? Date.parse(v) : undefined;
    const createdAt = date(raw['createdAt']);
    if (createdAt === undefined) return undefined;
    const activatedAt = date(raw['activatedAt']);
    const retireAt = date(raw['retireAt']);
    return {
      generation: Number(raw['generation']),
      algorithm: raw['algorithm'] as DkimAlgorithm,
      selector: String(raw['selector']),
      state: raw['state'] as DkimKeyRecord['state'],
      createdAt,
      ...(activatedAt ? { activatedAt } : {}),
      ...(retireAt ? { retireAt } : {}),
    };
  } catch {
    return undefined;
  }
}

function annotationOf(record: DkimKeyRecord): string {
  return JSON.stringify({
    generation: record.generation,
    algorithm: record.algorithm,
    selector: record.selector,
    state: record.state,
    createdAt: new Date(record.createdAt).toISOString(),
    ...(record.activatedAt ? { activatedAt: new Date(record.activatedAt).toISOString() } : {}),
    ...(record.retireAt ? { retireAt: new Date(record.retireAt).toISOString() } : {}),
  });
}

/**
 * The DKIM keys of a MailDomain that asks the operator for keys (`spec.dkim.generate`, or
 * `dkim: {}`): generated once into Secrets owned by the MailDomain and never regenerated (the
 * Secrets are the record of truth, their annotation carries each key's state), rotated as the
 * spec says, with a replaced key kept published until `retireAfter` has passed.
 */
export async function reconcileDkim(
  object: MailDomainObject,
  domain: MailDomain,
  kube: KubePorts,
  now: number,
  dnsShows: (selector: string) => boolean | undefined,
): Promise<DkimOutcome> {
  const namespace = object.metadata.namespace;
  const dkim = domain.spec.dkim;
  if (dkim === undefined || (dkim.keys?.length ?? 0) > 0) {
    return {
      signing: [],
      published: [],
      keys: [],
      condition:
        dkim === undefined
          ? {
              status: 'True',
              reason: 'NotConfigured',
              message: 'spec.dkim is not set: outgoing mail is not DKIM-signed',
            }
          : { status: 'True', reason: 'OwnKeys', message: 'signing with the keys of spec.dkim.keys' },
    };
  }
  const generate: Partial<NonNullable<typeof dkim.generate>> = dkim.generate ?? {};
  const spec = {
    algorithms: (generate.algorithms ?? ['rsa-sha256']) as DkimAlgorithm[],
    selectorPrefix: generate.selectorPrefix ?? 'petrel',
    keyGeneration: generate.keyGeneration ?? 1,
    retireAfter: parseDuration(generate.retireAfter ?? '7d'),
    ...(generate.rotateEvery === undefined ? {} : { rotateEvery: parseDuration(generate.rotateEvery) }),
    ...(generate.activateAfter === undefined ? {} : { activateAfter: parseDuration(generate.activateAfter) }),
  };

  const owned = kube
    .secrets(namespace)
    .filter((s) => ownedBy(s, object.metadata.uid) && s.metadata?.labels?.[LABEL_PURPOSE] === PURPOSE_DKIM);
  const bySelector = new Map<string, { secret: V1Secret; record: DkimKeyRecord }>();
  for (const secret of owned) {
    const record = recordOf(secret);
    if (record) bySelector.set(record.selector, { secret, record });
  }
  const plan = planDkimKeys({ spec, keys: [...bySelector.values()].map((k) => k.record), now, dnsShows });

  const pems = new Map<string, string>();
  for (const { secret, record } of bySelector.values()) {
    const pem = secretValue(secret, DKIM_PRIVATE_KEY);
    if (pem !== undefined) pems.set(record.selector, pem);
  }
  for (const created of plan.create) {
    const key = await generateDkimKey(created.algorithm);
    const name = dkimSecretName(object.metadata.name, created.selector);
    const made = await kube.createSecret(namespace, {
      apiVersion: 'v1',
      kind: 'Secret',
      type: 'Opaque',
      metadata: {
        name,
        namespace,
        labels: ownedLabels(object.metadata.name, PURPOSE_DKIM),
        annotations: { [ANNOTATION_DKIM]: annotationOf(created) },
        ownerReferences: [ownerOf(object)],
      },
      data: secretData({ [DKIM_PRIVATE_KEY]: key.privateKeyPem, [DKIM_DNS_RECORD]: key.publicKeyDns }),
    });
    if (made) {
      pems.set(created.selector, key.privateKeyPem);
      kube.event(
        object,
        'Normal',
        'DKIMKeyCreated',
        `DKIM key ${created.selector} (${created.algorithm}) created in Secret ${name}`,
      );
    }
    // Else a key of that selector exists already (a reconcile cut short before its cache saw
    // it): it is kept, and read at the next reconcile, which the Secret's event triggers.
  }
  for (const updated of plan.update) {
    const entry = bySelector.get(updated.selector);
    if (entry?.secret.metadata?.name === undefined) continue;
    await kube.patchSecretAnnotations(namespace, entry.secret.metadata.name, {
      [ANNOTATION_DKIM]: annotationOf(updated),
    });
    if (updated.state !== entry.record.state) {
      kube.event(
        object,
        'Normal',
        `DKIMKey${updated.state}`,
        `DKIM key ${updated.selector} is now ${updated.state}`,
      );
    }
  }
  for (const selector of plan.delete) {
    const entry = bySelector.get(selector);
    if (entry?.secret.metadata?.name === undefined) continue;
    await kube.deleteSecret(namespace, entry.secret.metadata.name);
    kube.event(object, 'Normal', 'DKIMKeyRetired', `DKIM key ${selector} retired and its Secret deleted`);
  }

  const signing = plan.active.flatMap((k) => {
    const pem = pems.get(k.selector);
    return pem === undefined ? [] : [{ selector: k.selector, algorithm: k.algorithm, privateKeyPem: pem }];
  });
  const published = plan.published.flatMap((k) => {
    const pem = pems.get(k.selector);
    return pem === undefined ? [] : [{ selector: k.selector, txt: dkimTxtValue(pem, k.algorithm) }];
  });
  const keys: DkimKeyStatus[] = plan.published.map((k) => ({
    selector: k.selector,
    algorithm: k.algorithm,
    state: k.state,
    secretName: dkimSecretName(object.metadata.name, k.selector),
    createdAt: new Date(k.createdAt).toISOString(),
    ...(k.activatedAt === undefined ? {} : { activatedAt: new Date(k.activatedAt).toISOString() }),
    ...(k.retireAt === undefined ? {} : { retireAt: new Date(k.retireAt).toISOString() }),
  }));
  const missing = spec.algorithms.filter((a) => !signing.some((k) => k.algorithm === a));
  const pending = keys.filter((k) => k.state === 'Pending').map((k) => k.selector);
  const condition =
    missing.length > 0
      ? {
          status: 'False' as const,
          reason: 'KeysMissing',
          message: `no signing key yet for ${missing.join(', ')}`,
        }
      : {
          status: 'True' as const,
          reason: 'KeysActive',
          message:
            `signing with ${signing.map((k) => k.selector).join(', ')}` +
            (pending.length > 0 ? `; ${pending.join(', ')} waits to be seen in DNS before it signs` : ''),
        };
  return {
    signing,
    published,
    keys,
    condition,
    ...(plan.nextAt === undefined ? {} : { nextAt: plan.nextAt }),
  };
}
