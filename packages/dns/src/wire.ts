/**
 * DNS over the wire (RFC 1035 §4) for the answers node:dns cannot give: the AD flag of a
 * validating resolver (RFC 4035 §3.2.3, RFC 6840 §5.7), asked for with the EDNS0 DO bit
 * (RFC 6891, RFC 3225), and record TTLs. UDP first; TCP when the UDP answer is truncated
 * (RFC 1035 §4.2.1, RFC 7766 §5). The AD flag is only worth what the path to the resolver is
 * worth (RFC 4035 §4.9.3, RFC 6698 §4.1): use a validating resolver on loopback or another
 * trusted channel. Not done: validation ourselves, a retry without EDNS after FORMERR from
 * pre-EDNS servers (RFC 6891 §7), TCP connection reuse (RFC 7766 §6), DNS cookies (RFC 7873).
 */
import { randomInt } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { getServers } from 'node:dns';
import { isIP, isIPv4, isIPv6, connect as tcpConnect } from 'node:net';
import { DnsError, DnsErrorCode } from './errors.ts';
import { ipv6Hex } from './ip.ts';
import { parseServer } from './servers.ts';

/** RR TYPE values (RFC 1035 §3.2.2, RFC 3596 §2.1, RFC 6891 §6.1.1, RFC 4034 §3, RFC 6698 §7.1). */
export const RecordType = {
  A: 1,
  NS: 2,
  CNAME: 5,
  SOA: 6,
  MX: 15,
  TXT: 16,
  AAAA: 28,
  OPT: 41,
  RRSIG: 46,
  TLSA: 52,
} as const;
export type RecordTypeName = keyof typeof RecordType;

/** CLASS IN (RFC 1035 §3.2.4). */
export const CLASS_IN = 1;

/** RCODE values (RFC 1035 §4.1.1; BADVERS needs the EDNS extended RCODE, RFC 6891 §6.1.3). */
export const Rcode = {
  NoError: 0,
  FormErr: 1,
  ServFail: 2,
  NxDomain: 3,
  NotImp: 4,
  Refused: 5,
  BadVers: 16,
} as const;

/** Header flag bits of the second 16-bit word (RFC 1035 §4.1.1). */
export const HeaderFlag = {
  /** Response. */
  QR: 0x8000,
  /** Authoritative answer. */
  AA: 0x0400,
  /** Truncated: ask again over TCP (RFC 1035 §4.2.1, RFC 7766 §5). */
  TC: 0x0200,
  /** Recursion desired. */
  RD: 0x0100,
  /** Recursion available. */
  RA: 0x0080,
  /** Authentic data: the resolver validated every RRset of the answer with DNSSEC (RFC 4035 §3.2.3); in a query, "tell me" (RFC 6840 §5.7). */
  AD: 0x0020,
  /** Checking disabled (RFC 4035 §3.2.2): never set by us, we want the resolver to validate. */
  CD: 0x0010,
} as const;

/** OPCODE (bits 11-14 of the flags word); only QUERY (0) is used. */
const OPCODE_MASK = 0x7800;
/** The DO ("DNSSEC OK") bit in the flags of the OPT record's TTL field (RFC 3225 §3, RFC 6891 §6.1.4). */
const EDNS_DO = 0x8000;
/**
 * The UDP payload size we announce (RFC 6891 §6.2.5): 1232 octets, the DNS Flag Day 2020 value,
 * so that answers fit unfragmented in an IPv6 minimum MTU; larger answers come truncated and go to TCP.
 */
export const DEFAULT_UDP_PAYLOAD = 1232;
/** RFC 6891 §6.2.5: values below 512 are treated as 512. */
const MIN_UDP_PAYLOAD = 512;
const HEADER_LENGTH = 12;
/** RFC 1035 §2.3.4 */
const MAX_LABEL = 63;
const MAX_NAME = 255;
/** Compression pointers followed in one name before it counts as a loop. */
const MAX_POINTERS = 64;
const DEFAULT_PORT = 53;

export const WIRE_DEFAULTS = { timeoutMs: 2000, tries: 2, udpPayloadSize: DEFAULT_UDP_PAYLOAD } as const;

