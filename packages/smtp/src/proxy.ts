import { isIPv4, isIPv6, SocketAddress } from 'node:net';

/**
 * PROXY protocol v1 (text) and v2 (binary) header parser, per the HAProxy specification
 * (doc/proxy-protocol.txt, version 2.9). The listener only expects a header from configured
 * load-balancer networks, so anything that is not a complete, valid header is an error: the
 * spec (§2) forbids guessing whether a header is present, and the connection is closed without
 * an SMTP reply.
 *
 * The parser is a pure function over the bytes received so far, so the reader can call it
 * again as more bytes arrive; it answers 'need-more' only while a valid header is still possible.
 */

export interface ProxyEndpoint {
  readonly address: string;
  readonly port: number;
}

export type ProxyFamily = 'tcp4' | 'tcp6' | 'unix' | 'unknown';

export type ProxyParse =
  /** Not enough bytes yet to decide. */
  | { readonly kind: 'need-more' }
  | {
      readonly kind: 'ok';
      /** Exact header length: the bytes after it belong to SMTP. */
      readonly consumed: number;
      readonly version: 1 | 2;
      readonly command: 'PROXY' | 'LOCAL';
      readonly family: ProxyFamily;
      /** Present only for PROXY over TCP4/TCP6; otherwise the socket's own endpoints apply. */
      readonly source?: ProxyEndpoint;
      readonly destination?: ProxyEndpoint;
    }
  /** Close the connection (no SMTP reply is sent before the header). */
  | { readonly kind: 'error'; readonly code: ProxyErrorCode; readonly reason: string };

/** Stable codes of header failures (log fields and metric labels). */
export const ProxyErrorCode = {
  /** Neither the v1 "PROXY " nor the v2 signature. */
  NotProxy: 'PETREL_ERR_PROXY_NOT_PROXY',
  /** §2.1: no CRLF within the first 107 octets. */
  V1TooLong: 'PETREL_ERR_PROXY_V1_TOO_LONG',
  /** §2.1: a lone CR or LF must not end the line; other control or non-ASCII octets. */
  V1BadCharacter: 'PETREL_ERR_PROXY_V1_BAD_CHARACTER',
  /** §2.1: protocol keyword, field count or single-space separators. */
  V1Syntax: 'PETREL_ERR_PROXY_V1_SYNTAX',
  V1BadAddress: 'PETREL_ERR_PROXY_V1_BAD_ADDRESS',
  V1BadPort: 'PETREL_ERR_PROXY_V1_BAD_PORT',
  /** §2.2: the version nibble must be 2. */
  V2BadVersion: 'PETREL_ERR_PROXY_V2_BAD_VERSION',
  /** §2.2: commands other than LOCAL (0) and PROXY (1). */
  V2BadCommand: 'PETREL_ERR_PROXY_V2_BAD_COMMAND',
  /** §2.2: unassigned family or transport values, or a combination we do not accept (DGRAM). */
  V2BadFamily: 'PETREL_ERR_PROXY_V2_BAD_FAMILY',
  /** Our cap on the length field (PROXY_V2_MAX). */
  V2TooLong: 'PETREL_ERR_PROXY_V2_TOO_LONG',
  /** §2.2: the length field is shorter than the family's address block. */
  V2ShortAddress: 'PETREL_ERR_PROXY_V2_SHORT_ADDRESS',
  /** §2.2: a TLV that does not fit the length field. */
  V2BadTlv: 'PETREL_ERR_PROXY_V2_BAD_TLV',
  /** §2.2.3: PP2_TYPE_CRC32C present and wrong. */
  V2BadChecksum: 'PETREL_ERR_PROXY_V2_BAD_CHECKSUM',
} as const;
export type ProxyErrorCode = (typeof ProxyErrorCode)[keyof typeof ProxyErrorCode];

/** §2.1: the longest v1 line, "PROXY UNKNOWN <ipv6> <ipv6> 65535 65535\r\n", is 107 octets. */
export const PROXY_V1_MAX = 107;
/** Our cap on the v2 length field (the spec allows 65535); addresses need at most 216 octets. */
export const PROXY_V2_MAX_LENGTH = 16 * 1024;
/** §2.2: 16-octet fixed part. */
const V2_FIXED = 16;
export const PROXY_V2_MAX = V2_FIXED + PROXY_V2_MAX_LENGTH;

