import type { V1Secret } from '@kubernetes/client-node';
import { type MailDomain, parseDuration } from '@petrel/config';
import { secretData, secretValue } from '../config/compile.ts';
import {
  type CertificateAuthority,
  certificateInfo,
  issueServerCertificate,
  needsRenewal,
} from '../pki/index.ts';
import { ownedLabels, PURPOSE_TLS, tlsSecretName } from './names.ts';
import { type KubePorts, type MailDomainObject, ownedBy, ownerOf } from './ports.ts';

/** The operator's own CA (created once, kept in a Secret of the operator's namespace). */
export type OperatorCa = CertificateAuthority;

export interface TlsSettings {
  /** The operator's CA, created on first use. */
  ca(): Promise<OperatorCa>;
  /** The issuer cert-manager Certificates use when a MailDomain names none. */
  defaultIssuer?: { name: string; kind: 'Issuer' | 'ClusterIssuer'; group?: string } | undefined;
  /** Validity of certificates from the operator's CA (default 90 days). */
  validityDays?: number;
}

export interface TlsOutcome {
  material?: { certificatePem: string; privateKeyPem: string };
  status?: {
    source: 'CertManager' | 'Operator' | 'Secret';
    secretName: string;
    notAfter?: string;
    dnsNames: string[];
  };
  condition: { status: 'True' | 'False'; reason: string; message: string };
  nextAt?: number;
}

const CERT_MANAGER = { group: 'cert-manager.io', version: 'v1' } as const;
const DEFAULT_RENEW_BEFORE = '30d';

function material(
  secret: V1Secret | undefined,
): { certificatePem: string; privateKeyPem: string } | undefined {
  const certificatePem = secretValue(secret, 'tls.crt');
  const privateKeyPem = secretValue(secret, 'tls.key');
  return certificatePem && privateKeyPem ? { certificatePem, privateKeyPem } : undefined;
}

export function hostnamesOf(domain: MailDomain): { mx: string; submission: string; all: string[] } {
  const mx = (domain.spec.hostnames?.mx ?? `mx.${domain.spec.domain}`).toLowerCase();
  const submission = (domain.spec.hostnames?.submission ?? `smtp.${domain.spec.domain}`).toLowerCase();
  return { mx, submission, all: [...new Set([mx, submission])] };
}

/**
 * The TLS certificate of a MailDomain's MX and submission host names: a cert-manager
 * Certificate when cert-manager is installed and an issuer is known (mode Auto) or asked for
 * (CertManager); otherwise one from the operator's CA, re-issued before it expires or when the
 * names change (Operator); or a Secret the owner provides (Secret).
 */
