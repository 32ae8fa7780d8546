import { randomBytes } from 'node:crypto';
import {
  type EventsV1Api,
  type EventsV1Event,
  type KubernetesObject,
  V1MicroTime,
} from '@kubernetes/client-node';
import { type Clock, systemClock } from './clock.ts';
import type { Logger } from './logger.ts';

export const REPORTING_CONTROLLER = 'petrel.dev/operator';

export type EventType = 'Normal' | 'Warning';

export interface EventInput {
  type: EventType;
  /** The object the event is about. */
  regarding: KubernetesObject;
  /** CamelCase cause, e.g. `DkimKeyRotated` (at most 128 characters). */
  reason: string;
  /** CamelCase action taken or failed, e.g. `Rotate` (at most 128 characters). */
  action: string;
  /** Human-readable detail (cut to 1 kB). */
  note?: string;
}

export interface EventRecorderOptions {
  api: EventsV1Api;
  /** This process: the pod name (the same identity as in leader election). */
  reportingInstance: string;
  reportingController?: string;
  /** An identical event (same object, type, reason, action, note) within this window is dropped. */
  dedupWindowMs?: number;
  clock?: Clock;
  logger: Logger;
}

const MAX_REMEMBERED = 4096;

/**
 * Writes events.k8s.io/v1 Events. Recording never throws (an event is a courtesy, a failed write is
 * only logged) and identical events are dropped for a short window, so a reconcile in a hot error
 * loop cannot flood the API server.
 */
export class EventRecorder {
  private readonly api: EventsV1Api;
  private readonly reportingInstance: string;
  private readonly reportingController: string;
  private readonly dedupWindowMs: number;
  private readonly clock: Clock;
  private readonly logger: Logger;
  /** Dedup key → time sent; insertion order is age order (re-sent keys are moved to the end). */
  private readonly sent = new Map<string, number>();

  constructor(options: EventRecorderOptions) {
    this.api = options.api;
    this.reportingInstance = options.reportingInstance.slice(0, 128);
    this.reportingController = options.reportingController ?? REPORTING_CONTROLLER;
    this.dedupWindowMs = options.dedupWindowMs ?? 60_000;
    this.clock = options.clock ?? systemClock;
    this.logger = options.logger;
  }

  normal(regarding: KubernetesObject, reason: string, action: string, note?: string): Promise<boolean> {
    return this.record({
      type: 'Normal',
      regarding,
      reason,
      action,
      ...(note === undefined ? {} : { note }),
    });
  }

  warning(regarding: KubernetesObject, reason: string, action: string, note?: string): Promise<boolean> {
    return this.record({
      type: 'Warning',
      regarding,
      reason,
      action,
      ...(note === undefined ? {} : { note }),
    });
  }

  /** Resolves true when the event was written, false when it was a duplicate or the write failed. */
  async record(input: EventInput): Promise<boolean> {
    const meta = input.regarding.metadata ?? {};
    const name = meta.name ?? '';
    const namespace = meta.namespace ?? undefined;
    const note = truncateBytes(input.note ?? '', 1024);
    const now = this.clock.now();
    this.forgetOlderThan(now - this.dedupWindowMs);
    const key = JSON.stringify([
      meta.uid ?? `${input.regarding.kind}/${namespace}/${name}`,
      input.type,
      input.reason,
      input.action,
      note,
    ]);
    if (this.sent.has(key)) {
      this.logger.debug({ reason: input.reason, object: name }, 'event suppressed as a duplicate');
      return false;
    }
    this.sent.set(key, now);
    if (this.sent.size > MAX_REMEMBERED) this.sent.delete(this.sent.keys().next().value as string);
    // Cluster-scoped objects' events live in `default`, as client-go does.
    const eventNamespace = namespace ?? 'default';
    const event: EventsV1Event = {
      apiVersion: 'events.k8s.io/v1',
      kind: 'Event',
      metadata: { name: eventName(name, now), namespace: eventNamespace },
      // MicroTime: the server parses exactly six fractional digits; Date#toISOString has three.
      eventTime: new V1MicroTime(now),
      reportingController: this.reportingController,
      reportingInstance: this.reportingInstance,
      action: input.action.slice(0, 128),
      reason: input.reason.slice(0, 128),
      type: input.type,
      note,
      regarding: {
        apiVersion: input.regarding.apiVersion,
        kind: input.regarding.kind,
        name,
        namespace,
        uid: meta.uid,
        resourceVersion: meta.resourceVersion,
      },
    };
    try {
      await this.api.createNamespacedEvent({ namespace: eventNamespace, body: event });
      return true;
    } catch (error) {
      this.logger.warn({ err: error, reason: input.reason, object: name }, 'could not record an event');
      return false;
    }
  }

  private forgetOlderThan(cutoff: number): void {
    for (const [key, at] of this.sent) {
      if (at > cutoff) break;
      this.sent.delete(key);
    }
  }
}

/** `<object>.<hex time><random>`, like client-go's names; object names are cut to keep it <= 253. */
function eventName(objectName: string, now: number): string {
  const suffix = `${now.toString(16)}${randomBytes(4).toString('hex')}`;
  return `${(objectName || 'object').slice(0, 253 - suffix.length - 1)}.${suffix}`;
}

function truncateBytes(text: string, max: number): string {
  const bytes = Buffer.from(text, 'utf8');
  if (bytes.length <= max) return text;
  // Cutting may split a multi-byte character; the decoder turns the half into U+FFFD, then drop it.
  return bytes
    .subarray(0, max - 3)
    .toString('utf8')
    .replace(/\uFFFD$/, '');
}
