import { type KubernetesObject, type KubernetesObjectApi, PatchStrategy } from '@kubernetes/client-node';
import { FIELD_MANAGER } from './apply.ts';
import { isNotFound, KubeError, KubeErrorCode } from './errors.ts';

export function hasFinalizer(object: KubernetesObject, finalizer: string): boolean {
  return object.metadata?.finalizers?.includes(finalizer) ?? false;
}

/**
 * Adds `finalizer` to `object` (as read, with its resourceVersion); no request if it is there.
 * Resolves to the updated object.
 *
 * A JSON merge patch of metadata.finalizers carrying metadata.resourceVersion: a merge patch replaces
 * the whole list, and the resourceVersion precondition is what keeps it from dropping a finalizer
 * another controller added meanwhile (the server answers 409 Conflict; the controller requeues and
 * retries with a fresh read). Works the same for built-in and custom resources through one client;
 * a JSON patch with a `test` op would need the resource's URL, which only the typed APIs know.
 */
export async function addFinalizer<T extends KubernetesObject>(
  api: KubernetesObjectApi,
  object: T,
  finalizer: string,
): Promise<T> {
  if (hasFinalizer(object, finalizer)) return object;
  return patchFinalizers(api, object, [...(object.metadata?.finalizers ?? []), finalizer]);
}

/**
 * Removes `finalizer` (and only it) from `object`; no request if it is absent. Resolves to the
 * updated object, or undefined when the object is gone (removing the last finalizer of an object
 * being deleted lets the server delete it).
 */
export async function removeFinalizer<T extends KubernetesObject>(
  api: KubernetesObjectApi,
  object: T,
  finalizer: string,
): Promise<T | undefined> {
  if (!hasFinalizer(object, finalizer)) return object;
  const rest = (object.metadata?.finalizers ?? []).filter((entry) => entry !== finalizer);
  try {
    return await patchFinalizers(api, object, rest);
  } catch (error) {
    if (isNotFound(error)) return undefined;
    throw error;
  }
}

function patchFinalizers<T extends KubernetesObject>(
  api: KubernetesObjectApi,
  object: T,
  finalizers: string[],
): Promise<T> {
  const { apiVersion, kind } = object;
  const { name, namespace, resourceVersion } = object.metadata ?? {};
  if (!apiVersion || !kind || !name || !resourceVersion) {
    throw new KubeError(
      KubeErrorCode.InvalidObject,
      `a finalizer change needs apiVersion, kind, metadata.name and metadata.resourceVersion (got ${kind ?? '?'}/${name ?? '?'})`,
    );
  }
  const metadata = { name, ...(namespace ? { namespace } : {}), resourceVersion, finalizers };
  return api.patch(
    { apiVersion, kind, metadata } as T,
    undefined,
    undefined,
    FIELD_MANAGER,
    undefined,
    PatchStrategy.MergePatch,
  );
}
