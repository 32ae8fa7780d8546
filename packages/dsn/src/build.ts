/**
 * Delivery status notifications (RFC 3464) as multipart/report; report-type=delivery-status
 * (RFC 6522), or their RFC 6533 global forms for SMTPUTF8 originals.
 */
import { isAscii } from 'node:buffer';
import { randomBytes } from 'node:crypto';
import { isIP } from 'node:net';
import {
  asEightBit,
  CRLF,
  cleanText,
  field,
  headerSection,
  headerValue,
  readHeaders,
  rfc5322Date,
  transferEncoding,
  wrapText,
} from './mime.ts';

/** RFC 3464 §2.3.3 action-value. */
export type DsnAction = 'failed' | 'delayed' | 'delivered' | 'relayed' | 'expanded';

export const DSN_ACTIONS: readonly DsnAction[] = ['failed', 'delayed', 'delivered', 'relayed', 'expanded'];

/** What happened to one recipient: one per-recipient block of the report. */
export interface DsnRecipientResult {
  /** The recipient as delivered to (forward-path without angle brackets): Final-Recipient. */
  readonly address: string;
  /**
   * RFC 3461 ORCPT as received, "addr-type;address" with the address decoded from xtext
   * ("rfc822;Bob@Example.org", "utf-8;…"): Original-Recipient. Absent or empty: not given.
   */
  readonly orcpt?: string | undefined;
  readonly action: DsnAction;
  /** RFC 3463 enhanced status, e.g. "5.1.1": 2.x.x for delivered/relayed/expanded, 4.x.x for delayed, 4.x.x or 5.x.x for failed. */
  readonly status: string;
  /** The remote MTA's host name (or address, or "type; name"): Remote-MTA. */
  readonly remoteMta?: string | undefined;
  /**
   * The remote reply: "smtp; 550 5.1.1 <bob@example.org>: no such user" (RFC 3464 §2.3.6). A bare
   * reply without a diagnostic type ("550 5.1.1 …") gets "smtp; ". Line breaks become spaces.
   */
  readonly diagnosticCode?: string | undefined;
  readonly lastAttemptDate?: Date | undefined;
  /** For delayed recipients: until when delivery is retried (Will-Retry-Until). Ignored otherwise. */
  readonly willRetryUntil?: Date | undefined;
}

/** The session the original message arrived in (Received-From-MTA). */
export interface DsnClientInfo {
  /** EHLO/HELO argument. */
  readonly helo?: string | undefined;
  readonly remoteAddress?: string | undefined;
}

/** The original message's envelope, as queued (see originalFromEnvelope for the proto Envelope). */
export interface DsnOriginal {
  /** The original reverse-path: the DSN goes to it. Must not be empty (see shouldSendDsn). */
  readonly sender: string;
  /** RFC 3461 ENVID, decoded from xtext: Original-Envelope-Id. */
  readonly envid?: string | undefined;
  /** RFC 3461 RET. Absent: the whole message when it is within maxReturnSize, else its header section. */
  readonly ret?: 'FULL' | 'HDRS' | undefined;
  /** When the message was accepted: Arrival-Date. */
  readonly receivedAt?: Date | undefined;
  readonly client?: DsnClientInfo | undefined;
  /** The original was sent with SMTPUTF8: the report uses the RFC 6533 global media types. */
  readonly smtputf8?: boolean | undefined;
}

/** Sources of everything that is not derived from the input, injectable for deterministic output. */
export interface DsnGenerators {
  /** Date field of the DSN. */
  now(): Date;
  /** Message-ID of the DSN (with or without the angle brackets) in that domain. */
  messageId(domain: string): string;
  /**
   * A MIME boundary (RFC 2046 §5.1.1 bchars without space, 1–70 characters). Asked again while the
   * value occurs in the content; a generator that keeps producing one that occurs is an error.
   */
  boundary(): string;
}

