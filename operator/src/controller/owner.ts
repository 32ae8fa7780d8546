import type { KubernetesObject, V1OwnerReference } from '@kubernetes/client-node';
import { KubeError, KubeErrorCode } from './errors.ts';

/**
 * The ownerReference that makes `owner` the controller of another object: the garbage collector
 * deletes the child with its owner, and blockOwnerDeletion keeps a foreground deletion of the owner
 * waiting for the child. Owner and child must be in the same namespace (or the owner cluster-scoped).
 */
export function controllerReference(owner: KubernetesObject): V1OwnerReference {
  const { apiVersion, kind } = owner;
  const name = owner.metadata?.name;
  const uid = owner.metadata?.uid;
  if (!apiVersion || !kind || !name || !uid) {
    throw new KubeError(
      KubeErrorCode.InvalidObject,
      `an owner needs apiVersion, kind, metadata.name and metadata.uid (got ${kind ?? '?'}/${name ?? '?'}); use the object as read from the server`,
    );
  }
  return { apiVersion, kind, name, uid, controller: true, blockOwnerDeletion: true };
}

/** The ownerReference marked controller: true, if any. */
export function controllerOf(object: KubernetesObject): V1OwnerReference | undefined {
  return object.metadata?.ownerReferences?.find((reference) => reference.controller === true);
}

/** True when `owner` (matched by uid) is the controller of `object`. */
export function isControlledBy(object: KubernetesObject, owner: KubernetesObject): boolean {
  const uid = owner.metadata?.uid;
  return uid !== undefined && controllerOf(object)?.uid === uid;
}

/**
 * A key mapper for Controller.watch on child objects: the queue key of the child's controller when
 * that controller is a `kind` of `group` (any version), else nothing. The owner is taken to be in the
 * child's namespace unless `clusterScoped`.
 */
export function ownerKey(
  group: string,
  kind: string,
  options: { clusterScoped?: boolean } = {},
): (object: KubernetesObject) => string | undefined {
  return (object) => {
    const reference = controllerOf(object);
    if (reference === undefined || reference.kind !== kind) return undefined;
    const slash = reference.apiVersion.indexOf('/');
    const referenceGroup = slash < 0 ? '' : reference.apiVersion.slice(0, slash);
    if (referenceGroup !== group) return undefined;
    const namespace = options.clusterScoped ? undefined : object.metadata?.namespace;
    return namespace ? `${namespace}/${reference.name}` : reference.name;
  };
}
