/**
 * ESMTP parameters of MAIL FROM and RCPT TO (RFC 5321 §4.1.2 esmtp-param): parsed and validated
 * into typed values, so that the session only decides sequence and policy. Each failure carries
 * the reply to send.
 */

import { asciiUpper } from './ascii.ts';
import { Enhanced, ReplyCode } from './codes.ts';
import { type Reply, reply } from './reply.ts';

export type BodyType = '7BIT' | '8BITMIME' | 'BINARYMIME';

/** RFC 2852 BY=<seconds>;<R|N>[T] */
export interface DeliverBy {
  readonly seconds: number;
  /** R: return the message if not delivered in time; N: notify (DSN) and keep trying. */
  readonly mode: 'R' | 'N';
  readonly trace: boolean;
}

export interface MailParameters {
  /** RFC 1870 declared size, undefined when not given. */
  readonly size: number | undefined;
  readonly body: BodyType;
  readonly smtputf8: boolean;
  /** RFC 3461 RET */
  readonly ret: 'FULL' | 'HDRS' | undefined;
  /** RFC 3461 ENVID, decoded from xtext. */
  readonly envid: string | undefined;
  /** RFC 4954 §5 AUTH= identity (decoded xtext; '<>' when the submitter is unknown). */
  readonly authParam: string | undefined;
  /** RFC 8689 REQUIRETLS */
  readonly requireTls: boolean;
  readonly deliverBy: DeliverBy | undefined;
}

export type DsnNotify = 'SUCCESS' | 'FAILURE' | 'DELAY' | 'NEVER';

export interface RecipientParameters {
  /** RFC 3461 NOTIFY; empty when absent (the default, FAILURE and DELAY). */
  readonly notify: readonly DsnNotify[];
  /** RFC 3461 ORCPT as "addr-type;address" with the address decoded from xtext. */
  readonly orcpt: string | undefined;
}

/** What the session has enabled; parameters of extensions not in force are refused. */
export interface ParameterContext {
  readonly maxMessageSize: number;
  readonly tls: boolean;
}

export type ParamResult<T> = { ok: true; value: T } | { ok: false; reply: Reply };

const unsupported = (key: string): Reply =>
  reply(ReplyCode.ParametersNotRecognized, Enhanced.InvalidArguments, `Unsupported parameter ${key}`);
const invalid = (text: string): Reply =>
  reply(ReplyCode.ParameterSyntaxError, Enhanced.InvalidArguments, text);

/** RFC 3461 §4: xtext = *( xchar / hexchar ), xchar = "!".."~" except "+" and "="; hexchar = "+" 2HEXDIG. */
export function decodeXtext(text: string): string | undefined {
  let out = '';
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x2b) {
      const hex = text.slice(i + 1, i + 3);
      if (!/^[0-9A-F]{2}$/.test(hex)) return undefined;
      out += String.fromCharCode(Number.parseInt(hex, 16));
      i += 2;
    } else if (c >= 0x21 && c <= 0x7e && c !== 0x3d) {
      out += text[i];
    } else {
      return undefined;
    }
  }
  return out;
}

