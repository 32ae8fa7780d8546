import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  ProxyErrorCode as Code,
  crc32c,
  encodeProxyV1,
  encodeProxyV2,
  PROXY_V1_MAX,
  PROXY_V2_MAX_LENGTH,
  type ProxyErrorCode,
  type ProxyParse,
  parseProxyHeader,
} from './proxy.ts';

const SMTP = Buffer.from('EHLO client.example\r\n');
const V2_SIG = Buffer.from('\r\n\r\n\0\r\nQUIT\n', 'latin1');

const v4 = { src: { address: '192.0.2.10', port: 56324 }, dst: { address: '198.51.100.1', port: 25 } };
const v6 = {
  src: { address: '2001:db8::10', port: 40000 },
  dst: { address: '2001:db8:0:1::25', port: 587 },
};

function ok(result: ProxyParse) {
  assert.equal(result.kind, 'ok', JSON.stringify(result));
  return result as Extract<ProxyParse, { kind: 'ok' }>;
}

function errorCode(input: Buffer | string): ProxyErrorCode {
  const result = parseProxyHeader(typeof input === 'string' ? Buffer.from(input, 'latin1') : input);
  assert.equal(result.kind, 'error', `${JSON.stringify(input.toString())} → ${JSON.stringify(result)}`);
  return (result as Extract<ProxyParse, { kind: 'error' }>).code;
}

/** A v2 header from raw parts (for malformed forms the encoder refuses to build). */
function v2(verCmd: number, famProto: number, body: Buffer | number[], length?: number): Buffer {
  const b = Buffer.from(body);
  const fixed = Buffer.alloc(4);
  fixed[0] = verCmd;
  fixed[1] = famProto;
  fixed.writeUInt16BE(length ?? b.length, 2);
  return Buffer.concat([V2_SIG, fixed, b]);
}

const TCP4_BLOCK = [192, 0, 2, 10, 198, 51, 100, 1, 0xdc, 0x04, 0, 25];

test('v1 TCP4 and TCP6 headers give the client endpoints; consumed stops at the CRLF', () => {
  const r4 = ok(parseProxyHeader(Buffer.from('PROXY TCP4 192.0.2.10 198.51.100.1 56324 25\r\nEHLO x\r\n')));
  assert.deepEqual(r4, {
    kind: 'ok',
    consumed: 45,
    version: 1,
    command: 'PROXY',
    family: 'tcp4',
    source: { address: '192.0.2.10', port: 56324 },
    destination: { address: '198.51.100.1', port: 25 },
  });
  const r6 = ok(parseProxyHeader(Buffer.from('PROXY TCP6 2001:DB8:0:0:0:0:0:10 ::1 0 65535\r\n')));
  assert.equal(r6.family, 'tcp6');
  // Canonical (RFC 5952) text, as Node reports socket addresses, so limits key on one form.
  assert.deepEqual(r6.source, { address: '2001:db8::10', port: 0 });
  assert.deepEqual(r6.destination, { address: '::1', port: 65535 });
  const mapped = ok(parseProxyHeader(Buffer.from('PROXY TCP6 ::ffff:192.0.2.1 ::ffff:c000:202 1 2\r\n')));
  assert.equal(mapped.source?.address, '::ffff:192.0.2.1');
  assert.equal(mapped.destination?.address, '::ffff:192.0.2.2');
});

test('v1 UNKNOWN is accepted without addresses, short form and the 107-octet worst case', () => {
  for (const line of [
    'PROXY UNKNOWN\r\n',
    'PROXY UNKNOWN 192.0.2.1 192.0.2.2 1 2\r\n',
    `PROXY UNKNOWN ${'ffff:'.repeat(7)}ffff ${'ffff:'.repeat(7)}ffff 65535 65535\r\n`,
  ]) {
    const r = ok(parseProxyHeader(Buffer.concat([Buffer.from(line), SMTP])));
    assert.equal(r.consumed, line.length);
    assert.equal(r.family, 'unknown');
    assert.equal(r.source, undefined);
    assert.equal(r.destination, undefined);
  }
  assert.equal(
    `PROXY UNKNOWN ${'ffff:'.repeat(7)}ffff ${'ffff:'.repeat(7)}ffff 65535 65535\r\n`.length,
    PROXY_V1_MAX,
  );
});

