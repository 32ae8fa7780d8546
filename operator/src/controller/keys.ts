import type { KubernetesObject } from '@kubernetes/client-node';

/** A work-queue and cache key: `namespace/name`, or `name` for cluster-scoped objects (as client-go). */
export function objectKey(object: KubernetesObject): string | undefined {
  const name = object.metadata?.name;
  if (typeof name !== 'string' || name === '') return undefined;
  const namespace = object.metadata?.namespace;
  return typeof namespace === 'string' && namespace !== '' ? `${namespace}/${name}` : name;
}

export interface ObjectName {
  namespace: string | undefined;
  name: string;
}

/** The inverse of objectKey. */
export function splitKey(key: string): ObjectName {
  const slash = key.indexOf('/');
  return slash < 0
    ? { namespace: undefined, name: key }
    : { namespace: key.slice(0, slash), name: key.slice(slash + 1) };
}
