/**
 * Which subscriptions an event goes to. An event belongs to a MailDomain when its envelope sender
 * is at that domain (outbound mail) or its destination domain is that domain (inbound mail); both
 * may hold (mail between two managed domains), and then each domain's subscriptions get it. A
 * subscription gets only the kinds it asked for: one job per (subscription, event).
 */
import { createHash } from 'node:crypto';
import { type DomainIndex, type RuntimeWebhook, WEBHOOK_EVENTS, type WebhookEvent } from '@petrel/config';
import type { DeliveryEvent, EventKind } from '@petrel/proto';
import { eventKindName } from '@petrel/queue';

/** The webhook event type of a kind; undefined for kinds not offered (accepted, purged). */
export function webhookEventType(kind: EventKind): WebhookEvent | undefined {
  const name = eventKindName(kind);
  return (WEBHOOK_EVENTS as readonly string[]).includes(name ?? '') ? (name as WebhookEvent) : undefined;
}

export interface Match {
  /** The managed domain the event belongs to (the MailDomain's spec.domain). */
  readonly domain: string;
  readonly subscription: RuntimeWebhook;
  readonly type: WebhookEvent;
}

function domainOf(address: string): string {
  const at = address.lastIndexOf('@');
  return at < 0 ? '' : address.slice(at + 1).toLowerCase();
}

export function matchEvent(index: DomainIndex, event: DeliveryEvent): Match[] {
  const type = webhookEventType(event.kind);
  if (type === undefined || !index.hasWebhooks) return [];
  const domains = new Set<string>();
  const sender = domainOf(event.sender);
  if (sender !== '') domains.add(sender);
  if (event.destinationDomain !== '') domains.add(event.destinationDomain.toLowerCase());
  const out: Match[] = [];
  for (const domain of domains) {
    for (const subscription of index.webhooks(domain)) {
      if (subscription.events.includes(type)) out.push({ domain, subscription, type });
    }
  }
  return out;
}

/**
 * The idempotency key of one (subscription, event): the jobs' Nats-Msg-Id (a redelivered event
 * makes no second job) and the Idempotency-Key header (receivers drop what they have seen).
 */
export function idempotencyKey(subscriptionId: string, eventId: string): string {
  return createHash('sha256').update(subscriptionId).update('\n').update(eventId).digest('hex');
}