test('v1: the longest TCP6 line (104 octets) parses', () => {
  const full = `${'ffff:'.repeat(7)}ffff`;
  const line = `PROXY TCP6 ${full} ${full} 65535 65535\r\n`;
  assert.equal(line.length, 104);
  assert.equal(ok(parseProxyHeader(Buffer.from(line))).consumed, 104);
});

test('v1 malformed lines are errors with a precise code', () => {
  const cases: [string, ProxyErrorCode][] = [
    ['EHLO client.example\r\n', Code.NotProxy],
    ['proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n', Code.NotProxy],
    ['PROXYTCP4 1.2.3.4 5.6.7.8 1 2\r\n', Code.NotProxy],
    ['PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n', Code.V1BadCharacter],
    ['PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\r\n', Code.V1BadCharacter],
    ['PROXY TCP4 1.2.3.4\r5.6.7.8 1 2\r\n', Code.V1BadCharacter],
    ['PROXY TCP4 1.2.3.4\t5.6.7.8 1 2\r\n', Code.V1BadCharacter],
    ['PROXY TCP4 1.2.3.4 5.6.7.8 1 2\0\r\n', Code.V1BadCharacter],
    ['PROXY TCP4 1.2.3.4 5.6.7.8 1 \xe9\r\n', Code.V1BadCharacter],
    ['PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n', Code.V1Syntax],
    ['PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n', Code.V1Syntax],
    ['PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n', Code.V1Syntax],
    ['PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n', Code.V1Syntax],
    ['PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n', Code.V1Syntax],
    ['PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n', Code.V1Syntax],
    ['PROXY UNKNOWNX\r\n', Code.V1Syntax],
    ['PROXY  UNKNOWN\r\n', Code.V1Syntax],
    ['PROXY \r\n', Code.V1Syntax],
    ['PROXY TCP4 ::1 5.6.7.8 1 2\r\n', Code.V1BadAddress],
    ['PROXY TCP6 1.2.3.4 ::1 1 2\r\n', Code.V1BadAddress],
    ['PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n', Code.V1BadAddress],
    ['PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n', Code.V1BadAddress],
    ['PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n', Code.V1BadAddress],
    ['PROXY TCP4 host.example 5.6.7.8 1 2\r\n', Code.V1BadAddress],
    ['PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n', Code.V1BadAddress],
    ['PROXY TCP6 1::2::3 ::1 1 2\r\n', Code.V1BadAddress],
    ['PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n', Code.V1BadPort],
    ['PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n', Code.V1BadPort],
    ['PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n', Code.V1BadPort],
    ['PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n', Code.V1BadPort],
    ['PROXY TCP4 1.2.3.4 5.6.7.8 0x19 2\r\n', Code.V1BadPort],
    ['PROXY TCP4 1.2.3.4 5.6.7.8 100000 2\r\n', Code.V1BadPort],
  ];
  for (const [line, code] of cases) assert.equal(errorCode(line), code, JSON.stringify(line));
});

test('v1 without a CRLF in the first 107 octets is an error; before that it needs more', () => {
  const long = `PROXY UNKNOWN ${'x'.repeat(200)}`;
  assert.equal(parseProxyHeader(Buffer.from(long.slice(0, PROXY_V1_MAX - 1))).kind, 'need-more');
  assert.equal(errorCode(long.slice(0, PROXY_V1_MAX)), Code.V1TooLong);
  // CRLF ending at octet 108: one too many.
  const over = `PROXY UNKNOWN ${'x'.repeat(PROXY_V1_MAX - 'PROXY UNKNOWN '.length - 1)}\r\n`;
  assert.equal(over.length, PROXY_V1_MAX + 1);
  assert.equal(errorCode(over), Code.V1TooLong);
});