/** §2.2: \r\n\r\n\0\r\nQUIT\n */
const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
const V1_PREFIX = Buffer.from('PROXY ', 'latin1');
const CR = 0x0d;
const LF = 0x0a;

/** §2.2: high nibble of the 13th octet. */
const V2_VERSION = 0x2;
/** §2.2: low nibble of the 13th octet. */
const V2Command = { Local: 0x0, Proxy: 0x1 } as const;
/** §2.2: high nibble of the 14th octet. */
const V2Family = { Unspec: 0x0, Inet: 0x1, Inet6: 0x2, Unix: 0x3 } as const;
/** §2.2: low nibble of the 14th octet. */
const V2Transport = { Unspec: 0x0, Stream: 0x1, Dgram: 0x2 } as const;
/** §2.2: address block sizes (addresses, then ports for INET/INET6). */
const V2_ADDRESS_LENGTH: Readonly<Record<number, number>> = {
  [V2Family.Inet]: 12,
  [V2Family.Inet6]: 36,
  [V2Family.Unix]: 216,
};
/** §2.2.3 */
const PP2_TYPE_CRC32C = 0x03;

function fail(code: ProxyErrorCode, reason: string): ProxyParse {
  return { kind: 'error', code, reason };
}

const NEED_MORE: ProxyParse = { kind: 'need-more' };

/** Parses a PROXY v1 or v2 header at the start of buffer. */
export function parseProxyHeader(buffer: Buffer): ProxyParse {
  if (buffer.length === 0) return NEED_MORE;
  const first = buffer[0];
  if (first === V1_PREFIX[0]) return parseV1(buffer);
  if (first === V2_SIGNATURE[0]) return parseV2(buffer);
  return fail(ProxyErrorCode.NotProxy, 'no PROXY protocol header');
}

/** True when the available octets agree with expected (as far as they go). */
function prefixMatches(buffer: Buffer, expected: Buffer): boolean {
  const n = Math.min(buffer.length, expected.length);
  return buffer.compare(expected, 0, n, 0, n) === 0;
}

function parseV1(buffer: Buffer): ProxyParse {
  if (!prefixMatches(buffer, V1_PREFIX)) return fail(ProxyErrorCode.NotProxy, 'no PROXY protocol header');
  // Scan only what may belong to the header, and fail as soon as an octet rules it out.
  const limit = Math.min(buffer.length, PROXY_V1_MAX);
  let end = -1;
  for (let i = V1_PREFIX.length; i < limit; i++) {
    const c = buffer[i] as number;
    if (c === LF) {
      if (buffer[i - 1] !== CR) return fail(ProxyErrorCode.V1BadCharacter, 'v1 line ends with a bare LF');
      end = i;
      break;
    }
    if (c === CR) {
      if (i + 1 < buffer.length && buffer[i + 1] !== LF) {
        return fail(ProxyErrorCode.V1BadCharacter, 'v1 line contains a bare CR');
      }
      continue;
    }
    if (c < 0x20 || c > 0x7e)
      return fail(ProxyErrorCode.V1BadCharacter, 'v1 line contains a non-printable octet');
  }
  if (end === -1) {
    if (buffer.length >= PROXY_V1_MAX) {
      return fail(ProxyErrorCode.V1TooLong, `v1 line has no CRLF within ${PROXY_V1_MAX} octets`);
    }
    return NEED_MORE;
  }
  const line = buffer.toString('latin1', 0, end - 1);
  const consumed = end + 1;
  const fields = line.split(' ');
  const protocol = fields[1];
  if (protocol === 'UNKNOWN') {
    // §2.1: the receiver must ignore anything after UNKNOWN up to the CRLF.
    return { kind: 'ok', consumed, version: 1, command: 'PROXY', family: 'unknown' };
  }
  if (protocol !== 'TCP4' && protocol !== 'TCP6') {
    return fail(ProxyErrorCode.V1Syntax, 'v1 protocol is not TCP4, TCP6 or UNKNOWN');
  }
  if (fields.length !== 6)
    return fail(ProxyErrorCode.V1Syntax, 'v1 line needs exactly 6 single-space fields');
  const [, , srcAddress, dstAddress, srcPort, dstPort] = fields as [
    string,
    string,
    string,
    string,
    string,
    string,
  ];
  const family = protocol === 'TCP4' ? 'tcp4' : 'tcp6';
  const source = v1Address(srcAddress, family);
  const destination = v1Address(dstAddress, family);
  if (source === undefined || destination === undefined) {
    return fail(ProxyErrorCode.V1BadAddress, `v1 address is not a valid ${protocol} address`);
  }
  const sport = v1Port(srcPort);
  const dport = v1Port(dstPort);
  if (sport === undefined || dport === undefined) {
    return fail(
      ProxyErrorCode.V1BadPort,
      'v1 port is not a decimal number in 0-65535 without leading zeroes',
    );
  }
  return {
    kind: 'ok',
    consumed,
    version: 1,
    command: 'PROXY',
    family,
    source: { address: source, port: sport },
    destination: { address: destination, port: dport },
  };
}

