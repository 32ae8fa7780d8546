/**
 * An in-process DNS server for tests (`@petrel/dns/testing`), UDP and TCP on one loopback port.
 * It stands in for a trusted validating resolver: each answer says whether to set the AD flag,
 * which is all a stub sees of DNSSEC (RFC 4035 §3.2.3). It can also answer SERVFAIL (what a
 * validating resolver answers for bogus data, RFC 4035 §5.5), truncate UDP answers, or stay silent.
 * dnsmasq (test harness `startDnsServer`) is the real server; it never sets AD.
 */
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { once } from 'node:events';
import { type AddressInfo, createServer, type Server, type Socket } from 'node:net';
import {
  canonicalName,
  decodeMessage,
  type EncodableRecord,
  encodeMessage,
  HeaderFlag,
  Rcode,
  type RecordData,
  typeOf,
  type WireMessage,
} from '../src/wire.ts';

export interface ServedQuestion {
  /** Lower case, no trailing dot. */
  readonly name: string;
  readonly type: number;
  readonly transport: 'udp' | 'tcp';
  /** The query had the EDNS0 DO bit (RFC 3225). */
  readonly dnssecOk: boolean;
  readonly udpPayloadSize: number | undefined;
}

/** What to answer. */
export interface ServedAnswer {
  /** Default NOERROR. */
  readonly rcode?: number;
  /** Set the AD flag. Default false. */
  readonly authenticated?: boolean;
  readonly answers?: readonly EncodableRecord[];
  readonly authority?: readonly EncodableRecord[];
  /** Over UDP, answer with TC set and no records (RFC 1035 §4.2.1); TCP gets the full answer. */
  readonly truncateUdp?: boolean;
  /** Do not answer at all. */
  readonly silent?: boolean;
}

export type DnsHandler = (question: ServedQuestion) => ServedAnswer;

export interface WireDnsServer {
  readonly host: string;
  readonly port: number;
  /** `127.0.0.1:port`, for `servers`. */
  readonly address: string;
  /** Every question received, in order. */
  readonly questions: readonly ServedQuestion[];
  close(): Promise<void>;
}

export interface StartOptions {
  /** Registers close() for cleanup, e.g. node:test's `t.after.bind(t)`. */
  readonly after?: (fn: () => Promise<void>) => void;
  /** The UDP port of the first attempt instead of the kernel's choice (tests of the retry). */
  readonly firstPort?: number;
}

/** A record in a zone for `zoneHandler`. */
export interface ZoneRecord {
  readonly name: string;
  readonly data: RecordData;
  /** Default 300. */
  readonly ttl?: number;
}

export interface ZoneOptions {
  /** Set AD on every answer (a signed zone behind a validating resolver). Default true. */
  readonly authenticated?: boolean;
  /** SOA TTL and MINIMUM for negative answers (RFC 2308 §5); default 60. */
  readonly negativeTtl?: number;
}

/**
 * Answers from fixed records: the records of the name and type, after a CNAME at the name
 * (followed within the zone, RFC 1034 §4.3.2); NODATA when the name has other records; NXDOMAIN
 * otherwise. Negative answers carry an SOA.
 */
export function zoneHandler(records: readonly ZoneRecord[], options: ZoneOptions = {}): DnsHandler {
  const negative = options.negativeTtl ?? 60;
  const soa: EncodableRecord = {
    name: 'test',
    ttl: negative,
    data: {
      type: 'SOA',
      mname: 'ns.test',
      rname: 'hostmaster.test',
      serial: 1,
      refresh: 3600,
      retry: 600,
      expire: 86400,
      minimum: negative,
    },
  };
  return (q) => {
    const answers: EncodableRecord[] = [];
    let name = q.name;
    for (let hops = 0; hops < 8; hops++) {
      const at = records.filter((r) => canonicalName(r.name) === name);
      const cname = at.find((r) => r.data.type === 'CNAME');
      if (cname !== undefined && cname.data.type === 'CNAME' && q.type !== typeOf(cname.data)) {
        answers.push({ name, ttl: cname.ttl ?? 300, data: cname.data });
        name = canonicalName(cname.data.target);
        continue;
      }
      const matching = at.filter((r) => typeOf(r.data) === q.type);
      answers.push(...matching.map((r) => ({ name, ttl: r.ttl ?? 300, data: r.data })));
      const exists = at.length > 0;
      return {
        rcode: exists || answers.length > 0 ? Rcode.NoError : Rcode.NxDomain,
        authenticated: options.authenticated ?? true,
        answers,
        ...(matching.length === 0 ? { authority: [soa] } : {}),
      };
    }
    return { rcode: Rcode.ServFail };
  };
}