export interface DsnInput extends DsnOriginal {
  /** Our host name: Reporting-MTA (RFC 3464 §2.2.2). */
  readonly reportingMta: string;
  /** Domain of the From address MAILER-DAEMON@<it>; default reportingMta. */
  readonly reportingDomain?: string | undefined;
  /** At least one. */
  readonly recipients: readonly DsnRecipientResult[];
  /** The original message (header section and body, CRLF line endings as queued). */
  readonly original: Buffer;
  /** Largest original returned whole (RET=FULL or no RET); larger ones come back as their header section. */
  readonly maxReturnSize?: number | undefined;
  readonly generate?: Partial<DsnGenerators> | undefined;
}

/** How much of the original a DSN carries, and why. */
export type DsnReturned =
  | 'full'
  /** RET=HDRS */
  | 'headers'
  /** Over maxReturnSize. */
  | 'headers-size'
  /** NUL octets or lines over 998 octets: cannot be embedded as 8bit (RFC 2046 §5.2.1). */
  | 'headers-binary'
  /** Not even the header section can be embedded: the report has two parts. */
  | 'none';

export interface DsnMessage {
  /** The complete message, CRLF line endings. */
  readonly message: Buffer;
  /** With the angle brackets. */
  readonly messageId: string;
  readonly subject: string;
  readonly returned: DsnReturned;
  /** BODY= for MAIL FROM:<> (RFC 6152): 8BITMIME when any octet is not US-ASCII. */
  readonly bodyType: '7BIT' | '8BITMIME';
  /** The DSN's own header needs SMTPUTF8 (RFC 6531): the original sender is a UTF-8 address. */
  readonly smtputf8: boolean;
}

export const DEFAULT_MAX_RETURN_SIZE = 10 * 1024 * 1024;

/** Subjects by the most important action of a report: failures first, then delays, then successes. */
export const DSN_SUBJECTS: Readonly<Record<DsnAction, string>> = {
  failed: 'Undelivered Mail Returned to Sender',
  delayed: 'Delayed Mail (still being retried)',
  delivered: 'Successful Mail Delivery Report',
  expanded: 'Mail Delivered to a Mailing List or Alias',
  relayed: 'Mail Relayed Without Further Delivery Notification',
};

const PRIORITY: readonly DsnAction[] = ['failed', 'delayed', 'delivered', 'expanded', 'relayed'];

const SECTIONS: Readonly<Record<DsnAction, string>> = {
  failed:
    'Your message could not be delivered to the following recipients. The mail system has given up on them:',
  delayed:
    'Your message has not been delivered yet to the following recipients. The mail system keeps trying; you do not need to send it again:',
  delivered: 'Your message was delivered to the following recipients:',
  expanded:
    'Your message was delivered to the following mailing lists or aliases, which pass it on to their members:',
  relayed:
    'Your message was passed on to the following recipients by way of a system that does not report on delivery; you will receive no further notification about them:',
};

/** RFC 3463 §2 status-code, with the classes each action allows (RFC 3464 §2.3.3, §2.3.4). */
const STATUS = /^([245])\.(?:0|[1-9]\d{0,2})\.(?:0|[1-9]\d{0,2})$/;
const STATUS_CLASSES: Readonly<Record<DsnAction, string>> = {
  failed: '45',
  delayed: '4',
  delivered: '2',
  relayed: '2',
  expanded: '2',
};

