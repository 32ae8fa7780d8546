/**
 * The job stored in PETREL_WEBHOOKS for one (subscription, event), and the JSON body POSTed for it.
 * The job carries the event as the receiver sees it, so the sender needs nothing but the live
 * subscription (its current URL and secret) to send it.
 */
import { WEBHOOK_EVENTS, type WebhookEvent } from '@petrel/config';
import { type DeliveryEvent, timestampDate } from '@petrel/proto';
import { WebhookError, WebhookErrorCode } from './errors.ts';
import type { Match } from './matching.ts';
import { idempotencyKey } from './matching.ts';

/** The event in the body: readable names, the time as RFC 3339, a reply or null. */
export interface WebhookEventJson {
  readonly eventId: string;
  readonly messageId: string;
  readonly at: string | null;
  readonly sender: string;
  readonly recipients: readonly string[];
  readonly destinationDomain: string;
  readonly attempt: number;
  readonly remoteHost: string;
  readonly reply: { readonly code: number; readonly enhanced: string; readonly text: string } | null;
  readonly error: string;
  readonly dsnMessageId: string;
}

/** The POSTed body. */
export interface WebhookBody {
  /** The idempotency key (also the Idempotency-Key header): the same for every attempt. */
  readonly id: string;
  readonly type: WebhookEvent;
  /** The MailDomain's domain the event belongs to. */
  readonly domain: string;
  /** The subscription's id, `<namespace>/<maildomain>/<name>`. */
  readonly subscription: string;
  readonly event: WebhookEventJson;
}

/** A job is the body itself: the stored bytes are POSTed as they are, the same on every attempt. */
export type WebhookJob = WebhookBody;

export function eventJson(event: DeliveryEvent): WebhookEventJson {
  const at = event.at === undefined ? null : timestampDate(event.at).toISOString();
  return {
    eventId: event.eventId,
    messageId: event.messageId,
    at,
    sender: event.sender,
    recipients: [...event.recipients],
    destinationDomain: event.destinationDomain,
    attempt: event.attempt,
    remoteHost: event.remoteHost,
    reply:
      event.reply === undefined
        ? null
        : { code: event.reply.code, enhanced: event.reply.enhanced, text: event.reply.text },
    error: event.error,
    dsnMessageId: event.dsnMessageId,
  };
}

export function jobFor(match: Match, event: DeliveryEvent): WebhookJob {
  return {
    id: idempotencyKey(match.subscription.id, event.eventId),
    type: match.type,
    domain: match.domain,
    subscription: match.subscription.id,
    event: eventJson(event),
  };
}

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

export function encodeJob(job: WebhookJob): Uint8Array {
  return encoder.encode(JSON.stringify(job));
}

/** The stored job, checked enough that the sender can rely on its fields. */
export function decodeJob(data: Uint8Array): WebhookJob {
  let job: unknown;
  try {
    job = JSON.parse(decoder.decode(data));
  } catch (error) {
    throw new WebhookError(WebhookErrorCode.Job, 'webhook job is not JSON', { cause: error });
  }
  const j = job as Partial<WebhookJob> | null;
  if (
    j === null ||
    typeof j !== 'object' ||
    typeof j.id !== 'string' ||
    typeof j.subscription !== 'string' ||
    typeof j.domain !== 'string' ||
    !(WEBHOOK_EVENTS as readonly unknown[]).includes(j.type) ||
    typeof j.event !== 'object' ||
    j.event === null ||
    typeof j.event.eventId !== 'string'
  ) {
    throw new WebhookError(WebhookErrorCode.Job, 'webhook job lacks id, subscription, domain, type or event');
  }
  return j as WebhookJob;
}
