import type { z } from 'zod';
import { prettifyError } from 'zod';
import type { MailDomainObject } from '../maildomain/ports.ts';

export interface Parsed<T> {
  value?: T;
  error?: string;
}

const caches = new WeakMap<z.ZodType, WeakMap<object, Parsed<unknown>>>();

/**
 * A resource as the services' schema reads it (with its defaults; the CRD validated it
 * already), with metadata.generation carried along so the publisher can say which generation
 * it published. Cached per object: informers replace an object on every change, and the
 * publisher and the Secret handler parse every resource often.
 */
export function parseResource<S extends z.ZodType>(schema: S, object: MailDomainObject): Parsed<z.output<S>> {
  let cache = caches.get(schema);
  if (cache === undefined) {
    cache = new WeakMap();
    caches.set(schema, cache);
  }
  const cached = cache.get(object);
  if (cached !== undefined) return cached as Parsed<z.output<S>>;
  const parsed = schema.safeParse({
    apiVersion: object.apiVersion,
    kind: object.kind,
    metadata: { name: object.metadata.name, namespace: object.metadata.namespace },
    spec: object.spec,
  });
  let result: Parsed<z.output<S>>;
  if (!parsed.success) result = { error: prettifyError(parsed.error) };
  else {
    (parsed.data as { metadata: { generation?: number } }).metadata.generation = object.metadata.generation;
    result = { value: parsed.data };
  }
  cache.set(object, result);
  return result;
}