test('garbage is refused as soon as the octets rule a header out', () => {
  assert.equal(parseProxyHeader(Buffer.alloc(0)).kind, 'need-more');
  assert.equal(errorCode('E'), Code.NotProxy);
  assert.equal(errorCode('PROXZ'), Code.NotProxy);
  assert.equal(errorCode('\r\n\r\nX'), Code.NotProxy);
  assert.equal(errorCode('\r\n'.repeat(3)), Code.NotProxy);
  assert.equal(errorCode('PROXY TCP4 1.2.3.4\n'), Code.V1BadCharacter);
  assert.equal(errorCode('PROXY TCP4 1\rx'), Code.V1BadCharacter);
  // A CR that may still be followed by LF is not an error yet.
  assert.equal(parseProxyHeader(Buffer.from('PROXY UNKNOWN\r')).kind, 'need-more');
  assert.equal(parseProxyHeader(Buffer.from('PROX')).kind, 'need-more');
  assert.equal(parseProxyHeader(V2_SIG.subarray(0, 11)).kind, 'need-more');
});

test('v2 TCP over IPv4 and IPv6 give the client endpoints', () => {
  const r4 = ok(parseProxyHeader(Buffer.concat([v2(0x21, 0x11, TCP4_BLOCK), SMTP])));
  assert.deepEqual(r4, {
    kind: 'ok',
    consumed: 28,
    version: 2,
    command: 'PROXY',
    family: 'tcp4',
    source: { address: '192.0.2.10', port: 56324 },
    destination: { address: '198.51.100.1', port: 25 },
  });
  const addr6 = Buffer.alloc(36);
  addr6.writeUInt16BE(0x2001, 0);
  addr6.writeUInt16BE(0x0db8, 2);
  addr6[15] = 0x10;
  addr6.writeUInt16BE(0xffff, 26);
  addr6.set([192, 0, 2, 1], 28);
  addr6.writeUInt16BE(40000, 32);
  addr6.writeUInt16BE(587, 34);
  const r6 = ok(parseProxyHeader(v2(0x21, 0x21, addr6)));
  assert.equal(r6.consumed, 52);
  assert.equal(r6.family, 'tcp6');
  assert.deepEqual(r6.source, { address: '2001:db8::10', port: 40000 });
  assert.deepEqual(r6.destination, { address: '::ffff:192.0.2.1', port: 587 });
});

test('v2 LOCAL uses the real endpoints and skips whatever block it carries', () => {
  for (const header of [v2(0x20, 0x00, []), v2(0x20, 0x11, TCP4_BLOCK), v2(0x20, 0x12, [1, 2, 3])]) {
    const r = ok(parseProxyHeader(Buffer.concat([header, SMTP])));
    assert.equal(r.command, 'LOCAL');
    assert.equal(r.family, 'unknown');
    assert.equal(r.consumed, header.length);
    assert.equal(r.source, undefined);
  }
});

test('v2 PROXY with UNSPEC is accepted without addresses; UNIX stream without addresses', () => {
  const unspec = ok(parseProxyHeader(v2(0x21, 0x00, [9, 9, 9])));
  assert.deepEqual(unspec, { kind: 'ok', consumed: 19, version: 2, command: 'PROXY', family: 'unknown' });
  const paths = Buffer.alloc(216);
  paths.write('/run/lb.sock', 0);
  paths.write('/run/smtp.sock', 108);
  const unix = ok(parseProxyHeader(v2(0x21, 0x31, paths)));
  assert.equal(unix.family, 'unix');
  assert.equal(unix.consumed, 16 + 216);
  assert.equal(unix.source, undefined);
});

test('v2 TLVs are skipped, and a CRC32C TLV is verified', () => {
  const header = encodeProxyV2(v4.src, v4.dst, {
    tlvs: [
      { type: 0x01, value: Buffer.from('smtp') },
      { type: 0x04, value: Buffer.alloc(0) },
      { type: 0x20, value: Buffer.from([1, 0, 0, 0, 0, 0x21, 0, 7, ...Buffer.from('TLSv1.3')]) },
    ],
    crc32c: true,
  });
  const r = ok(parseProxyHeader(Buffer.concat([header, SMTP])));
  assert.equal(r.consumed, header.length);
  assert.deepEqual(r.source, v4.src);
  const tampered = Buffer.from(header);
  tampered[16] = 193; // source address changed in flight
  assert.equal(errorCode(tampered), Code.V2BadChecksum);
});

