/**
 * metav1.Condition helpers (KEP-1623): one entry per `type`; `lastTransitionTime` moves only when
 * `status` changes, so it says since when the condition has held, not when we last looked.
 */
export type ConditionStatus = 'True' | 'False' | 'Unknown';

export interface Condition {
  /** CamelCase, e.g. `Ready`, `DnsVerified`. */
  type: string;
  status: ConditionStatus;
  /** The metadata.generation the condition was computed from. */
  observedGeneration?: number;
  /** RFC 3339, whole seconds (what metav1.Time stores). */
  lastTransitionTime: string;
  /** CamelCase, non-empty: a machine-readable cause. */
  reason: string;
  /** Human-readable detail; may be empty. */
  message: string;
}

export interface ConditionUpdate {
  type: string;
  status: ConditionStatus;
  reason: string;
  message?: string;
  observedGeneration?: number;
}

/**
 * Returns `conditions` with `update` applied (the input is not modified): a new type is appended, an
 * existing one is replaced in place. `lastTransitionTime` is `now` only for a new type or a changed
 * status; otherwise the previous value is kept.
 */
export function setCondition(
  conditions: readonly Condition[] | undefined,
  update: ConditionUpdate,
  now: Date,
): Condition[] {
  const list = conditions ?? [];
  const previous = list.find((condition) => condition.type === update.type);
  const next: Condition = {
    type: update.type,
    status: update.status,
    ...(update.observedGeneration === undefined ? {} : { observedGeneration: update.observedGeneration }),
    lastTransitionTime:
      previous !== undefined && previous.status === update.status ? previous.lastTransitionTime : timeOf(now),
    reason: update.reason,
    message: update.message ?? '',
  };
  if (previous === undefined) return [...list, next];
  return list.map((condition) => (condition === previous ? next : condition));
}

/** Returns `conditions` without the `type` entry. */
export function removeCondition(conditions: readonly Condition[] | undefined, type: string): Condition[] {
  return (conditions ?? []).filter((condition) => condition.type !== type);
}

export function findCondition(
  conditions: readonly Condition[] | undefined,
  type: string,
): Condition | undefined {
  return conditions?.find((condition) => condition.type === type);
}

/** The status of `type`; a missing condition is `Unknown`. */
export function conditionStatus(conditions: readonly Condition[] | undefined, type: string): ConditionStatus {
  return findCondition(conditions, type)?.status ?? 'Unknown';
}

export function isConditionTrue(conditions: readonly Condition[] | undefined, type: string): boolean {
  return conditionStatus(conditions, type) === 'True';
}

/**
 * RFC 3339 with whole seconds: metav1.Time drops fractions, so writing them would make every write
 * look like a change when compared with what the server gives back.
 */
export function timeOf(date: Date): string {
  return `${date.toISOString().slice(0, 19)}Z`;
}