/** The parsed RDATA of the types we read; others keep their raw bytes. */
export type RecordData =
  | { type: 'A'; address: string }
  | { type: 'AAAA'; address: string }
  | { type: 'CNAME'; target: string }
  | { type: 'MX'; preference: number; exchange: string }
  /** RFC 6698 §2.1 */
  | { type: 'TLSA'; usage: number; selector: number; matchingType: number; data: Buffer }
  /** RFC 1035 §3.3.13 */
  | {
      type: 'SOA';
      mname: string;
      rname: string;
      serial: number;
      refresh: number;
      retry: number;
      expire: number;
      minimum: number;
    }
  | { type: 'OTHER'; code: number; data: Buffer };

export interface WireRecord {
  readonly name: string;
  /** The TYPE code (RecordType). */
  readonly type: number;
  readonly class: number;
  readonly ttl: number;
  readonly data: RecordData;
}

export interface WireQuestion {
  readonly name: string;
  readonly type: number;
  readonly class: number;
}

/** The EDNS0 OPT pseudo-record of a message (RFC 6891 §6.1.2). */
export interface Edns {
  readonly udpPayloadSize: number;
  readonly version: number;
  readonly dnssecOk: boolean;
}

export interface WireMessage {
  readonly id: number;
  /** The header's flag word without the RCODE bits (HeaderFlag, OPCODE). */
  readonly flags: number;
  /** The full RCODE: the header's 4 bits plus the OPT record's upper 8 (RFC 6891 §6.1.3). */
  readonly rcode: number;
  readonly questions: readonly WireQuestion[];
  readonly answers: readonly WireRecord[];
  readonly authority: readonly WireRecord[];
  /** Without the OPT record, which is `edns`. */
  readonly additional: readonly WireRecord[];
  readonly edns: Edns | undefined;
}

/** A DNS name in the form we compare: lower case (RFC 4343 §3), no trailing dot. */
export function canonicalName(name: string): string {
  const lower = name.toLowerCase();
  return lower.endsWith('.') && lower.length > 1 ? lower.slice(0, -1) : lower;
}

function badName(name: string, why: string): DnsError {
  return new DnsError(DnsErrorCode.BadName, `DNS name ${JSON.stringify(name)}: ${why}`, { hostname: name });
}

function badResponse(why: string): DnsError {
  return new DnsError(DnsErrorCode.BadResponse, `malformed DNS message: ${why}`);
}

/** Uncompressed wire form of a name (RFC 1035 §3.1); labels are ASCII (an A-label for IDNs). */
export function encodeName(name: string): Buffer {
  const canonical = name === '.' || name === '' ? '' : name.endsWith('.') ? name.slice(0, -1) : name;
  const parts: Buffer[] = [];
  let length = 1;
  if (canonical !== '') {
    for (const label of canonical.split('.')) {
      const bytes = Buffer.from(label, 'latin1');
      if (bytes.length === 0) throw badName(name, 'empty label');
      if (bytes.length > MAX_LABEL) throw badName(name, `label over ${MAX_LABEL} octets`);
      if (/[^\x21-\x7e]/.test(label)) throw badName(name, 'labels must be printable ASCII');
      parts.push(Buffer.from([bytes.length]), bytes);
      length += 1 + bytes.length;
    }
  }
  if (length > MAX_NAME) throw badName(name, `over ${MAX_NAME} octets`);
  parts.push(Buffer.from([0]));
  return Buffer.concat(parts);
}

/** Reads a possibly compressed name (RFC 1035 §4.1.4) at `offset`; returns it and the offset after it. */
export function decodeName(message: Buffer, offset: number): { name: string; next: number } {
  const labels: string[] = [];
  let position = offset;
  let next = -1;
  let pointers = 0;
  let length = 1;
  for (;;) {
    if (position >= message.length) throw badResponse('name runs past the end');
    const byte = message[position] as number;
    if (byte === 0) {
      if (next < 0) next = position + 1;
      break;
    }
    const kind = byte & 0xc0;
    if (kind === 0xc0) {
      if (position + 1 >= message.length) throw badResponse('truncated compression pointer');
      if (++pointers > MAX_POINTERS) throw badResponse('compression pointer loop');
      if (next < 0) next = position + 2;
      const target = ((byte & 0x3f) << 8) | (message[position + 1] as number);
      // Pointers must point backwards: anything else is a loop or garbage.
      if (target >= position) throw badResponse('forward compression pointer');
      position = target;
      continue;
    }
    if (kind !== 0) throw badResponse(`unknown label type 0x${kind.toString(16)}`);
    const end = position + 1 + byte;
    if (end > message.length) throw badResponse('label runs past the end');
    length += 1 + byte;
    if (length > MAX_NAME) throw badResponse(`name over ${MAX_NAME} octets`);
    labels.push(escapeLabel(message.subarray(position + 1, end)));
    position = end;
  }
  return { name: labels.length === 0 ? '.' : labels.join('.'), next };
}

