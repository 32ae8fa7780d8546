/**
 * Event stories for the recorder's tests: what the ingress and the workers publish for a
 * delivered, a deferred-then-delivered, a bounced (with DSN and suppression), an expired and a
 * purged message, as they would publish them.
 */
import { type DeliveryEvent, EventKind } from '@petrel/proto';
import { deliveryEvent, newMessageId } from '@petrel/queue';

const SECOND = 1000;

export interface Story {
  readonly queueId: string;
  readonly events: DeliveryEvent[];
}

function event(
  queueId: string,
  kind: EventKind,
  atMs: number,
  fields: Partial<Parameters<typeof deliveryEvent>[0]> & { recipients: string[] },
): DeliveryEvent {
  const attempt = fields.attempt ?? 0;
  return deliveryEvent({
    eventId: `${queueId}.${fields.destinationDomain ?? 'example.org'}.${attempt}.${EventKind[kind].toLowerCase()}`,
    kind,
    messageId: queueId,
    destinationDomain: 'example.org',
    atMs,
    attempt,
    sender: 'alice@example.com',
    trace: {
      $typeName: 'petrel.v1.TraceContext',
      traceparent: `00-${'ab'.repeat(16)}-${'cd'.repeat(8)}-01`,
      tracestate: '',
    },
    ...fields,
  });
}

function accepted(queueId: string, at: number, recipients: string[], headerId: string): DeliveryEvent {
  return deliveryEvent({
    eventId: `${queueId}.accepted`,
    kind: EventKind.ACCEPTED,
    messageId: queueId,
    recipients,
    atMs: at,
    remoteHost: 'client.example',
    tlsProtocol: 'TLSv1.3',
    sender: 'alice@example.com',
    size: 2048n,
    headerMessageId: headerId,
    clientAddress: '192.0.2.10',
  });
}

const reply = (code: number, enhanced: string, text: string) => ({ code, enhanced, text });
const mx = { remoteHost: 'mx.example.org', remoteAddress: '127.0.0.1', tlsProtocol: 'TLSv1.3' };

export function delivered(at: number): Story {
  const id = newMessageId(at);
  return {
    queueId: id,
    events: [
      accepted(id, at, ['bob@example.org'], `d-${id}@example.com`),
      event(id, EventKind.DELIVERED, at + 2 * SECOND, {
        recipients: ['bob@example.org'],
        attempt: 1,
        ...mx,
        reply: reply(250, '2.0.0', 'OK queued'),
        durationMs: 40n,
      }),
    ],
  };
}

export function deferredThenDelivered(at: number): Story {
  const id = newMessageId(at);
  return {
    queueId: id,
    events: [
      accepted(id, at, ['carol@example.org'], `dd-${id}@example.com`),
      event(id, EventKind.DEFERRED, at + SECOND, {
        recipients: ['carol@example.org'],
        attempt: 1,
        ...mx,
        reply: reply(451, '4.3.0', 'try again later'),
      }),
      // A suspended destination: deferred without an attempt.
      event(id, EventKind.DEFERRED, at + 30 * SECOND, {
        eventId: `${id}.example.org.1.not-attempted`,
        recipients: ['carol@example.org'],
        attempt: 1,
        error: 'not attempted: destination suspended',
      }),
      event(id, EventKind.DELIVERED, at + 60 * SECOND, {
        recipients: ['carol@example.org'],
        attempt: 2,
        ...mx,
        reply: reply(250, '2.0.0', 'OK'),
      }),
    ],
  };
}

export function bounced(at: number, dsnQueueId: string): Story {
  const id = newMessageId(at);
  return {
    queueId: id,
    events: [
      accepted(id, at, ['nobody@example.org', 'dave@example.org'], `b-${id}@example.com`),
      event(id, EventKind.BOUNCED, at + SECOND, {
        recipients: ['nobody@example.org'],
        attempt: 1,
        ...mx,
        reply: reply(550, '5.1.1', 'no such user'),
        dsnMessageId: dsnQueueId,
      }),
      event(id, EventKind.SUPPRESSED, at + SECOND, {
        recipients: ['nobody@example.org'],
        attempt: 1,
        ...mx,
        reply: reply(550, '5.1.1', 'no such user'),
      }),
      event(id, EventKind.DELIVERED, at + SECOND, {
        recipients: ['dave@example.org'],
        attempt: 1,
        ...mx,
        reply: reply(250, '2.0.0', 'OK'),
      }),
    ],
  };
}

export function expired(at: number, dsnQueueId: string): Story {
  const id = newMessageId(at);
  return {
    queueId: id,
    events: [
      accepted(id, at, ['erin@example.org'], `e-${id}@example.com`),
      event(id, EventKind.DEFERRED, at + SECOND, {
        recipients: ['erin@example.org'],
        attempt: 1,
        error: 'connect ECONNREFUSED 127.0.0.1:25',
      }),
      event(id, EventKind.EXPIRED, at + 5 * SECOND, {
        recipients: ['erin@example.org'],
        attempt: 2,
        error: 'connect ECONNREFUSED 127.0.0.1:25',
        reply: reply(554, '4.4.7', 'Delivery time expired'),
        dsnMessageId: dsnQueueId,
      }),
    ],
  };
}

export function purged(at: number): Story {
  const id = newMessageId(at);
  return {
    queueId: id,
    events: [
      accepted(id, at, ['frank@example.org'], `p-${id}@example.com`),
      event(id, EventKind.DEFERRED, at + SECOND, {
        recipients: ['frank@example.org'],
        attempt: 1,
        ...mx,
        reply: reply(421, '4.7.0', 'too many connections'),
      }),
      event(id, EventKind.PURGED, at + 10 * SECOND, {
        eventId: `${id}.example.org.purge`,
        recipients: ['frank@example.org'],
        attempt: 1,
        error: 'purged by operator',
      }),
    ],
  };
}
