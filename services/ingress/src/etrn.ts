/**
 * ETRN (RFC 1985) on the MX listener: asks the delivery workers to run the queue for a domain now
 * (queue operation "flush", docs/queue-model.md) and answers with RFC 1985 §5's codes.
 */
import type { NatsConnection } from '@nats-io/transport-node';
import { type Reply, ReplyCode, reply } from '@petrel/smtp';

const FLUSH_SUBJECT = 'petrel.admin.queue.flush';

export function etrnQueueRun(nc: NatsConnection, timeoutMs = 5_000): (node: string) => Promise<Reply> {
  return async (node) => {
    // "#queue" names a queue, not a domain: we have none by that name (RFC 1985 §3).
    if (node.startsWith('#')) {
      return reply(ReplyCode.EtrnUnableToQueue, '4.1.2', `No queue named ${node}`);
    }
    // "@domain" asks for the domain and its subdomains; we flush the domain itself.
    const domain = node.replace(/^@/, '');
    try {
      const m = await nc.request(FLUSH_SUBJECT, JSON.stringify({ domain }), { timeout: timeoutMs });
      const answer = m.json<{ ok: boolean; count?: number; error?: string }>();
      if (!answer.ok)
        return reply(ReplyCode.EtrnUnableToQueue, '4.3.0', `Unable to queue messages for ${domain}`);
      if (!answer.count)
        return reply(ReplyCode.EtrnNoMessages, '2.0.0', `No messages waiting for node ${domain}`);
      return reply(
        ReplyCode.EtrnPendingStarted,
        '2.0.0',
        `${answer.count} pending messages for node ${domain} started`,
      );
    } catch {
      return reply(ReplyCode.EtrnUnableToQueue, '4.3.0', `Unable to queue messages for node ${domain}`);
    }
  };
}