/** Presentation form of a label (RFC 4343 §2.1): `\.`, `\\` and `\DDD` for what is not plain. */
function escapeLabel(bytes: Buffer): string {
  let out = '';
  for (const b of bytes) {
    if (b === 0x2e || b === 0x5c) out += `\\${String.fromCharCode(b)}`;
    else if (b > 0x20 && b < 0x7f) out += String.fromCharCode(b);
    else out += `\\${b.toString().padStart(3, '0')}`;
  }
  return out;
}

function u16(value: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(value & 0xffff);
  return b;
}

function u32(value: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(value >>> 0);
  return b;
}

function ipv6Text(bytes: Buffer): string {
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(bytes.readUInt16BE(i).toString(16));
  // The longest run of two or more zero groups becomes "::" (RFC 5952 §4.2).
  let best = -1;
  let bestLength = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > bestLength) {
      best = i;
      bestLength = j - i;
    }
    i = j;
  }
  if (best < 0) return groups.join(':');
  return `${groups.slice(0, best).join(':')}::${groups.slice(best + bestLength).join(':')}`;
}

/** The RDATA octets of a record (names uncompressed). */
export function encodeRecordData(data: RecordData): Buffer {
  switch (data.type) {
    case 'A':
      if (!isIPv4(data.address)) throw new TypeError(`not an IPv4 address: ${data.address}`);
      return Buffer.from(data.address.split('.').map(Number));
    case 'AAAA':
      if (!isIPv6(data.address)) throw new TypeError(`not an IPv6 address: ${data.address}`);
      return Buffer.from(ipv6Hex(data.address), 'hex');
    case 'CNAME':
      return encodeName(data.target);
    case 'MX':
      return Buffer.concat([u16(data.preference), encodeName(data.exchange)]);
    case 'TLSA':
      return Buffer.concat([Buffer.from([data.usage, data.selector, data.matchingType]), data.data]);
    case 'SOA':
      return Buffer.concat([
        encodeName(data.mname),
        encodeName(data.rname),
        ...[data.serial, data.refresh, data.retry, data.expire, data.minimum].map(u32),
      ]);
    case 'OTHER':
      return data.data;
  }
}

/** The TYPE code of parsed data. */
export function typeOf(data: RecordData): number {
  return data.type === 'OTHER' ? data.code : RecordType[data.type];
}

function decodeRecordData(message: Buffer, type: number, start: number, end: number): RecordData {
  const rdata = message.subarray(start, end);
  const name = (at: number): { name: string; next: number } => {
    const decoded = decodeName(message, at);
    if (decoded.next > end) throw badResponse('name runs past its RDATA');
    return decoded;
  };
  switch (type) {
    case RecordType.A:
      if (rdata.length !== 4) throw badResponse('A RDATA is not 4 octets');
      return { type: 'A', address: [...rdata].join('.') };
    case RecordType.AAAA:
      if (rdata.length !== 16) throw badResponse('AAAA RDATA is not 16 octets');
      return { type: 'AAAA', address: ipv6Text(rdata) };
    case RecordType.CNAME:
      return { type: 'CNAME', target: name(start).name };
    case RecordType.MX:
      if (rdata.length < 3) throw badResponse('MX RDATA too short');
      return { type: 'MX', preference: rdata.readUInt16BE(0), exchange: name(start + 2).name };
    case RecordType.TLSA:
      // RFC 6698 §2.1: three octets, then the association data (at least one octet).
      if (rdata.length < 4) throw badResponse('TLSA RDATA too short');
      return {
        type: 'TLSA',
        usage: rdata[0] as number,
        selector: rdata[1] as number,
        matchingType: rdata[2] as number,
        data: Buffer.from(rdata.subarray(3)),
      };
    case RecordType.SOA: {
      const m = name(start);
      const r = name(m.next);
      if (end - r.next !== 20) throw badResponse('SOA RDATA has the wrong length');
      const at = (i: number) => message.readUInt32BE(r.next + 4 * i);
      return {
        type: 'SOA',
        mname: m.name,
        rname: r.name,
        serial: at(0),
        refresh: at(1),
        retry: at(2),
        expire: at(3),
        minimum: at(4),
      };
    }
    default:
      return { type: 'OTHER', code: type, data: Buffer.from(rdata) };
  }
}