test('crc32c matches the RFC 4960 check value', () => {
  assert.equal(crc32c(Buffer.from('123456789')), 0xe3069283);
});

test('v2 malformed headers are errors with a precise code', () => {
  const sig = Buffer.from(V2_SIG);
  const cases: [string, Buffer, ProxyErrorCode][] = [
    [
      'signature differs in its last octet',
      Buffer.concat([sig.subarray(0, 11), Buffer.from([0x0b])]),
      Code.NotProxy,
    ],
    ['signature differs in the middle', Buffer.from('\r\n\r\n\0\r\nQUIZ\n', 'latin1'), Code.NotProxy],
    ['version 1', v2(0x11, 0x11, TCP4_BLOCK), Code.V2BadVersion],
    ['version 3', v2(0x31, 0x11, TCP4_BLOCK), Code.V2BadVersion],
    ['command 2', v2(0x22, 0x11, TCP4_BLOCK), Code.V2BadCommand],
    ['command 15', v2(0x2f, 0x11, TCP4_BLOCK), Code.V2BadCommand],
    ['family 4', v2(0x21, 0x41, TCP4_BLOCK), Code.V2BadFamily],
    ['transport 3', v2(0x21, 0x13, TCP4_BLOCK), Code.V2BadFamily],
    ['LOCAL with an unassigned family', v2(0x20, 0x50, []), Code.V2BadFamily],
    ['UDP over IPv4', v2(0x21, 0x12, TCP4_BLOCK), Code.V2BadFamily],
    ['UDP over IPv6', v2(0x21, 0x22, Buffer.alloc(36)), Code.V2BadFamily],
    ['UNIX datagram', v2(0x21, 0x32, Buffer.alloc(216)), Code.V2BadFamily],
    ['IPv4 with UNSPEC transport', v2(0x21, 0x10, TCP4_BLOCK), Code.V2BadFamily],
    ['UNSPEC family with STREAM', v2(0x21, 0x01, []), Code.V2BadFamily],
    ['IPv4 block short by one', v2(0x21, 0x11, TCP4_BLOCK.slice(0, 11)), Code.V2ShortAddress],
    ['IPv6 block of IPv4 size', v2(0x21, 0x21, TCP4_BLOCK), Code.V2ShortAddress],
    ['UNIX block short', v2(0x21, 0x31, Buffer.alloc(215)), Code.V2ShortAddress],
    ['TLV header truncated', v2(0x21, 0x11, [...TCP4_BLOCK, 0x01, 0x00]), Code.V2BadTlv],
    ['TLV value overruns', v2(0x21, 0x11, [...TCP4_BLOCK, 0x01, 0x00, 0x05, 1, 2, 3, 4]), Code.V2BadTlv],
    ['second TLV overruns', v2(0x21, 0x11, [...TCP4_BLOCK, 0x04, 0, 0, 0x01, 0x00, 0x02, 1]), Code.V2BadTlv],
    ['CRC32C TLV of 3 octets', v2(0x21, 0x11, [...TCP4_BLOCK, 0x03, 0x00, 0x03, 1, 2, 3]), Code.V2BadTlv],
  ];
  for (const [name, header, code] of cases) assert.equal(errorCode(header), code, name);
});