/** RFC 2046 §5.1.1 bchars, space excluded. */
const BOUNDARY = /^[0-9A-Za-z'()+_,\-./:=?]{1,70}$/;
const MESSAGE_ID = /^[\x21-\x3b\x3d\x3f-\x7e]+@[\x21-\x3b\x3d\x3f-\x7e]+$/;
const BOUNDARY_ATTEMPTS = 16;

const DEFAULT_GENERATORS: DsnGenerators = {
  now: () => new Date(),
  messageId: (domain) => `${Date.now().toString(36)}.${randomBytes(12).toString('base64url')}@${domain}`,
  boundary: () => `=_petrel-dsn-${randomBytes(18).toString('base64url')}`,
};

/** RFC 3464 §2.2.2 mta-name-type ";" mta-name; an IP address as a literal. */
function mtaField(name: string): string {
  if (/^[A-Za-z][A-Za-z0-9-]*\s*;/.test(name)) return name;
  return isIP(name) === 0 ? `dns; ${name}` : `dns; [${name}]`;
}

/** RFC 3464 §2.3.6 diagnostic-type ";" *text; a bare SMTP reply is of type smtp. */
function diagnosticField(text: string): string {
  return /^[A-Za-z][A-Za-z0-9-]*\s*;/.test(text) ? text : `smtp; ${text}`;
}

/** RFC 6533 §3 utf-8-addr-xtext: QCHAR kept, everything else as \x{HEX}. */
function utf8AddrXtext(address: string): string {
  return Array.from(address, (c) => {
    const cp = c.codePointAt(0) as number;
    const qchar = cp >= 0x21 && cp <= 0x7e && c !== '+' && c !== '=' && c !== '\\';
    return qchar ? c : `\\x{${cp.toString(16).toUpperCase()}}`;
  }).join('');
}

/**
 * Final-Recipient / Original-Recipient value (RFC 3464 §2.3.1-2): rfc822 for ASCII addresses;
 * utf-8 (RFC 6533 §3) for others, raw in the global form, \x{HEX}-escaped in the ASCII one.
 */
function recipientField(type: string, address: string, global: boolean): string {
  if (isAscii(Buffer.from(address, 'utf8'))) return `${type};${address}`;
  return global ? `utf-8;${address}` : `utf-8;${utf8AddrXtext(address)}`;
}

function orcptField(orcpt: string, global: boolean): string {
  const m = /^([A-Za-z0-9-]+);([\s\S]*)$/.exec(orcpt);
  if (m === null) return recipientField('rfc822', orcpt, global);
  return recipientField(m[1] as string, m[2] as string, global);
}

function receivedFrom(client: DsnClientInfo | undefined): string | undefined {
  const helo = client?.helo?.trim();
  const address = client?.remoteAddress?.trim();
  if (helo) return `dns; ${helo}${address ? ` ([${address}])` : ''}`;
  if (address) return `dns; [${address}]`;
  return undefined;
}

function checkRecipient(r: DsnRecipientResult): void {
  const m = STATUS.exec(r.status);
  if (m === null) throw new TypeError(`invalid status ${JSON.stringify(r.status)} for ${r.address}`);
  if (!DSN_ACTIONS.includes(r.action)) throw new TypeError(`invalid action ${JSON.stringify(r.action)}`);
  if (!STATUS_CLASSES[r.action].includes(m[1] as string)) {
    throw new TypeError(`status ${r.status} does not fit action ${r.action} for ${r.address}`);
  }
  if (r.address.trim() === '') throw new TypeError('a recipient needs an address');
}

/** RFC 3464 §2.1: the per-message block, then one block per recipient, each followed by an empty line. */
function deliveryStatus(input: DsnInput, global: boolean): string {
  const perMessage = [field('Reporting-MTA', mtaField(input.reportingMta), global)];
  if (input.envid) perMessage.push(field('Original-Envelope-Id', input.envid, global));
  const from = receivedFrom(input.client);
  if (from) perMessage.push(field('Received-From-MTA', from, global));
  if (input.receivedAt) perMessage.push(field('Arrival-Date', rfc5322Date(input.receivedAt)));
  const blocks = input.recipients.map((r) => {
    const b: string[] = [];
    if (r.orcpt) b.push(field('Original-Recipient', orcptField(r.orcpt, global), global));
    b.push(field('Final-Recipient', recipientField('rfc822', r.address, global), global));
    b.push(field('Action', r.action));
    b.push(field('Status', r.status));
    if (r.remoteMta) b.push(field('Remote-MTA', mtaField(r.remoteMta), global));
    if (r.diagnosticCode) b.push(field('Diagnostic-Code', diagnosticField(r.diagnosticCode), global));
    if (r.lastAttemptDate) b.push(field('Last-Attempt-Date', rfc5322Date(r.lastAttemptDate)));
    if (r.action === 'delayed' && r.willRetryUntil) {
      b.push(field('Will-Retry-Until', rfc5322Date(r.willRetryUntil)));
    }
    return b;
  });
  return [perMessage, ...blocks].map((b) => b.join(CRLF) + CRLF).join(CRLF);
}

const RETURN_NOTES: Readonly<Record<DsnReturned, (size: number, limit: number) => string>> = {
  full: () => 'Your message is attached after the delivery report.',
  headers: () => 'The header section of your message is attached after the delivery report.',
  'headers-size': (size, limit) =>
    `Your message (${size} bytes) is larger than ${limit} bytes, so only its header section is attached after the delivery report.`,
  'headers-binary': () =>
    'Your message contains binary data that cannot be returned in a report, so only its header section is attached after the delivery report.',
  none: () => 'Your message could not be attached to this report.',
};

/** Part 1: the human-readable explanation (RFC 6522 §3), lines within 78 characters where words allow. */
function explanation(input: DsnInput, returned: DsnReturned): string {
  const lines = [`This is the mail system at ${cleanText(input.reportingMta, true)}.`, ''];
  for (const action of PRIORITY) {
    const recipients = input.recipients.filter((r) => r.action === action);
    if (recipients.length === 0) continue;
    lines.push(...wrapText(SECTIONS[action], 76), '');
    for (const r of recipients) {
      lines.push(...wrapText(`<${r.address}>`, 76, '  '));
      const reply = r.diagnosticCode?.replace(/^[A-Za-z][A-Za-z0-9-]*\s*;\s*/, '');
      const said = reply ? (r.remoteMta ? `${r.remoteMta} said: ${reply}` : reply) : `status ${r.status}`;
      lines.push(...wrapText(said, 76, '    '));
      if (action === 'delayed' && r.willRetryUntil) {
        lines.push(...wrapText(`Retrying until ${rfc5322Date(r.willRetryUntil)}.`, 76, '    '));
      }
      lines.push('');
    }
  }
  const limit = input.maxReturnSize ?? DEFAULT_MAX_RETURN_SIZE;
  lines.push(...wrapText(RETURN_NOTES[returned](input.original.length, limit), 76));
  return lines.join(CRLF);
}

/** Part 3 (RFC 3461 §4.3, RFC 6522 §3): the whole original, or its header section, or nothing. */
function returnedPart(input: DsnInput): { returned: DsnReturned; content: Buffer | undefined } {
  const limit = input.maxReturnSize ?? DEFAULT_MAX_RETURN_SIZE;
  let returned: DsnReturned = 'headers';
  if (input.ret !== 'HDRS') {
    if (input.original.length > limit) {
      returned = 'headers-size';
    } else {
      const whole = asEightBit(input.original);
      if (whole) return { returned: 'full', content: whole };
      returned = 'headers-binary';
    }
  }
  const headers = asEightBit(headerSection(input.original));
  return headers ? { returned, content: headers } : { returned: 'none', content: undefined };
}

function ensureFinalCrlf(text: string): string {
  return text.endsWith(CRLF) || text === '' ? text : text + CRLF;
}

interface Part {
  headers: string[];
  body: Buffer;
}

/** The DSN with what the caller needs to queue it (see also dsnEnvelopeSender). */
export function composeDsn(input: DsnInput): DsnMessage {
  if (input.recipients.length === 0) throw new TypeError('a DSN needs at least one recipient');
  if (input.sender.trim() === '') throw new TypeError('no DSN goes to the null sender (RFC 3461 §6.2)');
  for (const r of input.recipients) checkRecipient(r);
  const gen: DsnGenerators = { ...DEFAULT_GENERATORS, ...input.generate };
  const global = input.smtputf8 === true;
  const domain = cleanText(input.reportingDomain ?? input.reportingMta, true);

  const { returned, content } = returnedPart(input);
  const text = ensureFinalCrlf(explanation(input, returned));
  const status = deliveryStatus(input, global);
  const parts: Part[] = [
    {
      headers:
        transferEncoding(text) === '7bit'
          ? ['Content-Type: text/plain; charset=us-ascii']
          : ['Content-Type: text/plain; charset=utf-8', 'Content-Transfer-Encoding: 8bit'],
      body: Buffer.from(text, 'utf8'),
    },
    {
      headers: global
        ? // RFC 6533 §6.2: the 8bit transfer encoding is used with this type.
          ['Content-Type: message/global-delivery-status', 'Content-Transfer-Encoding: 8bit']
        : ['Content-Type: message/delivery-status'],
      body: Buffer.from(status, 'utf8'),
    },
  ];
  if (content) {
    const type =
      returned === 'full'
        ? global
          ? 'message/global'
          : 'message/rfc822'
        : global
          ? 'message/global-headers'
          : 'text/rfc822-headers';
    const cte = transferEncoding(content);
    parts.push({
      headers: [`Content-Type: ${type}`, ...(cte === '8bit' ? ['Content-Transfer-Encoding: 8bit'] : [])],
      body: content,
    });
  }
  const eightBit = parts.some((p) => p.headers.includes('Content-Transfer-Encoding: 8bit'));
  const preamble = 'This is a MIME-encapsulated message.';

  const boundary = chooseBoundary(gen, [...parts.map((p) => p.body), Buffer.from(preamble)]);
  const rawId = gen.messageId(domain).replace(/^<(.*)>$/, '$1');
  if (!MESSAGE_ID.test(rawId)) throw new TypeError(`invalid Message-ID ${JSON.stringify(rawId)}`);
  const messageId = `<${rawId}>`;

  const action = PRIORITY.find((a) => input.recipients.some((r) => r.action === a)) as DsnAction;
  const subject = DSN_SUBJECTS[action];
  const originalId = headerValue(readHeaders(input.original), 'Message-ID');
  const inReplyTo =
    originalId && /^<[\x21-\x3d\x3f-\x7e]+>$/.test(originalId) && originalId.length <= 250
      ? originalId
      : undefined;

  const head = [
    field('From', `Mail Delivery System <MAILER-DAEMON@${domain}>`),
    field('To', `<${cleanText(input.sender, true)}>`),
    field('Subject', subject),
    field('Date', rfc5322Date(gen.now())),
    field('Message-ID', messageId),
    ...(inReplyTo ? [field('In-Reply-To', inReplyTo), field('References', inReplyTo)] : []),
    // RFC 3834 §5: generated automatically in response to a message; never to be answered automatically.
    field('Auto-Submitted', 'auto-replied'),
    field('MIME-Version', '1.0'),
    field(
      'Content-Type',
      `multipart/report; report-type=${global ? 'global-delivery-status' : 'delivery-status'}; boundary="${boundary}"`,
    ),
    ...(eightBit ? ['Content-Transfer-Encoding: 8bit'] : []),
  ].join(CRLF);

  // Every part body is followed by CRLF: that CRLF belongs to the next delimiter (RFC 2046 §5.1.1),
  // so each part's content is exactly its body.
  const chunks: Buffer[] = [Buffer.from(`${head}${CRLF}${CRLF}${preamble}${CRLF}`, 'utf8')];
  for (const p of parts) {
    chunks.push(Buffer.from(`--${boundary}${CRLF}${p.headers.join(CRLF)}${CRLF}${CRLF}`, 'utf8'));
    chunks.push(p.body, Buffer.from(CRLF));
  }
  chunks.push(Buffer.from(`--${boundary}--${CRLF}`));
  const message = Buffer.concat(chunks);
  return {
    message,
    messageId,
    subject,
    returned,
    bodyType: isAscii(message) ? '7BIT' : '8BITMIME',
    smtputf8: !isAscii(Buffer.from(head, 'utf8')),
  };
}

/** The complete RFC 5322 message of the DSN (CRLF line endings), to be sent with MAIL FROM:<>. */
export function buildDsn(input: DsnInput): Buffer {
  return composeDsn(input).message;
}

function chooseBoundary(gen: DsnGenerators, contents: readonly Buffer[]): string {
  for (let attempt = 0; attempt < BOUNDARY_ATTEMPTS; attempt++) {
    const boundary = gen.boundary();
    if (!BOUNDARY.test(boundary)) throw new TypeError(`invalid MIME boundary ${JSON.stringify(boundary)}`);
    if (!contents.some((c) => c.includes(boundary))) return boundary;
  }
  throw new Error(`no MIME boundary after ${BOUNDARY_ATTEMPTS} attempts: each one occurred in the content`);
}
