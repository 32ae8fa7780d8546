import type { DomainIndex } from '@petrel/config';
import { Enhanced, type Recipient, type Reply, ReplyCode, reply } from '@petrel/smtp';

const relayDenied = reply(ReplyCode.MailboxUnavailable, Enhanced.NotAuthorized, 'Relaying denied');

/**
 * Relay policy of the MX listener (port-25 semantics): an unauthenticated client may only send
 * to the managed domains; no network is trusted, loopback included. A recipient elsewhere is
 * always a permanent refusal (5xx), never a 4xx that would invite retries.
 */
export class RelayPolicy {
  readonly #domains: () => DomainIndex;

  constructor(domains: () => DomainIndex) {
    this.#domains = domains;
  }

  checkRecipient(recipient: Recipient): Reply | undefined {
    return this.#domains().managed(recipient.mailbox.domain) === undefined ? relayDenied : undefined;
  }
}