/** Validates and canonicalises (lower case, RFC 5952 compression) a v1 address. */
function v1Address(text: string, family: 'tcp4' | 'tcp6'): string | undefined {
  if (family === 'tcp4') return isIPv4(text) ? text : undefined;
  // A zone index is meaningless on another host.
  if (!isIPv6(text) || text.includes('%')) return undefined;
  return canonicalIPv6(text);
}

/** §2.1: decimal, 0-65535, no leading zeroes (octal confusion). */
function v1Port(text: string): number | undefined {
  if (!/^(?:0|[1-9][0-9]{0,4})$/.test(text)) return undefined;
  const port = Number(text);
  return port <= 0xffff ? port : undefined;
}

function parseV2(buffer: Buffer): ProxyParse {
  if (!prefixMatches(buffer, V2_SIGNATURE)) return fail(ProxyErrorCode.NotProxy, 'no PROXY protocol header');
  if (buffer.length < V2_FIXED) return NEED_MORE;
  const versionCommand = buffer[12] as number;
  const familyTransport = buffer[13] as number;
  const length = buffer.readUInt16BE(14);
  const version = versionCommand >> 4;
  const command = versionCommand & 0x0f;
  const family = familyTransport >> 4;
  const transport = familyTransport & 0x0f;
  if (version !== V2_VERSION) return fail(ProxyErrorCode.V2BadVersion, `v2 version ${version} is not 2`);
  if (command !== V2Command.Local && command !== V2Command.Proxy) {
    return fail(ProxyErrorCode.V2BadCommand, `v2 command ${command} is unassigned`);
  }
  if (family > V2Family.Unix || transport > V2Transport.Dgram) {
    return fail(ProxyErrorCode.V2BadFamily, `v2 family/transport 0x${hex(familyTransport)} is unassigned`);
  }
  if (length > PROXY_V2_MAX_LENGTH) {
    return fail(ProxyErrorCode.V2TooLong, `v2 length ${length} exceeds ${PROXY_V2_MAX_LENGTH}`);
  }
  if (command === V2Command.Local) {
    // §2.2: LOCAL (health checks) uses the real endpoints; the whole block, family included, is ignored.
    if (buffer.length < V2_FIXED + length) return NEED_MORE;
    return { kind: 'ok', consumed: V2_FIXED + length, version: 2, command: 'LOCAL', family: 'unknown' };
  }
  if (familyTransport === 0x00) {
    // §2.2: UNSPEC is mandatory to accept; the address information is ignored.
    if (buffer.length < V2_FIXED + length) return NEED_MORE;
    return { kind: 'ok', consumed: V2_FIXED + length, version: 2, command: 'PROXY', family: 'unknown' };
  }
  // Mail arrives over TCP: a datagram or half-specified connection is not something we relay for.
  if (family === V2Family.Unspec || transport !== V2Transport.Stream) {
    return fail(
      ProxyErrorCode.V2BadFamily,
      `v2 family/transport 0x${hex(familyTransport)} is not TCP or a UNIX stream`,
    );
  }
  const addressLength = V2_ADDRESS_LENGTH[family] as number;
  if (length < addressLength) {
    return fail(
      ProxyErrorCode.V2ShortAddress,
      `v2 length ${length} is shorter than the ${addressLength}-octet address block`,
    );
  }
  // §2.2: do not parse an address before the whole block is there.
  if (buffer.length < V2_FIXED + length) return NEED_MORE;
  const header = buffer.subarray(0, V2_FIXED + length);
  const tlvProblem = checkTlvs(header, V2_FIXED + addressLength);
  if (tlvProblem !== undefined) return tlvProblem;
  const consumed = header.length;
  const a = V2_FIXED;
  if (family === V2Family.Inet) {
    return {
      kind: 'ok',
      consumed,
      version: 2,
      command: 'PROXY',
      family: 'tcp4',
      source: { address: ipv4Text(header, a), port: header.readUInt16BE(a + 8) },
      destination: { address: ipv4Text(header, a + 4), port: header.readUInt16BE(a + 10) },
    };
  }
  if (family === V2Family.Inet6) {
    return {
      kind: 'ok',
      consumed,
      version: 2,
      command: 'PROXY',
      family: 'tcp6',
      source: { address: ipv6Text(header, a), port: header.readUInt16BE(a + 32) },
      destination: { address: ipv6Text(header, a + 16), port: header.readUInt16BE(a + 34) },
    };
  }
  // A UNIX path is no client address for policy or limits: the socket's own endpoints apply.
  return { kind: 'ok', consumed, version: 2, command: 'PROXY', family: 'unix' };
}