function respond(query: WireMessage, answer: ServedAnswer, udp: boolean): Buffer {
  const truncated = udp && answer.truncateUdp === true;
  return encodeMessage({
    id: query.id,
    flags:
      HeaderFlag.QR |
      HeaderFlag.RA |
      (query.flags & HeaderFlag.RD) |
      (answer.authenticated === true ? HeaderFlag.AD : 0) |
      (truncated ? HeaderFlag.TC : 0),
    rcode: answer.rcode ?? Rcode.NoError,
    questions: query.questions,
    answers: truncated ? [] : (answer.answers ?? []),
    authority: truncated ? [] : (answer.authority ?? []),
    ...(query.edns === undefined
      ? {}
      : { edns: { udpPayloadSize: 1232, version: 0, dnssecOk: query.edns.dnssecOk } }),
  });
}

/** Starts the server on a free loopback port (UDP and TCP). */
export async function startWireDnsServer(
  handler: DnsHandler,
  options: StartOptions = {},
): Promise<WireDnsServer> {
  const questions: ServedQuestion[] = [];
  const answer = (data: Buffer, transport: 'udp' | 'tcp'): Buffer | undefined => {
    let message: WireMessage;
    try {
      message = decodeMessage(data);
    } catch {
      return undefined;
    }
    const q = message.questions[0];
    if (q === undefined) return undefined;
    const question: ServedQuestion = {
      name: canonicalName(q.name),
      type: q.type,
      transport,
      dnssecOk: message.edns?.dnssecOk ?? false,
      udpPayloadSize: message.edns?.udpPayloadSize,
    };
    questions.push(question);
    const served = handler(question);
    return served.silent === true ? undefined : respond(message, served, transport === 'udp');
  };

  // The same port for both: bind UDP first, then TCP on its port; retry if TCP finds it taken.
  let udp: UdpSocket | undefined;
  let tcp: Server | undefined;
  const connections = new Set<Socket>();
  for (let attempt = 1; ; attempt++) {
    udp = createSocket('udp4');
    udp.bind(attempt === 1 ? (options.firstPort ?? 0) : 0, '127.0.0.1');
    await once(udp, 'listening');
    const port = udp.address().port;
    tcp = createServer((socket) => {
      connections.add(socket);
      socket.on('close', () => connections.delete(socket));
      socket.on('error', () => socket.destroy());
      let buffer = Buffer.alloc(0);
      socket.on('data', (chunk: Buffer) => {
        buffer = Buffer.concat([buffer, chunk]);
        while (buffer.length >= 2 && buffer.length >= 2 + buffer.readUInt16BE(0)) {
          const length = buffer.readUInt16BE(0);
          const reply = answer(buffer.subarray(2, 2 + length), 'tcp');
          buffer = buffer.subarray(2 + length);
          if (reply !== undefined) {
            const prefix = Buffer.alloc(2);
            prefix.writeUInt16BE(reply.length);
            socket.write(Buffer.concat([prefix, reply]));
          }
        }
      });
    });
    // Not events.once(tcp, 'listening'): it rejects on 'error', which is the case retried here.
    const server = tcp;
    const bound = new Promise<boolean>((resolve) => {
      server.once('listening', () => resolve(true));
      server.once('error', () => resolve(false));
    });
    tcp.listen(port, '127.0.0.1');
    if (await bound) break;
    udp.close();
    if (attempt >= 5) throw new Error('no free port for UDP and TCP');
  }
  const u = udp;
  const t = tcp;
  u.on('message', (data, from) => {
    const reply = answer(data, 'udp');
    if (reply !== undefined) u.send(reply, from.port, from.address);
  });
  const port = (t.address() as AddressInfo).port;
  let closed = false;
  const close = async (): Promise<void> => {
    if (closed) return;
    closed = true;
    for (const c of connections) c.destroy();
    await Promise.all([
      new Promise<void>((r) => t.close(() => r())),
      new Promise<void>((r) => u.close(() => r())),
    ]);
  };
  options.after?.(close);
  return { host: '127.0.0.1', port, address: `127.0.0.1:${port}`, questions, close };
}
