import { createHash } from 'node:crypto';
import type { BlockList } from 'node:net';
import { metrics } from '@opentelemetry/api';
import type { DomainIndex } from '@petrel/config';
import {
  Enhanced,
  ListenerMode,
  type Reply,
  ReplyCode,
  receivedHeader,
  receivedProtocol,
  reply,
  SessionEvent,
  type SessionHandler,
} from '@petrel/smtp';
import type { Logger } from '@petrel/telemetry';
import type { Acceptor } from './acceptor.ts';
import type { Greylist } from './greylist.ts';
import type { InboundChecks } from './inbound/index.ts';
import { stripOwnAuthenticationResults } from './inbound/strip.ts';
import type { AuthThrottle, ConnectionLimiter } from './limits.ts';
import { inNetworks } from './listener.ts';
import type { RelayPolicy } from './policy.ts';
import { tarpitDelay } from './tarpit.ts';

export interface IngressHandlerDeps {
  readonly hostname: string;
  readonly domains: () => DomainIndex;
  readonly policy: RelayPolicy;
  readonly connections: ConnectionLimiter;
  readonly authThrottle: AuthThrottle;
  readonly acceptor: Acceptor;
  readonly inbound?: InboundChecks | undefined;
  readonly greylist?: Greylist | undefined;
  /** RFC 1985: asks the delivery side for a queue run for the node; resolves to the reply. */
  readonly queueRun?: ((node: string) => Promise<Reply>) | undefined;
  readonly etrnNetworks?: BlockList | undefined;
  /** Name the authenticated identity in the Received field. */
  readonly receivedAuthIdentity: boolean;
  readonly log: Logger;
}

const meter = metrics.getMeter('petrel-ingress');
const sessionEvents = meter.createCounter('petrel.smtp.session.events', {
  description: 'SMTP session events (connections, refusals, bad input, TLS, AUTH, timeouts)',
});

/** Events that are the client's fault and worth a warning; the rest is info or debug. */
const WARN_EVENTS: ReadonlySet<SessionEvent> = new Set<SessionEvent>([
  SessionEvent.ProxyError,
  SessionEvent.TlsFailed,
  SessionEvent.LineTooLong,
  SessionEvent.BadCommand,
  SessionEvent.AuthFailed,
  SessionEvent.BareLineEnding,
  SessionEvent.LongTextLine,
  SessionEvent.Oversized,
  SessionEvent.RoutingLoop,
  SessionEvent.SlowClient,
  SessionEvent.TooManyErrors,
  SessionEvent.TooManyCommands,
  SessionEvent.Refused,
  SessionEvent.PlaintextDiscarded,
]);
const DEBUG_EVENTS: ReadonlySet<SessionEvent> = new Set<SessionEvent>([
  SessionEvent.Connected,
  SessionEvent.Closed,
  SessionEvent.TlsEstablished,
]);

const etrnDenied = reply(ReplyCode.EtrnNodeNotAllowed, '5.7.1', 'ETRN not allowed for this client');

/**
 * The ingress's policy and storage for the SMTP engine: connection limits, AUTH credentials and
 * throttling, relay policy, inbound checks, greylisting and tarpitting, trace fields, and
 * hand-over to the queue.
 */
