import type { BodyType, DsnReturn, Envelope } from '@petrel/proto';
import { newEnvelope } from '../src/codec.ts';

/*
 * Envelopes for the tests of the hand-written codecs (message.test.ts, codec.test.ts): edge
 * values of every field, then `count` envelopes from a seeded generator.
 */

/** A seeded generator: failures reproduce. */
export function random(seed: number): (n: number) => number {
  let s = seed;
  return (n) => {
    s = (s * 1103515245 + 12345) & 0x7fffffff;
    return s % n;
  };
}

export const TEXTS = [
  '',
  'a',
  'example.org',
  'räksmörgås.example',
  '日本語',
  '\u{1F600}',
  // A leading U+FEFF is text in a protobuf string (protobuf-es keeps it).
  '\ufeffbom',
  // U+FFFD as sent, not as a substitute for invalid UTF-8.
  'x\ufffdy',
  'x'.repeat(200),
];

export function envelopes(count: number, seed: number): Envelope[] {
  const pick = random(seed);
  // A lone surrogate too: encoded as U+FFFD, so it does not survive a round trip (the encoders
  // must still write it as protobuf-es does).
  const texts = [...TEXTS, '\ud800'];
  const text = () => texts[pick(texts.length)] as string;
  const timestamp = () =>
    [
      { seconds: 0n, nanos: 0 },
      { seconds: 1_795_000_000n, nanos: 123_000_000 },
      { seconds: -62_135_596_800n, nanos: 999_999_999 },
      { seconds: -1n, nanos: -1 },
      { seconds: 2n ** 63n - 1n, nanos: 1 },
      { seconds: 2n ** 53n + 3n, nanos: 0 },
    ][pick(6)];
  const out: Envelope[] = [
    newEnvelope({}),
    newEnvelope({ receivedAt: {}, client: {}, trace: {}, deliverBy: {}, recipients: [{}] }),
    newEnvelope({ size: 2n ** 64n - 1n, bodyType: -1 as BodyType, deliverByMode: 2, deliverByTrace: true }),
    newEnvelope({ size: 2n ** 53n + 1n, dsnReturn: 0x7fffffff as DsnReturn }),
    newEnvelope({ content: { case: 'raw', value: new Uint8Array(0) } }),
    newEnvelope({ content: { case: 'object', value: {} } }),
    newEnvelope({
      recipients: Array.from({ length: 200 }, (_, i) => ({ address: `${i}${'x'.repeat(200)}` })),
    }),
  ];
  for (let i = 0; i < count; i++) {
    out.push(
      newEnvelope({
        messageId: text(),
        sender: text(),
        recipients: Array.from({ length: pick(4) }, () => ({
          address: text(),
          orcpt: text(),
          notify: Array.from({ length: pick(3) }, text),
        })),
        destinationDomain: text(),
        ...(pick(5) === 0 ? {} : { receivedAt: timestamp() }),
        ...(pick(5) === 0
          ? {}
          : {
              client: {
                remoteAddress: text(),
                remotePort: [0, 25, 65535, 2 ** 32 - 1][pick(4)],
                helo: text(),
                tlsProtocol: text(),
                tlsCipher: text(),
                authIdentity: text(),
              },
            }),
        ...(pick(3) === 0 ? {} : { trace: { traceparent: text(), tracestate: text() } }),
        size: [0n, 1n, 127n, 128n, 2n ** 32n, 2n ** 53n + 1n, 2n ** 64n - 1n][pick(7)],
        bodyType: [0, 1, 3, -1][pick(4)] as BodyType,
        smtputf8: pick(2) === 0,
        dsnReturn: pick(3) as DsnReturn,
        dsnEnvid: text(),
        requireTls: pick(2) === 0,
        ...(pick(3) === 0 ? { deliverBy: timestamp() } : {}),
        senderDomain: text(),
        content: [
          { case: undefined },
          { case: 'raw' as const, value: Buffer.from(text().repeat(1 + pick(50))) },
          { case: 'object' as const, value: { bucket: text(), name: text(), digest: text() } },
        ][pick(3)] as Envelope['content'],
        deliverByMode: pick(3),
        deliverByTrace: pick(2) === 0,
      }),
    );
  }
  return out;
}
