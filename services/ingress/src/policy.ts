import type { BlockList } from 'node:net';
import { domainToASCII } from 'node:url';
import type { DomainIndex } from '@petrel/config';
import { Enhanced, type Mailbox, type Reply, ReplyCode, reply } from '@petrel/smtp';
import { inNetworks } from './listener.ts';

/** What the policy needs of a session: who (if anyone) authenticated, and from where. */
export interface PolicySession {
  readonly auth?: { readonly identity: string } | undefined;
  /** The client's address (from the PROXY header when there is one). */
  readonly remoteAddress?: string;
}

const relayDenied = reply(ReplyCode.MailboxUnavailable, Enhanced.NotAuthorized, 'Relaying denied');
const formRefused = reply(ReplyCode.MailboxUnavailable, Enhanced.NotAuthorized, 'Address form not accepted');
const senderRefused = reply(
  ReplyCode.MailboxNameNotAllowed,
  Enhanced.NotAuthorized,
  'Sender address not allowed for this user',
);

/**
 * '%' and '!' are the old percent-hack and UUCP routing characters; '@' can only appear quoted.
 * A downstream MTA may still interpret them as a route, so they are never relayed.
 */
const ROUTING_CHARACTERS = /[%!@]/;

/** Forms that could reach another place than the domain named (RFC 5321 §3.6.1, §4.1.3, §C). */
function routingForm(mailbox: Mailbox): boolean {
  return (
    mailbox.sourceRoute ||
    mailbox.domainLiteral ||
    mailbox.trailingDot ||
    // IDNA would fold the name onto another one (full-width letters or dots): a look-alike.
    mailbox.mappedDomain ||
    ROUTING_CHARACTERS.test(mailbox.localPart)
  );
}

/** Does an allowedSenders pattern ('*@domain' or 'local@domain') cover the mailbox? */
function senderMatches(pattern: string, mailbox: Mailbox): boolean {
  const at = pattern.lastIndexOf('@');
  if (at <= 0) return false;
  const local = pattern.slice(0, at);
  const domain = domainToASCII(pattern.slice(at + 1)) || pattern.slice(at + 1).toLowerCase();
  if (domain !== mailbox.domain) return false;
  return local === '*' || local === mailbox.localPart;
}

/**
 * Relay and sender policy. An unauthenticated client may only send to the managed domains; no
 * network is trusted, loopback included, unless configured as a relay network
 * (`PETREL_RELAY_NETWORKS`, like Postfix's mynetworks): a client there may relay anywhere without
 * AUTH, from any sender. An authenticated user may relay anywhere, but only from the addresses
 * its allowedSenders lists. Refusals are always permanent (5xx), never a 4xx that would invite
 * retries; routing forms are refused whoever asks.
 */
export class RelayPolicy {
  readonly #domains: () => DomainIndex;
  readonly #relayNetworks: BlockList | undefined;
  /** Per session (asked at every RCPT and message): the address looked up, and the answer. */
  readonly #seen = new WeakMap<PolicySession, { address: string; inRelayNetwork: boolean }>();

  constructor(domains: () => DomainIndex, relayNetworks?: BlockList) {
    this.#domains = domains;
    this.#relayNetworks = relayNetworks;
  }

  /** An unauthenticated client in a configured relay network. */
  trusted(session: PolicySession): boolean {
    if (session.auth !== undefined || this.#relayNetworks === undefined) return false;
    const address = session.remoteAddress ?? '';
    let seen = this.#seen.get(session);
    if (seen?.address !== address) {
      seen = { address, inRelayNetwork: inNetworks(this.#relayNetworks, address) };
      this.#seen.set(session, seen);
    }
    return seen.inRelayNetwork;
  }

  checkSender(session: PolicySession, mailbox: Mailbox | undefined): Reply | undefined {
    if (session.auth === undefined) return undefined;
    // A null sender would let a user send mail that bounces nowhere, under no allowed address.
    if (mailbox === undefined || routingForm(mailbox)) return senderRefused;
    const entry = this.#domains().user(session.auth.identity);
    if (entry === undefined) return senderRefused;
    return entry.user.allowedSenders.some((p) => senderMatches(p, mailbox)) ? undefined : senderRefused;
  }

  checkRecipient(session: PolicySession, recipient: { readonly mailbox: Mailbox }): Reply | undefined {
    const { mailbox } = recipient;
    if (routingForm(mailbox)) return formRefused;
    if (session.auth !== undefined || this.trusted(session)) return undefined;
    return this.#domains().managed(mailbox.domain) === undefined ? relayDenied : undefined;
  }
}