export function ingressHandler(deps: IngressHandlerDeps): SessionHandler {
  const { log } = deps;
  const admitted = new Set<string>();
  /** Ends a tarpit delay when its session ends. */
  const ending = new Map<string, AbortController>();
  return {
    connect(session) {
      const refusal = deps.connections.tryAcquire(session.remoteAddress);
      if (refusal === undefined) admitted.add(session.id);
      return refusal;
    },
    closed(session) {
      if (admitted.delete(session.id)) deps.connections.release(session.remoteAddress);
      ending.get(session.id)?.abort();
      ending.delete(session.id);
    },
    observe(session, event, detail) {
      sessionEvents.add(1, { event, listener: session.mode });
      const fields = { session: session.id, client: session.remoteAddress, event, ...detail };
      if (WARN_EVENTS.has(event)) log.warn(fields, 'smtp session event');
      else if (DEBUG_EVENTS.has(event)) log.debug(fields, 'smtp session event');
      else log.info(fields, 'smtp session event');
    },
    auth: {
      credentials: {
        password: (username) => deps.domains().user(username)?.user.password,
      },
      // SCRAM salts are public; deriving their key from our name keeps them equal on every replica.
      scramSaltKey: createHash('sha256').update(`petrel-scram-salt:${deps.hostname}`).digest(),
      check: (session, username) => deps.authThrottle.check(session.remoteAddress, username),
      failed: (session, username) => deps.authThrottle.failure(session.remoteAddress, username),
      succeeded: (session, identity) => deps.authThrottle.success(session.remoteAddress, identity),
    },
    mailFrom(session, path) {
      return deps.policy.checkSender(session, path.mailbox);
    },
    async rcptTo(session, _tx, recipient) {
      const refusal = deps.policy.checkRecipient(session, recipient);
      if (refusal !== undefined) return refusal;
      // Greylisting and tarpitting are for strangers, not for the organisation's own relay networks.
      if (session.auth !== undefined || session.mode !== ListenerMode.Mx || deps.policy.trusted(session))
        return undefined;
      const domain = deps.domains().managed(recipient.mailbox.domain);
      if (domain === undefined) return undefined;
      const { greylisting, tarpit } = domain.inbound;
      if (tarpit.enabled) {
        let controller = ending.get(session.id);
        if (controller === undefined) {
          controller = new AbortController();
          ending.set(session.id, controller);
        }
        await tarpitDelay(tarpit.delayMs, controller.signal);
      }
      if (greylisting.enabled && deps.greylist !== undefined) {
        return await deps.greylist.check({
          ip: session.remoteAddress,
          sender: _tx.sender?.address ?? '',
          recipient: recipient.mailbox.address,
          delaySeconds: greylisting.delaySeconds,
          expireSeconds: greylisting.expireSeconds,
        });
      }
      return undefined;
    },
    async message(session, tx, original) {
      let body = original;
      let prefix = '';
      const trusted = deps.policy.trusted(session);
      if (
        session.auth === undefined &&
        !trusted &&
        session.mode === ListenerMode.Mx &&
        deps.inbound !== undefined
      ) {
        const index = deps.domains();
        const flags = [];
        for (const r of tx.recipients) {
          const d = index.managed(r.mailbox.domain);
          if (d !== undefined) flags.push(d.inbound.checks);
        }
        // Nothing to verify for these domains: do not even parse the message.
        if (flags.some((f) => f.spf || f.dkim || f.dmarc || f.arc)) {
          // RFC 8601 §5: results that claim to be ours did not come from us.
          body = stripOwnAuthenticationResults(body, deps.hostname);
          const result = await deps.inbound.check({
            message: body,
            clientIp: session.remoteAddress,
            helo: session.helo ?? '',
            mailFrom: tx.sender?.address ?? '',
            recipientDomains: flags,
          });
          log.info(
            {
              session: session.id,
              results: result.results,
              timedOut: result.timedOut,
              dmarcPolicy: result.dmarcPolicy,
            },
            'inbound checks',
          );
          if (result.reject !== undefined) return result.reject;
          prefix = result.header;
        }
      }
      const received = receivedHeader({
        heloName: session.helo,
        remoteAddress: session.remoteAddress,
        byHost: deps.hostname,
        protocol: receivedProtocol({
          esmtp: session.esmtp,
          tls: session.tls !== undefined,
          authenticated: session.auth !== undefined,
          utf8: tx.smtputf8,
        }),
        id: session.id,
        recipient: tx.recipients.length === 1 ? tx.recipients[0]?.mailbox.address : undefined,
        tls: session.tls,
        authIdentity: deps.receivedAuthIdentity ? session.auth?.identity : undefined,
        date: new Date(),
      });
      // The MailDomain the mail is sent as (DKIM signing, per-sender limits): the authenticated
      // user's; for a relay network, the sender's domain when it is a managed one.
      const senderDomain =
        session.auth !== undefined
          ? deps.domains().user(session.auth.identity)?.domain.domain
          : trusted && tx.sender !== undefined
            ? deps.domains().managed(tx.sender.domain)?.domain
            : undefined;
      return await deps.acceptor.accept(session, tx, body, { prefix: received + prefix, senderDomain });
    },
    async etrn(session, node) {
      if (session.auth === undefined && !inNetworks(deps.etrnNetworks, session.remoteAddress))
        return etrnDenied;
      if (deps.queueRun === undefined) {
        return reply(
          ReplyCode.EtrnUnableToQueue,
          Enhanced.MailSystemTemp,
          'Unable to queue messages for node',
        );
      }
      return await deps.queueRun(node);
    },
  };
}