export interface EncodableRecord {
  readonly name: string;
  readonly ttl: number;
  readonly data: RecordData;
  /** Default IN. */
  readonly class?: number;
}

export interface EncodableMessage {
  readonly id: number;
  /** Header flags (HeaderFlag bits); the RCODE goes in `rcode`. */
  readonly flags: number;
  readonly rcode?: number;
  readonly questions: readonly WireQuestion[];
  readonly answers?: readonly EncodableRecord[];
  readonly authority?: readonly EncodableRecord[];
  readonly additional?: readonly EncodableRecord[];
  /** Adds an OPT record (RFC 6891 §6.1.2). */
  readonly edns?: Edns;
}

function encodeRecord(r: EncodableRecord): Buffer {
  const rdata = encodeRecordData(r.data);
  return Buffer.concat([
    encodeName(r.name),
    u16(typeOf(r.data)),
    u16(r.class ?? CLASS_IN),
    u32(r.ttl),
    u16(rdata.length),
    rdata,
  ]);
}

/** A message in wire form, names uncompressed (queries, and the answers of test servers). */
export function encodeMessage(m: EncodableMessage): Buffer {
  const rcode = m.rcode ?? 0;
  const additional = (m.additional ?? []).map(encodeRecord);
  if (m.edns !== undefined) {
    // OPT: root owner, CLASS = UDP payload size, TTL = extended RCODE, version, flags (RFC 6891 §6.1.3).
    const ttl = ((rcode >> 4) << 24) | (m.edns.version << 16) | (m.edns.dnssecOk ? EDNS_DO : 0);
    additional.push(
      Buffer.concat([Buffer.from([0]), u16(RecordType.OPT), u16(m.edns.udpPayloadSize), u32(ttl), u16(0)]),
    );
  }
  const answers = (m.answers ?? []).map(encodeRecord);
  const authority = (m.authority ?? []).map(encodeRecord);
  const header = Buffer.concat([
    u16(m.id),
    u16((m.flags & ~0x000f) | (rcode & 0x0f)),
    u16(m.questions.length),
    u16(answers.length),
    u16(authority.length),
    u16(additional.length),
  ]);
  const questions = m.questions.map((q) => Buffer.concat([encodeName(q.name), u16(q.type), u16(q.class)]));
  return Buffer.concat([header, ...questions, ...answers, ...authority, ...additional]);
}

/** Parses a whole message; anything malformed is a DnsError BadResponse. */
export function decodeMessage(message: Buffer): WireMessage {
  if (message.length < HEADER_LENGTH) throw badResponse('shorter than a header');
  const id = message.readUInt16BE(0);
  const word = message.readUInt16BE(2);
  const counts = [4, 6, 8, 10].map((at) => message.readUInt16BE(at)) as [number, number, number, number];
  let offset = HEADER_LENGTH;
  const questions: WireQuestion[] = [];
  for (let i = 0; i < counts[0]; i++) {
    const { name, next } = decodeName(message, offset);
    if (next + 4 > message.length) throw badResponse('question runs past the end');
    questions.push({ name, type: message.readUInt16BE(next), class: message.readUInt16BE(next + 2) });
    offset = next + 4;
  }
  const section = (count: number): { records: WireRecord[]; opt: Edns[]; rcodeHigh: number[] } => {
    const records: WireRecord[] = [];
    const opt: Edns[] = [];
    const rcodeHigh: number[] = [];
    for (let i = 0; i < count; i++) {
      const { name, next } = decodeName(message, offset);
      if (next + 10 > message.length) throw badResponse('record header runs past the end');
      const type = message.readUInt16BE(next);
      const klass = message.readUInt16BE(next + 2);
      const ttl = message.readUInt32BE(next + 4);
      const length = message.readUInt16BE(next + 8);
      const start = next + 10;
      const end = start + length;
      if (end > message.length) throw badResponse('RDATA runs past the end');
      offset = end;
      if (type === RecordType.OPT) {
        opt.push({ udpPayloadSize: klass, version: (ttl >>> 16) & 0xff, dnssecOk: (ttl & EDNS_DO) !== 0 });
        rcodeHigh.push(ttl >>> 24);
        continue;
      }
      // RFC 2181 §8: a TTL with the top bit set is read as zero.
      records.push({
        name,
        type,
        class: klass,
        ttl: ttl > 0x7fffffff ? 0 : ttl,
        data: decodeRecordData(message, type, start, end),
      });
    }
    return { records, opt, rcodeHigh };
  };
  const answers = section(counts[1]);
  const authority = section(counts[2]);
  const additional = section(counts[3]);
  if (answers.opt.length + authority.opt.length > 0) throw badResponse('OPT outside the additional section');
  // RFC 6891 §6.1.1: more than one OPT is FORMERR.
  if (additional.opt.length > 1) throw badResponse('more than one OPT record');
  const edns = additional.opt[0];
  const high = additional.rcodeHigh[0] ?? 0;
  return {
    id,
    flags: word & ~0x000f,
    rcode: (high << 4) | (word & 0x0f),
    questions,
    answers: answers.records,
    authority: authority.records,
    additional: additional.records,
    edns,
  };
}

