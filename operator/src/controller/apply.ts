import {
  type CustomObjectsApi,
  type KubernetesObject,
  type KubernetesObjectApi,
  PatchStrategy,
  setHeaderOptions,
} from '@kubernetes/client-node';
import { isNotFound, KubeError, KubeErrorCode } from './errors.ts';

/**
 * The one field manager of the operator. Server-side apply records which manager owns which field;
 * a stable name is what lets the next apply remove a field the operator no longer sends.
 */
export const FIELD_MANAGER = 'petrel-operator';

export interface ApplyOptions {
  /** Validate and default on the server without persisting. */
  dryRun?: boolean;
}

/**
 * Server-side applies `intent`: the complete set of fields the operator wants on the object (fields
 * it sent before and leaves out now are removed). Creates the object if absent. Forces conflicts:
 * these are objects the operator owns, so another manager's edit of our fields is overwritten.
 * Status is a subresource and is not applied this way (see applyStatus).
 */
export async function applyObject<T extends KubernetesObject>(
  api: KubernetesObjectApi,
  intent: T,
  options: ApplyOptions = {},
): Promise<T> {
  requireIdentity(intent);
  // The server rejects an apply that carries managedFields (e.g. an object read back and edited).
  const metadata = intent.metadata ? { ...intent.metadata, managedFields: undefined } : intent.metadata;
  return api.patch(
    { ...intent, metadata },
    undefined,
    options.dryRun ? 'All' : undefined,
    FIELD_MANAGER,
    true,
    PatchStrategy.ServerSideApply,
  );
}

/** Resolves to undefined when `request` fails with 404 Not Found; other failures reject. */
export async function getOrUndefined<T>(request: () => Promise<T>): Promise<T | undefined> {
  try {
    return await request();
  } catch (error) {
    if (isNotFound(error)) return undefined;
    throw error;
  }
}

export interface ObjectRef {
  apiVersion: string;
  kind: string;
  name: string;
  namespace?: string | undefined;
}

/** Reads any object by apiVersion/kind/name; undefined when it does not exist. */
export function readObject<T extends KubernetesObject>(
  api: KubernetesObjectApi,
  ref: ObjectRef,
): Promise<T | undefined> {
  const metadata =
    ref.namespace === undefined ? { name: ref.name } : { name: ref.name, namespace: ref.namespace };
  return getOrUndefined(() => api.read<T>({ apiVersion: ref.apiVersion, kind: ref.kind, metadata }));
}

/** A custom resource: `namespace` undefined for a cluster-scoped one. */
export interface CustomResourceRef {
  group: string;
  version: string;
  plural: string;
  kind: string;
  name: string;
  namespace?: string | undefined;
}

/** Reads a custom resource; undefined when it does not exist. */
export function readCustomObject<T extends KubernetesObject>(
  api: CustomObjectsApi,
  ref: CustomResourceRef,
): Promise<T | undefined> {
  const { group, version, plural, name, namespace } = ref;
  return getOrUndefined<T>(() =>
    namespace === undefined
      ? api.getClusterCustomObject({ group, version, plural, name })
      : api.getNamespacedCustomObject({ group, version, namespace, plural, name }),
  );
}

export interface ApplyStatusOptions {
  /**
   * Precondition: fail with 409 Conflict unless the object is still at this resourceVersion. Use it
   * when the status was computed from an object read earlier and must not overwrite newer news.
   */
  resourceVersion?: string;
}

/**
 * Server-side applies `status` to a custom resource's status subresource, as FIELD_MANAGER with
 * force. SSA rather than a merge patch: the status sent is the complete intent, so a field (or, with
 * `x-kubernetes-list-type: map`, a condition) the operator stops sending is removed instead of
 * lingering, and a merge patch would replace the conditions array wholesale anyway. Because one
 * manager owns the whole status, a reconciler must send all of it (start from the object's current
 * conditions and change its own with setCondition), never just the part it computed.
 */
export function applyStatus<T extends KubernetesObject>(
  api: CustomObjectsApi,
  ref: CustomResourceRef,
  status: object,
  options: ApplyStatusOptions = {},
): Promise<T> {
  const { group, version, plural, kind, name, namespace } = ref;
  const metadata: Record<string, string> = { name };
  if (namespace !== undefined) metadata['namespace'] = namespace;
  if (options.resourceVersion !== undefined) metadata['resourceVersion'] = options.resourceVersion;
  const body = { apiVersion: `${group}/${version}`, kind, metadata, status };
  const headers = setHeaderOptions('Content-Type', PatchStrategy.ServerSideApply);
  const common = { group, version, plural, name, body, fieldManager: FIELD_MANAGER, force: true };
  return namespace === undefined
    ? api.patchClusterCustomObjectStatus(common, headers)
    : api.patchNamespacedCustomObjectStatus({ ...common, namespace }, headers);
}

function requireIdentity(object: KubernetesObject): void {
  if (!object.apiVersion || !object.kind || !object.metadata?.name) {
    throw new KubeError(
      KubeErrorCode.InvalidObject,
      `an applied object needs apiVersion, kind and metadata.name (got ${object.kind ?? '?'}/${object.metadata?.name ?? '?'})`,
    );
  }
}
