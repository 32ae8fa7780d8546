/**
 * What a message needs from the next hop (RFC 6152 8BITMIME, RFC 6531 SMTPUTF8, RFC 3030
 * BINARYMIME) and the MAIL/RCPT parameters that say so, for the client side.
 */
import { isAscii } from 'node:buffer';
import type { BodyType, DsnNotify } from './params.ts';
import { encodeXtext } from './params.ts';

const HEADER_END = Buffer.from('\r\n\r\n');
const CRLF = Buffer.from('\r\n');

export interface RecipientSpec {
  readonly address: string;
  /** RFC 3461 NOTIFY; empty or absent: not sent (the server's default, FAILURE,DELAY). */
  readonly notify?: readonly DsnNotify[];
  /** RFC 3461 ORCPT as "addr-type;address", the address not encoded (xtext is applied here). */
  readonly orcpt?: string;
}

export interface SendEnvelope {
  /** Reverse path without angle brackets; '' for the null sender. */
  readonly from: string;
  readonly to: readonly (string | RecipientSpec)[];
  /** Extra MAIL parameters passed through as given (a keyword given here is not generated). */
  readonly mailParams?: readonly string[];
  /** RFC 3461 RET and ENVID (ENVID not encoded; xtext is applied here). Sent only when the server offers DSN. */
  readonly dsn?: { readonly ret?: 'FULL' | 'HDRS'; readonly envid?: string };
  /** RFC 8689: only over TLS to a server offering REQUIRETLS; otherwise a local refusal (5.7.10 / 5.7.30). */
  readonly requireTls?: boolean;
  /**
   * The message was received with SMTPUTF8. It then needs SMTPUTF8 when its header has non-ASCII
   * octets; non-ASCII envelope addresses need it in any case.
   */
  readonly smtputf8?: boolean;
  /**
   * Body type; default: 8BITMIME when the message has an octet over 127, else 7BIT. BINARYMIME
   * needs CHUNKING and BINARYMIME at the server (else a local refusal 5.6.3).
   */
  readonly body?: BodyType;
}

export interface MessageNeeds {
  readonly body: BodyType;
  readonly smtputf8: boolean;
}

export function recipientSpec(r: string | RecipientSpec): RecipientSpec {
  return typeof r === 'string' ? { address: r } : r;
}

function nonAscii(text: string): boolean {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: the ASCII range is the point
  return /[^\x00-\x7f]/.test(text);
}

/** The header section: everything before the first empty line (the whole message without one). */
function headerSection(message: Buffer): Buffer {
  if (message.subarray(0, 2).equals(CRLF)) return message.subarray(0, 0);
  const end = message.indexOf(HEADER_END);
  return end === -1 ? message : message.subarray(0, end + 2);
}

export function messageNeeds(envelope: SendEnvelope, message: Buffer): MessageNeeds {
  const addresses = [envelope.from, ...envelope.to.map((r) => recipientSpec(r).address)];
  const smtputf8 =
    addresses.some(nonAscii) || (envelope.smtputf8 === true && !isAscii(headerSection(message)));
  const body = envelope.body ?? (isAscii(message) ? '7BIT' : '8BITMIME');
  return { body, smtputf8 };
}

function keyword(param: string): string {
  const eq = param.indexOf('=');
  return (eq === -1 ? param : param.slice(0, eq)).toUpperCase();
}

export interface MailParamContext {
  readonly extensions: ReadonlyMap<string, string>;
  readonly needs: MessageNeeds;
  readonly size: number;
  readonly tls: boolean;
}

/** MAIL FROM parameters: the caller's first, then SIZE, BODY, SMTPUTF8, RET, ENVID, REQUIRETLS as offered. */
export function mailParameters(envelope: SendEnvelope, c: MailParamContext): string[] {
  const params = [...(envelope.mailParams ?? [])];
  const given = new Set(params.map(keyword));
  const add = (param: string): void => {
    if (!given.has(keyword(param))) params.push(param);
  };
  const ext = c.extensions;
  if (ext.has('SIZE')) add(`SIZE=${c.size}`);
  if (c.needs.body === 'BINARYMIME') add('BODY=BINARYMIME');
  else if (c.needs.body === '8BITMIME' && ext.has('8BITMIME')) add('BODY=8BITMIME');
  if (c.needs.smtputf8 && ext.has('SMTPUTF8')) add('SMTPUTF8');
  if (ext.has('DSN')) {
    if (envelope.dsn?.ret !== undefined) add(`RET=${envelope.dsn.ret}`);
    if (envelope.dsn?.envid !== undefined) add(`ENVID=${encodeXtext(envelope.dsn.envid)}`);
  }
  if (envelope.requireTls === true && c.tls && ext.has('REQUIRETLS')) add('REQUIRETLS');
  return params;
}

/** RCPT TO parameters: NOTIFY and ORCPT when the server offers DSN (RFC 3461 §4). */
export function recipientParameters(r: RecipientSpec, extensions: ReadonlyMap<string, string>): string[] {
  if (!extensions.has('DSN')) return [];
  const params: string[] = [];
  if (r.notify !== undefined && r.notify.length > 0) params.push(`NOTIFY=${r.notify.join(',')}`);
  if (r.orcpt !== undefined) {
    const semi = r.orcpt.indexOf(';');
    // Without an address type, RFC 822 is meant (the only one in common use).
    const type = semi === -1 ? 'rfc822' : r.orcpt.slice(0, semi);
    const address = semi === -1 ? r.orcpt : r.orcpt.slice(semi + 1);
    params.push(`ORCPT=${type};${encodeXtext(address)}`);
  }
  return params;
}

export function commandLine(verb: string, path: string, params: readonly string[]): string {
  return `${verb}:<${path}>${params.length > 0 ? ` ${params.join(' ')}` : ''}`;
}

/** The message as BDAT sends it: as is, with a final CRLF added unless it is binary. */
export function chunkingPayload(message: Buffer, body: BodyType): Buffer {
  if (body === 'BINARYMIME') return message;
  const ends =
    message.length >= 2 && message[message.length - 2] === 0x0d && message[message.length - 1] === 0x0a;
  return ends || message.length === 0 ? message : Buffer.concat([message, CRLF]);
}
