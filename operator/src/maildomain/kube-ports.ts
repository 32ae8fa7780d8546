import {
  CoreV1Api,
  CustomObjectsApi,
  type KubeConfig,
  type KubernetesObject,
  KubernetesObjectApi,
  PatchStrategy,
  setHeaderOptions,
  type V1Secret,
} from '@kubernetes/client-node';
import { API_GROUP } from '@petrel/config';
import { applyObject, FIELD_MANAGER, getOrUndefined } from '../controller/apply.ts';
import { isConflict, isNotFound } from '../controller/errors.ts';
import { addFinalizer, removeFinalizer } from '../controller/finalizers.ts';
import type { KubePorts, MailDomainObject } from './ports.ts';

const MERGE = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
const CERTS = { group: 'cert-manager.io', version: 'v1', plural: 'certificates' } as const;
const MAILDOMAINS = { group: API_GROUP, version: 'v1alpha1', plural: 'maildomains' } as const;
const PLURALS: Record<string, string> = { MailDomain: 'maildomains', DeliveryPolicy: 'deliverypolicies' };

export interface KubePortsOptions {
  kubeConfig: KubeConfig;
  /** Secrets from the informers' cache. */
  cachedSecrets(namespace: string): readonly V1Secret[];
  event(domain: MailDomainObject, type: 'Normal' | 'Warning', reason: string, message: string): void;
  /** How long the cert-manager discovery answer is reused (default 60 s). */
  discoveryTtlMs?: number;
}

/** KubePorts on the API server: reads from the caches, writes with client-node. */
export function kubePorts(options: KubePortsOptions): KubePorts {
  const core = options.kubeConfig.makeApiClient(CoreV1Api);
  const custom = options.kubeConfig.makeApiClient(CustomObjectsApi);
  const objects = KubernetesObjectApi.makeApiClient(options.kubeConfig);
  let discovered: { at: number; installed: boolean } | undefined;
  const ttl = options.discoveryTtlMs ?? 60_000;

  return {
    secrets: (namespace) => options.cachedSecrets(namespace),
    secret: (namespace, name) => options.cachedSecrets(namespace).find((s) => s.metadata?.name === name),
    async createSecret(namespace, secret) {
      try {
        await core.createNamespacedSecret({ namespace, body: secret, fieldManager: FIELD_MANAGER });
        return true;
      } catch (error) {
        if (isConflict(error)) return false;
        throw error;
      }
    },
    async replaceSecret(namespace, secret) {
      await core.replaceNamespacedSecret({
        name: secret.metadata?.name ?? '',
        namespace,
        body: secret,
        fieldManager: FIELD_MANAGER,
      });
    },
    async patchSecretAnnotations(namespace, name, annotations) {
      await core.patchNamespacedSecret(
        { name, namespace, body: { metadata: { annotations } }, fieldManager: FIELD_MANAGER },
        MERGE,
      );
    },
    async deleteSecret(namespace, name) {
      await getOrUndefined(() => core.deleteNamespacedSecret({ name, namespace }));
    },
    async certificate(namespace, name) {
      const found = await getOrUndefined(() =>
        custom.getNamespacedCustomObject({ ...CERTS, namespace, name }),
      );
      return found as Record<string, unknown> | undefined;
    },
    async applyCertificate(_namespace, certificate) {
      await applyObject(objects, certificate as KubernetesObject);
    },
    async deleteCertificate(namespace, name) {
      await getOrUndefined(() => custom.deleteNamespacedCustomObject({ ...CERTS, namespace, name }));
    },
    async certManagerInstalled() {
      const now = Date.now();
      if (discovered !== undefined && now - discovered.at < ttl) return discovered.installed;
      let installed: boolean;
      try {
        const list = (await custom.getAPIResources({ group: CERTS.group, version: CERTS.version })) as {
          resources?: { name: string }[];
        };
        installed = list.resources?.some((r) => r.name === CERTS.plural) ?? false;
      } catch (error) {
        if (!isNotFound(error)) throw error;
        installed = false;
      }
      discovered = { at: now, installed };
      return installed;
    },
    async patchStatus(domain, status) {
      // A merge patch of the whole status: the operator is its only writer.
      await custom.patchNamespacedCustomObjectStatus(
        {
          ...MAILDOMAINS,
          plural: PLURALS[domain.kind] ?? MAILDOMAINS.plural,
          namespace: domain.metadata.namespace,
          name: domain.metadata.name,
          body: { status },
          fieldManager: FIELD_MANAGER,
        },
        MERGE,
      );
    },
    async addFinalizer(domain, finalizer) {
      await addFinalizer(objects, domain as unknown as KubernetesObject, finalizer);
    },
    async removeFinalizer(domain, finalizer) {
      await removeFinalizer(objects, domain as unknown as KubernetesObject, finalizer);
    },
    event: options.event,
  };
}