test('v2 length beyond the cap is refused from the 16-octet fixed part alone', () => {
  const fixed = v2(0x21, 0x11, [], PROXY_V2_MAX_LENGTH + 1);
  assert.equal(fixed.length, 16);
  assert.equal(errorCode(fixed), Code.V2TooLong);
  assert.equal(errorCode(v2(0x21, 0x11, [], 0xffff)), Code.V2TooLong);
  // At the cap it is a valid header that is still arriving.
  assert.equal(parseProxyHeader(v2(0x21, 0x11, [], PROXY_V2_MAX_LENGTH)).kind, 'need-more');
  const big = encodeProxyV2(v4.src, v4.dst, {
    tlvs: [{ type: 0x04, value: Buffer.alloc(PROXY_V2_MAX_LENGTH - 12 - 3) }],
  });
  assert.equal(ok(parseProxyHeader(big)).consumed, 16 + PROXY_V2_MAX_LENGTH);
});

test('every split of a valid header into two chunks needs more, then gives the same result', () => {
  const headers: Buffer[] = [
    encodeProxyV1(v4.src, v4.dst),
    encodeProxyV1(v6.src, v6.dst),
    encodeProxyV1(),
    encodeProxyV2(v4.src, v4.dst),
    encodeProxyV2(v6.src, v6.dst, { tlvs: [{ type: 0x05, value: Buffer.from('conn-1') }], crc32c: true }),
    encodeProxyV2(undefined, undefined, { command: 'LOCAL' }),
    encodeProxyV2(),
  ];
  for (const header of headers) {
    const wire = Buffer.concat([header, SMTP]);
    const whole = ok(parseProxyHeader(wire));
    assert.equal(whole.consumed, header.length);
    for (let at = 0; at <= wire.length; at++) {
      const first = wire.subarray(0, at);
      const early = parseProxyHeader(first);
      if (at < header.length) {
        assert.equal(early.kind, 'need-more', `${JSON.stringify(header.toString('latin1'))} split at ${at}`);
        assert.deepEqual(parseProxyHeader(Buffer.concat([first, wire.subarray(at)])), whole);
      } else {
        // Once the header is complete, trailing SMTP octets are never consumed.
        assert.deepEqual(early, whole, `complete at ${at}`);
      }
    }
  }
});

test('trailing octets are not consumed, even when they look like another header', () => {
  const header = encodeProxyV1(v4.src, v4.dst);
  const wire = Buffer.concat([header, header, SMTP]);
  assert.equal(ok(parseProxyHeader(wire)).consumed, header.length);
  const h2 = encodeProxyV2(v6.src, v6.dst);
  assert.equal(ok(parseProxyHeader(Buffer.concat([h2, Buffer.from('\r\n.\r\n')]))).consumed, h2.length);
});

test('encoders round-trip through the parser and refuse mixed or invalid endpoints', () => {
  assert.equal(encodeProxyV1(v4.src, v4.dst).toString(), 'PROXY TCP4 192.0.2.10 198.51.100.1 56324 25\r\n');
  assert.equal(encodeProxyV1().toString(), 'PROXY UNKNOWN\r\n');
  for (const pair of [v4, v6]) {
    for (const header of [encodeProxyV1(pair.src, pair.dst), encodeProxyV2(pair.src, pair.dst)]) {
      const r = ok(parseProxyHeader(header));
      assert.deepEqual([r.source, r.destination], [pair.src, pair.dst]);
    }
  }
  const local = encodeProxyV2(v4.src, v4.dst, { command: 'LOCAL' });
  assert.deepEqual(local, Buffer.concat([V2_SIG, Buffer.from([0x20, 0x00, 0, 0])]));
  for (const address of ['::', '::1', '1::', '1:2:3:4:5:6:7:8', '::ffff:10.0.0.1', 'a:b::c:d']) {
    const e = { address, port: 1 };
    assert.equal(ok(parseProxyHeader(encodeProxyV2(e, e))).source?.address, address);
    assert.equal(ok(parseProxyHeader(encodeProxyV1(e, e))).source?.address, address);
  }
  assert.throws(() => encodeProxyV1(v4.src, v6.dst), TypeError);
  assert.throws(() => encodeProxyV2(v6.src, v4.dst), TypeError);
  assert.throws(() => encodeProxyV1({ address: 'host.example', port: 1 }, v4.dst), TypeError);
  assert.throws(() => encodeProxyV1({ address: '192.0.2.1', port: 65536 }, v4.dst), RangeError);
});
