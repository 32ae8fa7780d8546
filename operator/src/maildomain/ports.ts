import type { KubernetesObject, V1OwnerReference, V1Secret } from '@kubernetes/client-node';
import { controllerReference } from '../controller/owner.ts';

/** A MailDomain as the API server returns it (spec validated by the CRD schema, status ours). */
export interface MailDomainObject {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace: string;
    uid: string;
    generation?: number;
    resourceVersion?: string;
    creationTimestamp?: string | Date;
    deletionTimestamp?: string | Date;
    finalizers?: string[];
    annotations?: Record<string, string>;
    labels?: Record<string, string>;
  };
  spec: unknown;
  status?: Record<string, unknown>;
}

/** The reference the objects a MailDomain owns carry to it (garbage collection, blockOwnerDeletion). */
export function ownerOf(domain: MailDomainObject): V1OwnerReference {
  return controllerReference(domain as unknown as KubernetesObject);
}

export function ownedBy(
  object: { metadata?: { ownerReferences?: { uid: string }[] } },
  uid: string,
): boolean {
  return object.metadata?.ownerReferences?.some((r) => r.uid === uid) ?? false;
}

/**
 * What a MailDomain reconcile needs from Kubernetes: reads from the informers' caches, writes
 * to the API server. Kept narrow so the reconcile reads as the domain logic it is.
 */
export interface KubePorts {
  /** Secrets of a namespace from the cache. */
  secrets(namespace: string): readonly V1Secret[];
  secret(namespace: string, name: string): V1Secret | undefined;
  /** Creates a Secret; false when one of that name exists already (it is never overwritten). */
  createSecret(namespace: string, secret: V1Secret): Promise<boolean>;
  /** Replaces a Secret the operator owns (resourceVersion checked: a 409 requeues). */
  replaceSecret(namespace: string, secret: V1Secret): Promise<void>;
  patchSecretAnnotations(namespace: string, name: string, annotations: Record<string, string>): Promise<void>;
  deleteSecret(namespace: string, name: string): Promise<void>;
  /** cert-manager Certificates, when cert-manager's API is served. */
  certificate(namespace: string, name: string): Promise<Record<string, unknown> | undefined>;
  applyCertificate(namespace: string, certificate: Record<string, unknown>): Promise<void>;
  deleteCertificate(namespace: string, name: string): Promise<void>;
  /** Whether cert-manager.io/v1 Certificates are served (discovery, refreshed periodically). */
  certManagerInstalled(): Promise<boolean>;
  patchStatus(domain: MailDomainObject, status: Record<string, unknown>): Promise<void>;
  addFinalizer(domain: MailDomainObject, finalizer: string): Promise<void>;
  removeFinalizer(domain: MailDomainObject, finalizer: string): Promise<void>;
  event(domain: MailDomainObject, type: 'Normal' | 'Warning', reason: string, message: string): void;
}