export interface QueryOptions {
  /**
   * `ip`, `ip:port`, `[ipv6]` or `[ipv6]:port`, asked in order (the next after SERVFAIL, REFUSED,
   * a timeout or an unreachable server). Default: the system's resolvers (/etc/resolv.conf).
   */
  readonly servers?: readonly string[];
  /** Per attempt; default 2000. */
  readonly timeoutMs?: number;
  /** UDP attempts per server; default 2. */
  readonly tries?: number;
  /** Announced EDNS0 UDP payload size; default 1232 (at least 512). */
  readonly udpPayloadSize?: number;
  /** Set the DO bit (RFC 3225) and AD in the query; default true. */
  readonly dnssec?: boolean;
}

/** A response that answers the question: NOERROR or NXDOMAIN. Other RCODEs are thrown as DnsError. */
export interface QueryResponse {
  readonly message: WireMessage;
  /** The AD flag: the resolver validated the answer with DNSSEC (RFC 4035 §3.2.3). */
  readonly authenticated: boolean;
  /** The server that answered, as configured. */
  readonly server: string;
  readonly transport: 'udp' | 'tcp';
}

interface Endpoint {
  readonly text: string;
  readonly host: string;
  readonly port: number;
  readonly family: 4 | 6;
}

function endpoint(text: string): Endpoint {
  const server = parseServer(text);
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(server);
  if (bracketed) {
    return {
      text: server,
      host: bracketed[1] as string,
      port: Number(bracketed[2] ?? DEFAULT_PORT),
      family: 6,
    };
  }
  if (isIP(server) !== 0)
    return { text: server, host: server, port: DEFAULT_PORT, family: isIPv6(server) ? 6 : 4 };
  const colon = server.lastIndexOf(':');
  return { text: server, host: server.slice(0, colon), port: Number(server.slice(colon + 1)), family: 4 };
}

function rcodeError(rcode: number, name: string, type: string): DnsError {
  const code =
    rcode === Rcode.ServFail
      ? DnsErrorCode.ServerFailure
      : rcode === Rcode.Refused
        ? DnsErrorCode.Refused
        : rcode === Rcode.FormErr
          ? DnsErrorCode.FormatError
          : rcode === Rcode.NotImp
            ? DnsErrorCode.NotImplemented
            : DnsErrorCode.Other;
  return new DnsError(code, `DNS ${type} ${name}: RCODE ${rcode}`, { hostname: name, rrtype: type });
}

function typeName(type: number): string {
  for (const [name, code] of Object.entries(RecordType)) if (code === type) return name;
  return `TYPE${type}`;
}

/** The response is the answer to our query (RFC 5452 §9.1: id, and the question echoed). */
function answers(message: WireMessage, id: number, name: string, type: number): boolean {
  if (message.id !== id || (message.flags & HeaderFlag.QR) === 0) return false;
  if ((message.flags & OPCODE_MASK) !== 0) return false;
  const q = message.questions[0];
  // A FORMERR/NOTIMP may come without the question.
  if (q === undefined) return message.questions.length === 0 && message.rcode !== Rcode.NoError;
  return (
    message.questions.length === 1 &&
    q.type === type &&
    q.class === CLASS_IN &&
    canonicalName(q.name) === canonicalName(name)
  );
}

