/**
 * The DSN hook of the worker: recipients that failed for good are reported to the envelope
 * sender in one RFC 3464 DSN per entry, queued as a new message from the null sender (so that
 * it is delivered, retried and traced like any other) before the entry is acked.
 */
import type { JetStreamClient } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { DomainIndex } from '@petrel/config';
import { composeDsn, originalFromEnvelope, shouldSendDsn } from '@petrel/dsn';
import { type Envelope, timestampFromDate } from '@petrel/proto';
import { loadBody, newEnvelope, newMessageId, publishMessage } from '@petrel/queue';
import type { Logger } from '@petrel/telemetry';
import { type DkimAlgorithm, signMessage } from './dkim.ts';

import type { FailedRecipient } from './worker.ts';

export interface BounceDeps {
  js: JetStreamClient;
  nc: NatsConnection;
  /** Reporting-MTA and the DSN's From domain. */
  hostname: string;
  log: Logger;
  /** Managed domains, for the DKIM keys the DSN is signed with. */
  domains?: () => DomainIndex;
}

/**
 * The domain whose keys sign a DSN: the managed domain of its From address (MAILER-DAEMON@ our
 * host name, or the nearest managed parent of it), else the original sender's managed domain.
 */
function dsnSigner(
  index: DomainIndex,
  hostname: string,
  senderDomain: string,
): { domain: string; keys: { selector: string; algorithm: string; privateKeyPem: string }[] } | undefined {
  const labels = hostname.toLowerCase().split('.');
  const candidates = labels.slice(0, -1).map((_, i) => labels.slice(i).join('.'));
  if (senderDomain) candidates.push(senderDomain.toLowerCase());
  for (const domain of candidates) {
    // known(): the DSNs of a draining domain's queued mail are signed as before.
    const keys = index.known(domain)?.dkimKeys ?? [];
    if (keys.length > 0) return { domain, keys: [...keys] };
  }
  return undefined;
}

/** What a DSN reports beyond its recipients; the original message when the caller has it. */
export interface DsnReport {
  readonly action?: 'failed' | 'delayed';
  readonly willRetryUntil?: Date | undefined;
  /** The message as queued (saves loading it again from the queue or the object store). */
  readonly original?: Buffer | undefined;
}

/**
 * Queues the DSN for recipients and resolves with its queue id (nothing when no DSN was due);
 * rejects when it could not (the entry is then retried).
 */
export type DsnHook = (
  envelope: Envelope,
  recipients: readonly FailedRecipient[],
  report?: DsnReport,
) => Promise<string | undefined>;

export function dsnSender(deps: BounceDeps): DsnHook {
  return async (envelope, failed, report = {}) => {
    const { action = 'failed', willRetryUntil } = report;
    const body = report.original ?? (await loadBody(deps.js, envelope));
    const notifyOf = new Map(envelope.recipients.map((r) => [r.address, r.notify]));
    // Delays were decided by the worker's policy (which may send them without NOTIFY).
    const reported = failed.filter((f) =>
      shouldSendDsn(envelope.sender, body, {
        action,
        notify: notifyOf.get(f.address) ?? [],
        delaysWithoutNotify: action === 'delayed',
      }),
    );
    if (reported.length === 0) return undefined;
    const orcptOf = new Map(envelope.recipients.map((r) => [r.address, r.orcpt]));
    const now = new Date();
    const { message: composed } = composeDsn({
      ...originalFromEnvelope(envelope),
      reportingMta: deps.hostname,
      original: body,
      generate: { now: () => now },
      recipients: reported.map((f) => ({
        address: f.address,
        orcpt: orcptOf.get(f.address) || undefined,
        action,
        status: f.reply?.enhanced ?? (action === 'delayed' ? '4.0.0' : f.expired ? '5.4.7' : '5.0.0'),
        remoteMta: f.remoteHost ? f.remoteHost.replace(/:\d+$/, '') : undefined,
        diagnosticCode: f.reply
          ? `${f.reply.code}${f.reply.enhanced ? ` ${f.reply.enhanced}` : ''} ${f.reply.lines.join(' ')}`
          : undefined,
        lastAttemptDate: now,
        willRetryUntil: action === 'delayed' ? willRetryUntil : undefined,
      })),
    });
    let dsn = composed;
    const signer = deps.domains ? dsnSigner(deps.domains(), deps.hostname, envelope.senderDomain) : undefined;
    if (signer !== undefined) {
      try {
        dsn = signMessage(
          composed,
          signer.keys.map((k) => ({ ...k, algorithm: k.algorithm as DkimAlgorithm, domain: signer.domain })),
        );
      } catch (error) {
        deps.log.warn(
          { err: error, domain: signer.domain },
          'DKIM signing of a DSN failed; sending it unsigned',
        );
      }
    }
    const messageId = newMessageId();
    const at = envelope.sender.lastIndexOf('@');
    const destinationDomain = envelope.sender.slice(at + 1).toLowerCase();
    await publishMessage(deps.js, deps.nc, {
      messageId,
      envelopes: [
        newEnvelope({
          messageId,
          sender: '',
          destinationDomain,
          recipients: [{ address: envelope.sender }],
          receivedAt: timestampFromDate(now),
          smtputf8: envelope.smtputf8,
          size: BigInt(dsn.length),
          ...(envelope.trace ? { trace: envelope.trace } : {}),
        }),
      ],
      body: dsn,
      timeoutMs: 10_000,
    });
    deps.log.info(
      { messageId: envelope.messageId, dsn: messageId, recipients: reported.length },
      'DSN queued for the sender',
    );
    return messageId;
  };
}