export async function reconcileTls(
  object: MailDomainObject,
  domain: MailDomain,
  kube: KubePorts,
  settings: TlsSettings,
  now: number,
): Promise<TlsOutcome> {
  const namespace = object.metadata.namespace;
  const names = hostnamesOf(domain).all;
  const tls = domain.spec.tls;
  const mode = tls?.mode ?? 'Auto';
  const issuer = tls?.issuerRef ?? settings.defaultIssuer;

  if (mode === 'Secret') {
    const secretName = tls?.secretName ?? '';
    const secret = kube.secret(namespace, secretName);
    const pair = material(secret);
    if (pair === undefined) {
      return {
        condition: {
          status: 'False',
          reason: 'SecretNotFound',
          message: `Secret ${secretName} with tls.crt and tls.key not found in namespace ${namespace}`,
        },
      };
    }
    return fromPair(pair, 'Secret', secretName, now);
  }

  const certManager =
    mode === 'CertManager' ||
    (mode === 'Auto' && issuer !== undefined && (await kube.certManagerInstalled()));
  const secretName = tlsSecretName(object.metadata.name);
  if (certManager) {
    if (!(await kube.certManagerInstalled())) {
      return {
        condition: {
          status: 'False',
          reason: 'CertManagerNotInstalled',
          message: 'spec.tls.mode is CertManager but the API server does not serve cert-manager.io/v1',
        },
      };
    }
    if (issuer === undefined) {
      return {
        condition: {
          status: 'False',
          reason: 'IssuerNotSpecified',
          message: 'spec.tls.issuerRef is required',
        },
      };
    }
    await kube.applyCertificate(namespace, {
      apiVersion: `${CERT_MANAGER.group}/${CERT_MANAGER.version}`,
      kind: 'Certificate',
      metadata: {
        name: secretName,
        namespace,
        labels: ownedLabels(object.metadata.name, PURPOSE_TLS),
        ownerReferences: [ownerOf(object)],
      },
      spec: {
        secretName,
        dnsNames: names,
        issuerRef: {
          name: issuer.name,
          kind: issuer.kind ?? 'Issuer',
          group: issuer.group ?? CERT_MANAGER.group,
        },
        usages: ['server auth', 'digital signature', 'key encipherment'],
        privateKey: { algorithm: 'ECDSA', size: 256, rotationPolicy: 'Always' },
        secretTemplate: { labels: ownedLabels(object.metadata.name, PURPOSE_TLS) },
      },
    });
    const pair = material(kube.secret(namespace, secretName));
    const certificate = await kube.certificate(namespace, secretName);
    const ready = readyCondition(certificate);
    if (pair === undefined) {
      return {
        status: { source: 'CertManager', secretName, dnsNames: names },
        condition: {
          status: 'False',
          reason: 'Issuing',
          message: `cert-manager Certificate ${secretName} not issued yet${ready?.message ? `: ${ready.message}` : ''}`,
        },
      };
    }
    return fromPair(pair, 'CertManager', secretName, now, names);
  }

  // The operator's own CA.
  const existing = kube.secret(namespace, secretName);
  if (existing !== undefined && !ownedBy(existing, object.metadata.uid)) {
    return {
      condition: {
        status: 'False',
        reason: 'SecretConflict',
        message: `Secret ${secretName} exists and does not belong to this MailDomain; delete it or use spec.tls.mode Secret`,
      },
    };
  }
  const ca = await settings.ca();
  const renewBeforeMs = parseDuration(tls?.renewBefore ?? DEFAULT_RENEW_BEFORE);
  let pair = material(existing);
  const renewal = needsRenewal(pair?.certificatePem, {
    now: new Date(now),
    renewBeforeMs,
    dnsNames: names,
    caCertPem: ca.certPem,
    ...(pair ? { keyPem: pair.privateKeyPem } : {}),
  });
  const reason = renewal?.message;
  if (reason !== undefined) {
    const issued = await issueServerCertificate({
      ca,
      dnsNames: names,
      now: new Date(now),
      validityDays: settings.validityDays ?? 90,
    });
    pair = { certificatePem: issued.certPem, privateKeyPem: issued.keyPem };
    const secret: V1Secret = {
      apiVersion: 'v1',
      kind: 'Secret',
      type: 'kubernetes.io/tls',
      metadata: {
        name: secretName,
        namespace,
        labels: ownedLabels(object.metadata.name, PURPOSE_TLS),
        ownerReferences: [ownerOf(object)],
        ...(existing?.metadata?.resourceVersion
          ? { resourceVersion: existing.metadata.resourceVersion }
          : {}),
      },
      data: secretData({ 'tls.crt': issued.certPem, 'tls.key': issued.keyPem, 'ca.crt': ca.certPem }),
    };
    if (existing === undefined) {
      if (!(await kube.createSecret(namespace, secret))) {
        // Made by a reconcile cut short; read again at the next one.
        return {
          condition: { status: 'False', reason: 'Issuing', message: 'certificate Secret being written' },
          nextAt: now,
        };
      }
    } else await kube.replaceSecret(namespace, secret);
    kube.event(
      object,
      'Normal',
      'CertificateIssued',
      `certificate for ${names.join(', ')} issued by the operator's CA (${reason}), valid until ${issued.notAfter.toISOString()}`,
    );
  }
  const outcome = fromPair(
    pair as { certificatePem: string; privateKeyPem: string },
    'Operator',
    secretName,
    now,
    names,
  );
  const notAfter = outcome.status?.notAfter ? Date.parse(outcome.status.notAfter) : undefined;
  return notAfter === undefined ? outcome : { ...outcome, nextAt: notAfter - renewBeforeMs };
}

function readyCondition(
  certificate: Record<string, unknown> | undefined,
): { status?: string; message?: string } | undefined {
  const conditions = (
    certificate?.['status'] as
      | { conditions?: { type: string; status?: string; message?: string }[] }
      | undefined
  )?.conditions;
  return conditions?.find((c) => c.type === 'Ready');
}

function fromPair(
  pair: { certificatePem: string; privateKeyPem: string },
  source: 'CertManager' | 'Operator' | 'Secret',
  secretName: string,
  now: number,
  expectedNames?: readonly string[],
): TlsOutcome {
  let info: ReturnType<typeof certificateInfo>;
  try {
    info = certificateInfo(pair.certificatePem);
  } catch (error) {
    return {
      condition: {
        status: 'False',
        reason: 'InvalidCertificate',
        message: `Secret ${secretName}: tls.crt does not parse (${error instanceof Error ? error.message : String(error)})`,
      },
    };
  }
  const status = { source, secretName, notAfter: info.notAfter.toISOString(), dnsNames: [...info.dnsNames] };
  if (info.notAfter.getTime() <= now) {
    return {
      status,
      condition: {
        status: 'False',
        reason: 'Expired',
        message: `certificate in Secret ${secretName} expired at ${status.notAfter}`,
      },
    };
  }
  const uncovered = (expectedNames ?? []).filter((n) => !info.dnsNames.includes(n));
  if (uncovered.length > 0) {
    return {
      material: pair,
      status,
      condition: {
        status: 'False',
        reason: 'NamesMissing',
        message: `certificate in Secret ${secretName} does not cover ${uncovered.join(', ')} yet`,
      },
    };
  }
  return {
    material: pair,
    status,
    condition: {
      status: 'True',
      reason: 'Issued',
      message: `${source === 'Operator' ? 'operator CA' : source === 'CertManager' ? 'cert-manager' : 'provided'} certificate for ${info.dnsNames.join(', ')}, valid until ${status.notAfter}`,
    },
  };
}
