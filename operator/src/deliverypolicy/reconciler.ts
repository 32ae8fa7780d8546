import { DeliveryPolicySchema } from '@petrel/config';
import type { RuntimeConfigPublisher } from '../config/publisher.ts';
import { parseResource } from '../config/resource.ts';
import type { KubePorts, MailDomainObject } from '../maildomain/ports.ts';
import { type Condition, ConditionType, writeStatus } from '../maildomain/reconciler.ts';

/** A DeliveryPolicy as the API server returns it. */
export type DeliveryPolicyObject = MailDomainObject;

/**
 * A DeliveryPolicy has nothing of its own to make: it is compiled into the runtime config with
 * the rest, and its status says whether the published config carries its current generation.
 */
export async function reconcileDeliveryPolicy(
  object: DeliveryPolicyObject,
  deps: { kube: KubePorts; publisher: RuntimeConfigPublisher; now(): number },
): Promise<void> {
  const source = `${object.metadata.namespace}/${object.metadata.name}`;
  const generation = object.metadata.generation;
  const { error } = parseResource(DeliveryPolicySchema, object);
  const conditions: Omit<Condition, 'lastTransitionTime'>[] = [];
  const observed = generation === undefined ? {} : { observedGeneration: generation };
  const state = deps.publisher.state(source);
  const published = error === undefined && state.listed && state.resourceGeneration === generation;
  const before = (object.status?.['conditions'] as Condition[] | undefined)?.find(
    (c) => c.type === ConditionType.ConfigPublished,
  );
  const carried =
    error === undefined &&
    !deps.publisher.settled &&
    before !== undefined &&
    before.observedGeneration === generation
      ? { status: before.status, reason: before.reason, message: before.message }
      : undefined;
  const config = carried
    ? carried
    : error
      ? { status: 'False' as const, reason: 'InvalidSpec', message: error }
      : published
        ? {
            status: 'True' as const,
            reason: 'Published',
            message: `in runtime config generation ${state.configGeneration}`,
          }
        : state.problems.length > 0
          ? { status: 'False' as const, reason: 'CompileFailed', message: state.problems.join('; ') }
          : {
              status: 'False' as const,
              reason: 'Publishing',
              message: 'waiting for the runtime config to be published',
            };
  conditions.push({ type: ConditionType.ConfigPublished, ...config, ...observed });
  conditions.push({
    type: ConditionType.Ready,
    ...(config.status === 'True'
      ? { status: 'True' as const, reason: 'Ready', message: 'the delivery workers apply this policy' }
      : { status: 'False' as const, reason: config.reason, message: config.message }),
    ...observed,
  });
  await writeStatus(object, deps, conditions, published ? { configGeneration: state.configGeneration } : {});
}