/** §2.2: TLVs must exactly fill the rest of the header; a CRC32C TLV (§2.2.3) must match. */
function checkTlvs(header: Buffer, start: number): ProxyParse | undefined {
  let offset = start;
  let crcAt = -1;
  while (offset < header.length) {
    if (offset + 3 > header.length) return fail(ProxyErrorCode.V2BadTlv, 'v2 TLV header truncated');
    const type = header[offset] as number;
    const valueLength = header.readUInt16BE(offset + 1);
    const valueAt = offset + 3;
    if (valueAt + valueLength > header.length) {
      return fail(ProxyErrorCode.V2BadTlv, `v2 TLV 0x${hex(type)} overruns the header`);
    }
    if (type === PP2_TYPE_CRC32C) {
      if (valueLength !== 4 || crcAt !== -1) return fail(ProxyErrorCode.V2BadTlv, 'v2 CRC32C TLV malformed');
      crcAt = valueAt;
    }
    offset = valueAt + valueLength;
  }
  if (crcAt !== -1) {
    const expected = header.readUInt32BE(crcAt);
    const copy = Buffer.from(header);
    copy.fill(0, crcAt, crcAt + 4);
    if (crc32c(copy) !== expected) return fail(ProxyErrorCode.V2BadChecksum, 'v2 CRC32C does not match');
  }
  return undefined;
}

function hex(n: number): string {
  return n.toString(16).padStart(2, '0');
}

function ipv4Text(buffer: Buffer, at: number): string {
  return `${buffer[at]}.${buffer[at + 1]}.${buffer[at + 2]}.${buffer[at + 3]}`;
}

function ipv6Text(buffer: Buffer, at: number): string {
  const groups: string[] = [];
  for (let i = 0; i < 8; i++) groups.push(buffer.readUInt16BE(at + i * 2).toString(16));
  return canonicalIPv6(groups.join(':'));
}

/** RFC 5952 text (the form Node reports for socket addresses, so limits and logs agree). */
function canonicalIPv6(text: string): string {
  return new SocketAddress({ address: text, family: 'ipv6' }).address;
}