function udpExchange(
  server: Endpoint,
  query: Buffer,
  timeoutMs: number,
  accept: (m: WireMessage) => boolean,
) {
  return new Promise<WireMessage>((resolve, reject) => {
    // A new socket (a new random source port) per attempt (RFC 5452 §9.2).
    const socket = createSocket(server.family === 6 ? 'udp6' : 'udp4');
    let finished = false;
    const done = (error: Error | undefined, message?: WireMessage): void => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      socket.close();
      if (error) reject(error);
      else resolve(message as WireMessage);
    };
    const timer = setTimeout(
      () => done(new DnsError(DnsErrorCode.Timeout, `no answer from ${server.text} within ${timeoutMs} ms`)),
      timeoutMs,
    );
    // The socket is connected: the kernel passes on datagrams from the server's address and port only.
    socket.on('message', (data) => {
      // Only the answer to this query; anything else (a late answer, garbage) is ignored.
      let message: WireMessage;
      try {
        message = decodeMessage(data);
      } catch {
        return;
      }
      if (accept(message)) done(undefined, message);
    });
    socket.on('error', (error: NodeJS.ErrnoException) => {
      const refused = error.code === 'ECONNREFUSED';
      done(
        new DnsError(
          refused ? DnsErrorCode.ConnectionRefused : DnsErrorCode.Other,
          `DNS server ${server.text}: ${error.message}`,
          { resolverCode: refused ? undefined : error.code },
          { cause: error },
        ),
      );
    });
    // connect() makes the kernel report ICMP port unreachable as ECONNREFUSED.
    socket.connect(server.port, server.host, () => socket.send(query));
  });
}

/** One query over TCP, two-octet length prefix (RFC 1035 §4.2.2, RFC 7766 §8). */
function tcpExchange(server: Endpoint, query: Buffer, timeoutMs: number): Promise<WireMessage> {
  return new Promise<WireMessage>((resolve, reject) => {
    const socket = tcpConnect({ host: server.host, port: server.port });
    let buffer = Buffer.alloc(0);
    let finished = false;
    const done = (error: Error | undefined, message?: WireMessage): void => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      socket.destroy();
      if (error) reject(error);
      else resolve(message as WireMessage);
    };
    const timer = setTimeout(
      () =>
        done(new DnsError(DnsErrorCode.Timeout, `no TCP answer from ${server.text} within ${timeoutMs} ms`)),
      timeoutMs,
    );
    socket.once('connect', () => socket.write(Buffer.concat([u16(query.length), query])));
    socket.on('data', (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk]);
      if (buffer.length < 2) return;
      const length = buffer.readUInt16BE(0);
      if (buffer.length < 2 + length) return;
      try {
        done(undefined, decodeMessage(buffer.subarray(2, 2 + length)));
      } catch (error) {
        done(error as Error);
      }
    });
    socket.on('end', () => done(badResponse(`${server.text} closed the TCP connection before answering`)));
    socket.on('error', (error: NodeJS.ErrnoException) => {
      const refused = error.code === 'ECONNREFUSED';
      done(
        new DnsError(
          refused ? DnsErrorCode.ConnectionRefused : DnsErrorCode.Other,
          `DNS server ${server.text} (TCP): ${error.message}`,
          { resolverCode: refused ? undefined : error.code },
          { cause: error },
        ),
      );
    });
  });
}

function checkOption(name: string, value: number, min: number): number {
  if (!Number.isFinite(value) || value < min) {
    throw new DnsError(DnsErrorCode.InvalidOptions, `DNS query option ${name} must be a number >= ${min}`);
  }
  return value;
}

/**
 * Asks the servers for `name`/`type` (RD set, EDNS0 with DO and AD unless `dnssec` is false)
 * and returns the first NOERROR or NXDOMAIN answer. A truncated UDP answer is asked again over
 * TCP. SERVFAIL, REFUSED, timeouts and unreachable servers move on to the next server; when
 * none answers, the last failure is thrown (DnsError, temporary). A malformed name throws BadName.
 */