/** The inverse of decodeXtext, for the client side and for storage. */
export function encodeXtext(text: string): string {
  let out = '';
  for (const ch of text) {
    const c = ch.charCodeAt(0);
    if (ch.length === 1 && c >= 0x21 && c <= 0x7e && c !== 0x2b && c !== 0x3d) out += ch;
    else
      for (const byte of Buffer.from(ch, 'utf8'))
        out += `+${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

const BODY_TYPES: ReadonlySet<string> = new Set<BodyType>(['7BIT', '8BITMIME', 'BINARYMIME']);

export function parseMailParameters(
  params: ReadonlyMap<string, string | undefined>,
  context: ParameterContext,
): ParamResult<MailParameters> {
  let size: number | undefined;
  let body: BodyType = '7BIT';
  let smtputf8 = false;
  let ret: MailParameters['ret'];
  let envid: string | undefined;
  let authParam: string | undefined;
  let requireTls = false;
  let deliverBy: DeliverBy | undefined;
  for (const [key, value] of params) {
    switch (key) {
      case 'SIZE':
        if (value === undefined || !/^\d{1,20}$/.test(value))
          return { ok: false, reply: invalid('Invalid SIZE') };
        size = Number(value);
        if (size > context.maxMessageSize) {
          return {
            ok: false,
            reply: reply(
              ReplyCode.ExceededStorage,
              Enhanced.MessageTooBig,
              'Message size exceeds fixed maximum message size',
            ),
          };
        }
        break;
      case 'BODY': {
        const v = value === undefined ? undefined : asciiUpper(value);
        if (v === undefined || !BODY_TYPES.has(v)) return { ok: false, reply: invalid('Invalid BODY') };
        body = v as BodyType;
        break;
      }
      case 'SMTPUTF8':
        if (value !== undefined) return { ok: false, reply: invalid('SMTPUTF8 takes no value') };
        smtputf8 = true;
        break;
      case 'RET': {
        const v = value === undefined ? undefined : asciiUpper(value);
        if (v !== 'FULL' && v !== 'HDRS') return { ok: false, reply: invalid('RET must be FULL or HDRS') };
        ret = v;
        break;
      }
      case 'ENVID': {
        // RFC 3461 §4.4: at most 100 characters, xtext.
        const decoded = value === undefined || value.length > 100 ? undefined : decodeXtext(value);
        if (decoded === undefined || decoded === '') return { ok: false, reply: invalid('Invalid ENVID') };
        envid = decoded;
        break;
      }
      case 'AUTH': {
        const decoded = value === undefined ? undefined : decodeXtext(value);
        if (decoded === undefined) return { ok: false, reply: invalid('Invalid AUTH parameter') };
        authParam = decoded;
        break;
      }
      case 'REQUIRETLS':
        if (value !== undefined) return { ok: false, reply: invalid('REQUIRETLS takes no value') };
        if (!context.tls) {
          // RFC 8689 §4.1: only over TLS (it is not advertised otherwise).
          return {
            ok: false,
            reply: reply(ReplyCode.AuthRequired, Enhanced.RequireTlsNeeded, 'REQUIRETLS needs a TLS session'),
          };
        }
        requireTls = true;
        break;
      case 'BY': {
        // RFC 2852 §4: by-time is a signed decimal of at most 9 digits; R mode needs a positive one.
        const m = value === undefined ? null : /^([+-]?\d{1,9});([RrNn])([Tt]?)$/.exec(value);
        if (m === null) return { ok: false, reply: invalid('Invalid BY parameter') };
        const seconds = Number(m[1]);
        const mode = asciiUpper(m[2] as string) as 'R' | 'N';
        if (mode === 'R' && seconds <= 0) {
          return { ok: false, reply: invalid('BY with R mode needs a positive by-time') };
        }
        deliverBy = { seconds, mode, trace: m[3] !== '' };
        break;
      }
      default:
        return { ok: false, reply: unsupported(key) };
    }
  }
  return { ok: true, value: { size, body, smtputf8, ret, envid, authParam, requireTls, deliverBy } };
}

const NOTIFY_VALUES: ReadonlySet<string> = new Set(['SUCCESS', 'FAILURE', 'DELAY']);

export function parseRecipientParameters(
  params: ReadonlyMap<string, string | undefined>,
  utf8: boolean,
): ParamResult<RecipientParameters> {
  let notify: DsnNotify[] = [];
  let orcpt: string | undefined;
  for (const [key, value] of params) {
    if (key === 'NOTIFY') {
      const list = value === undefined ? [] : asciiUpper(value).split(',');
      const valid =
        list.length > 0 &&
        new Set(list).size === list.length &&
        (list.length === 1 && list[0] === 'NEVER' ? true : list.every((v) => NOTIFY_VALUES.has(v)));
      if (!valid)
        return { ok: false, reply: invalid('NOTIFY must be NEVER or a list of SUCCESS, FAILURE, DELAY') };
      notify = list as DsnNotify[];
    } else if (key === 'ORCPT') {
      // RFC 3461 §4.2: addr-type ";" xtext; RFC 6533 utf-8 addr-type allowed with SMTPUTF8.
      const m = value === undefined ? null : /^([A-Za-z0-9-]+);(.+)$/u.exec(value);
      const type = m?.[1]?.toLowerCase();
      if (m === null || type === undefined) return { ok: false, reply: invalid('Invalid ORCPT') };
      const raw = m[2] as string;
      const decoded = type === 'utf-8' && utf8 ? raw : decodeXtext(raw);
      if (decoded === undefined || decoded === '' || raw.length > 500) {
        return { ok: false, reply: invalid('Invalid ORCPT') };
      }
      orcpt = `${type};${decoded}`;
    } else {
      return { ok: false, reply: unsupported(key) };
    }
  }
  return { ok: true, value: { notify, orcpt } };
}