/** 16 octets of a valid IPv6 text address (with or without an embedded IPv4 tail). */
function ipv6Bytes(text: string): Buffer {
  let s = text;
  const lastColon = s.lastIndexOf(':');
  const tail = s.slice(lastColon + 1);
  if (tail.includes('.')) {
    const [a, b, c, d] = tail.split('.').map(Number) as [number, number, number, number];
    s = `${s.slice(0, lastColon + 1)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = '', rest] = s.split('::');
  const headGroups = head === '' ? [] : head.split(':');
  const restGroups = rest === undefined || rest === '' ? [] : rest.split(':');
  const zeros = rest === undefined ? 0 : 8 - headGroups.length - restGroups.length;
  const groups = [...headGroups, ...Array<string>(zeros).fill('0'), ...restGroups];
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => {
    out.writeUInt16BE(Number.parseInt(g, 16), i * 2);
  });
  return out;
}

/** CRC32C (Castagnoli), RFC 4960 Appendix B, as required by §2.2.3. */
const CRC32C_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

export function crc32c(data: Uint8Array): number {
  let crc = 0xffffffff;
  for (const byte of data) crc = (CRC32C_TABLE[(crc ^ byte) & 0xff] as number) ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

function endpointFamily(src: ProxyEndpoint, dst: ProxyEndpoint): 4 | 6 {
  for (const e of [src, dst]) {
    if (!Number.isInteger(e.port) || e.port < 0 || e.port > 0xffff)
      throw new RangeError(`bad port ${e.port}`);
  }
  if (isIPv4(src.address) && isIPv4(dst.address)) return 4;
  if (isIPv6(src.address) && isIPv6(dst.address) && !`${src.address}${dst.address}`.includes('%')) return 6;
  throw new TypeError(
    `source and destination must both be IPv4 or both IPv6: ${src.address}, ${dst.address}`,
  );
}

/**
 * A v1 header line (for tests, benchmarks and the load-balancer side of local setups);
 * without endpoints it is "PROXY UNKNOWN\r\n".
 */
export function encodeProxyV1(src?: ProxyEndpoint, dst?: ProxyEndpoint): Buffer {
  if (src === undefined || dst === undefined) return Buffer.from('PROXY UNKNOWN\r\n', 'latin1');
  const family = endpointFamily(src, dst);
  return Buffer.from(
    `PROXY TCP${family} ${src.address} ${dst.address} ${src.port} ${dst.port}\r\n`,
    'latin1',
  );
}

export interface ProxyV2Options {
  /** LOCAL carries no addresses (health checks); default PROXY. */
  command?: 'PROXY' | 'LOCAL';
  /** Extra TLVs after the addresses (§2.2). */
  tlvs?: readonly { type: number; value: Uint8Array }[];
  /** Append a PP2_TYPE_CRC32C TLV (§2.2.3). */
  crc32c?: boolean;
}

/**
 * A v2 header. PROXY with both endpoints is TCP over IPv4/IPv6; without endpoints, or with
 * LOCAL, the family is UNSPEC and no address block is sent.
 */
export function encodeProxyV2(
  src?: ProxyEndpoint,
  dst?: ProxyEndpoint,
  options: ProxyV2Options = {},
): Buffer {
  const local = options.command === 'LOCAL';
  let familyTransport = 0x00;
  let addresses = Buffer.alloc(0);
  if (!local && src !== undefined && dst !== undefined) {
    const family = endpointFamily(src, dst);
    const raw =
      family === 4
        ? [Buffer.from(src.address.split('.').map(Number)), Buffer.from(dst.address.split('.').map(Number))]
        : [ipv6Bytes(src.address), ipv6Bytes(dst.address)];
    const ports = Buffer.alloc(4);
    ports.writeUInt16BE(src.port, 0);
    ports.writeUInt16BE(dst.port, 2);
    addresses = Buffer.concat([...raw, ports]);
    familyTransport = ((family === 4 ? V2Family.Inet : V2Family.Inet6) << 4) | V2Transport.Stream;
  }
  const tlvs = (options.tlvs ?? []).map((t) => tlv(t.type, t.value));
  if (options.crc32c) tlvs.push(tlv(PP2_TYPE_CRC32C, Buffer.alloc(4)));
  const body = Buffer.concat([addresses, ...tlvs]);
  if (body.length > 0xffff) throw new RangeError('v2 header too long');
  const fixed = Buffer.alloc(V2_FIXED);
  V2_SIGNATURE.copy(fixed, 0);
  fixed[12] = (V2_VERSION << 4) | (local ? V2Command.Local : V2Command.Proxy);
  fixed[13] = familyTransport;
  fixed.writeUInt16BE(body.length, 14);
  const header = Buffer.concat([fixed, body]);
  if (options.crc32c) header.writeUInt32BE(crc32c(header), header.length - 4);
  return header;
}

function tlv(type: number, value: Uint8Array): Buffer {
  const head = Buffer.alloc(3);
  head[0] = type;
  head.writeUInt16BE(value.length, 1);
  return Buffer.concat([head, value]);
}