export async function query(name: string, type: number, options: QueryOptions = {}): Promise<QueryResponse> {
  const timeoutMs = checkOption('timeoutMs', options.timeoutMs ?? WIRE_DEFAULTS.timeoutMs, 1);
  const tries = checkOption('tries', options.tries ?? WIRE_DEFAULTS.tries, 1);
  const payload = Math.max(
    MIN_UDP_PAYLOAD,
    checkOption('udpPayloadSize', options.udpPayloadSize ?? WIRE_DEFAULTS.udpPayloadSize, 1),
  );
  const dnssec = options.dnssec ?? true;
  const configured =
    options.servers !== undefined && options.servers.length > 0 ? options.servers : getServers();
  const servers = configured.map(endpoint);
  if (servers.length === 0) throw new DnsError(DnsErrorCode.InvalidServer, 'no DNS server configured');
  const rrtype = typeName(type);
  encodeName(name); // a bad name fails before anything is sent
  let last: DnsError | undefined;
  for (const server of servers) {
    for (let attempt = 0; attempt < tries; attempt++) {
      const id = randomInt(0, 0x10000);
      const wire = encodeMessage({
        id,
        flags: HeaderFlag.RD | (dnssec ? HeaderFlag.AD : 0),
        questions: [{ name, type, class: CLASS_IN }],
        edns: { udpPayloadSize: payload, version: 0, dnssecOk: dnssec },
      });
      const accept = (m: WireMessage) => answers(m, id, name, type);
      let message: WireMessage;
      let transport: 'udp' | 'tcp' = 'udp';
      try {
        message = await udpExchange(server, wire, timeoutMs, accept);
        if ((message.flags & HeaderFlag.TC) !== 0) {
          transport = 'tcp';
          message = await tcpExchange(server, wire, timeoutMs);
          if (!accept(message)) throw badResponse(`${server.text} answered another question over TCP`);
        }
      } catch (error) {
        last = error instanceof DnsError ? withQuestion(error, name, rrtype) : undefined;
        if (last === undefined) throw error;
        // A timeout is worth another try; a refusing or broken server is not.
        if (last.code === DnsErrorCode.Timeout) continue;
        break;
      }
      if (message.rcode === Rcode.NoError || message.rcode === Rcode.NxDomain) {
        return {
          message,
          authenticated: (message.flags & HeaderFlag.AD) !== 0,
          server: server.text,
          transport,
        };
      }
      last = rcodeError(message.rcode, name, rrtype);
      break;
    }
  }
  throw last ?? new DnsError(DnsErrorCode.Other, `DNS ${rrtype} ${name}: no answer`);
}

function withQuestion(error: DnsError, name: string, rrtype: string): DnsError {
  if (error.hostname !== undefined) return error;
  return new DnsError(
    error.code,
    `DNS ${rrtype} ${name}: ${error.message}`,
    { hostname: name, rrtype, resolverCode: error.resolverCode },
    { cause: error.cause ?? error },
  );
}

/** What an answer says about `name`/`type` after the CNAMEs in it (RFC 1034 §3.6.2, §4.3.2). */
export interface RecordSet {
  /** The owner of the records: `name`, or the end of its CNAME chain. */
  readonly owner: string;
  /** The CNAMEs followed, in order. */
  readonly aliases: readonly string[];
  readonly records: readonly WireRecord[];
  /** The smallest TTL of the records and the CNAMEs that led to them; undefined without records. */
  readonly ttlSeconds: number | undefined;
}

/** Follows CNAMEs from `name` inside the answer section and collects the records of `type` at the end. */
export function recordSet(message: WireMessage, name: string, type: number): RecordSet {
  let owner = canonicalName(name);
  const aliases: string[] = [];
  let ttl = Number.POSITIVE_INFINITY;
  const seen = new Set<string>([owner]);
  for (;;) {
    const cname =
      type === RecordType.CNAME
        ? undefined
        : message.answers.find((r) => r.type === RecordType.CNAME && canonicalName(r.name) === owner);
    if (cname === undefined || cname.data.type !== 'CNAME') break;
    const target = canonicalName(cname.data.target);
    if (seen.has(target)) throw badResponse(`CNAME loop at ${target}`);
    seen.add(target);
    aliases.push(target);
    ttl = Math.min(ttl, cname.ttl);
    owner = target;
  }
  const records = message.answers.filter((r) => r.type === type && canonicalName(r.name) === owner);
  for (const r of records) ttl = Math.min(ttl, r.ttl);
  return { owner, aliases, records, ttlSeconds: records.length > 0 ? ttl : undefined };
}

/**
 * How long a negative answer may be cached (RFC 2308 §5): the smaller of the SOA record's TTL
 * and its MINIMUM field, from the authority section; undefined without an SOA.
 */
export function negativeTtl(message: WireMessage): number | undefined {
  const soa = message.authority.find((r) => r.data.type === 'SOA');
  if (soa === undefined || soa.data.type !== 'SOA') return undefined;
  return Math.min(soa.ttl, soa.data.minimum);
}
