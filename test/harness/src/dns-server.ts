// A real DNS server for tests: Debian's dnsmasq, unprivileged on a free loopback port, serving only
// the records a test gives it. Every other name is NXDOMAIN (`local=/#/`): nothing is forwarded.
import { Resolver } from 'node:dns/promises';
import { constants } from 'node:fs';
import { access, readFile, writeFile } from 'node:fs/promises';
import { isIPv4, isIPv6 } from 'node:net';
import { delimiter, join } from 'node:path';
import { freePort, LocalEnvError, LocalEnvErrorCode, ManagedProcess } from '@petrel/localenv';
import { tempDir } from './cleanup.ts';
import type { After } from './servers.ts';
import { waitFor } from './wait.ts';

/**
 * Records as a test writes them. Limits that come from dnsmasq:
 * - A/AAAA are dnsmasq host-records, which also answer PTR for the first name given an address,
 *   unless a PTR record for that address is listed explicitly.
 * - A CNAME target must be a name with records here (dnsmasq does not chase names it does not own).
 * - TXT: a string value is cut into 255-octet character-strings (RFC 1035 §3.3.14, RFC 7208 §3.3);
 *   an array is used as the record's strings as given (each at most 255 octets).
 * - One TTL (`ttlSeconds`) for everything, except A/AAAA which may carry their own.
 */
export type DnsRecord =
  | { type: 'A'; name: string; address: string; ttl?: number }
  | { type: 'AAAA'; name: string; address: string; ttl?: number }
  | { type: 'MX'; name: string; exchange: string; priority: number }
  | { type: 'TXT'; name: string; value: string | readonly string[] }
  /** `name` is the reverse name, e.g. 1.2.0.192.in-addr.arpa. */
  | { type: 'PTR'; name: string; target: string }
  | { type: 'CNAME'; name: string; target: string }
  /** RFC 6698 §2.1; `data` as hex. dnsmasq serves it as a generic RR (type 52). */
  | { type: 'TLSA'; name: string; usage: number; selector: number; matchingType: number; data: string };

export interface DnsServerOptions {
  records?: readonly DnsRecord[];
  /** TTL of every answer (dnsmasq local-ttl); default 60. */
  ttlSeconds?: number;
  /** Registers stop() for cleanup, e.g. node:test's `t.after.bind(t)`. */
  after?: After;
}

/** One query as dnsmasq logged it. */
export interface DnsQuery {
  type: string;
  name: string;
}

export interface DnsServer {
  readonly host: string;
  readonly port: number;
  /** `127.0.0.1:port`, the form resolvers (and `petrel dev --dns-server`) take. */
  readonly address: string;
  readonly dir: string;
  /** Replaces every record; dnsmasq is restarted on the same port. */
  setRecords(records: readonly DnsRecord[]): Promise<void>;
  /**
   * Every query received since start, in order (survives restarts), up to this call: each one
   * answered before it is included, although dnsmasq logs a query after answering it.
   */
  queries(): Promise<DnsQuery[]>;
  /** Stops dnsmasq; the port then refuses queries (ICMP port unreachable). */
  stop(): Promise<void>;
  /** Starts it again after stop(), same port and records. */
  restart(): Promise<void>;
}

const SEARCH_DIRS = ['/usr/sbin', '/sbin', '/usr/local/sbin'];
const MAX_TXT_STRING = 255;
const NAME = /^[A-Za-z0-9_*.-]+$/;

/** dnsmasq from PATH or the sbin directories (it lives in /usr/sbin, which users' PATHs often lack). */
export async function findDnsmasq(): Promise<string> {
  const dirs = [...(process.env['PATH'] ?? '').split(delimiter).filter((d) => d !== ''), ...SEARCH_DIRS];
  for (const dir of dirs) {
    const candidate = join(dir, 'dnsmasq');
    try {
      await access(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  throw new Error(
    "dnsmasq not found. Install Debian's dnsmasq-base (apt-get install -y dnsmasq-base); scripts/test.sh does this",
  );
}

function checkName(name: string): string {
  if (!NAME.test(name)) throw new Error(`DNS test record: unsupported name ${JSON.stringify(name)}`);
  return name;
}

/** A quoted dnsmasq config string; dnsmasq unescapes \" and \\ inside quotes. */
function quote(text: string): string {
  if (/[\r\n\0]/.test(text)) throw new Error(`DNS test record: control character in ${JSON.stringify(text)}`);
  return `"${text.replaceAll('\\', '\\\\').replaceAll('"', '\\"')}"`;
}

/** Cuts text into character-strings of at most 255 octets, never inside a UTF-8 sequence. */
export function splitTxt(text: string): string[] {
  const bytes = Buffer.from(text, 'utf8');
  const parts: string[] = [];
  let start = 0;
  while (start < bytes.length) {
    let end = Math.min(start + MAX_TXT_STRING, bytes.length);
    // 0b10xxxxxx is a continuation byte: back off to the start of the character.
    while (end < bytes.length && end > start && ((bytes[end] ?? 0) & 0xc0) === 0x80) end--;
    parts.push(bytes.subarray(start, end).toString('utf8'));
    start = end;
  }
  return parts.length > 0 ? parts : [''];
}

function recordLine(record: DnsRecord): string {
  const name = checkName(record.name);
  switch (record.type) {
    case 'A':
    case 'AAAA': {
      const ok = record.type === 'A' ? isIPv4(record.address) : isIPv6(record.address);
      if (!ok) throw new Error(`DNS test record: ${record.type} ${name} has address ${record.address}`);
      return `host-record=${name},${record.address}${record.ttl === undefined ? '' : `,${record.ttl}`}`;
    }
    case 'MX':
      return `mx-host=${name},${checkName(record.exchange)},${record.priority}`;
    case 'TXT': {
      const strings = typeof record.value === 'string' ? splitTxt(record.value) : [...record.value];
      for (const s of strings) {
        if (Buffer.byteLength(s) > MAX_TXT_STRING)
          throw new Error(`DNS test record: TXT string over 255 octets`);
      }
      return `txt-record=${name},${strings.map(quote).join(',')}`;
    }
    case 'PTR':
      return `ptr-record=${name},${checkName(record.target)}`;
    case 'CNAME':
      return `cname=${name},${checkName(record.target)}`;
    case 'TLSA': {
      if (!/^([0-9a-fA-F]{2})+$/.test(record.data)) throw new Error('DNS test record: TLSA data must be hex');
      const head = [record.usage, record.selector, record.matchingType].map((n) => {
        if (!Number.isInteger(n) || n < 0 || n > 255)
          throw new Error('DNS test record: TLSA field out of range');
        return n.toString(16).padStart(2, '0');
      });
      return `dns-rr=${name},52,${head.join('')}${record.data}`;
    }
  }
}

function configText(port: number, ttlSeconds: number, records: readonly DnsRecord[]): string {
  return [
    `port=${port}`,
    'listen-address=127.0.0.1',
    'bind-interfaces',
    // Answer every name locally: ours from the records, all others NXDOMAIN.
    'local=/#/',
    `local-ttl=${ttlSeconds}`,
    'log-queries',
    ...records.map(recordLine),
    '',
  ].join('\n');
}

const QUERY_LINE = /query\[(\w+)\] (\S+) from /;
/** Names queries() asks to find the end of the log; left out of what it returns. */
const MARK = /^petrel-log-mark-\d+\.invalid$/;

/** Starts dnsmasq with the given records and waits until it answers on its port. */
export async function startDnsServer(options: DnsServerOptions = {}): Promise<DnsServer> {
  const binary = await findDnsmasq();
  const dir = await tempDir('dnsmasq');
  const configFile = join(dir, 'dnsmasq.conf');
  const logFile = join(dir, 'dnsmasq.log');
  const ttlSeconds = options.ttlSeconds ?? 60;
  let records = [...(options.records ?? [])];
  let port = 0;
  let proc: ManagedProcess | undefined;
  let running = false;
  let marks = 0;

  const launch = async (): Promise<void> => {
    await writeFile(configFile, configText(port, ttlSeconds, records));
    proc = new ManagedProcess({
      name: 'dnsmasq',
      command: binary,
      // As root, dnsmasq drops to user nobody once its socket is bound; as a user, it stays that user.
      args: [
        `--conf-file=${configFile}`,
        '--no-resolv',
        '--no-hosts',
        '--keep-in-foreground',
        '--log-facility=-',
        '--pid-file=',
      ],
      logFile,
      // Logged after the listening sockets are bound.
      readyPattern: /started, version/,
      readyTimeoutMs: 10_000,
    });
    await proc.start();
    running = true;
  };

  const stop = async (): Promise<void> => {
    running = false;
    await proc?.stop('SIGTERM', 5_000);
  };

  const logged = async (): Promise<DnsQuery[]> => {
    const out: DnsQuery[] = [];
    for (const line of (await readFile(logFile, 'utf8')).split('\n')) {
      const m = QUERY_LINE.exec(line);
      if (m) out.push({ type: m[1] ?? '', name: m[2] ?? '' });
    }
    return out;
  };
  // Registered first, so that a server that failed half-way is stopped too.
  options.after?.(stop);

  // freePort keeps its callers apart, not a process that binds a port of its own choosing: retry.
  for (let attempt = 1; ; attempt++) {
    port = await freePort('127.0.0.1');
    try {
      await launch();
      break;
    } catch (error) {
      const inUse = error instanceof LocalEnvError && error.code === LocalEnvErrorCode.ProcessExited;
      if (!inUse || attempt >= 3 || !/Address already in use/.test(proc?.tail ?? '')) throw error;
    }
  }

  return {
    host: '127.0.0.1',
    port,
    address: `127.0.0.1:${port}`,
    dir,
    async setRecords(next) {
      records = [...next];
      configText(port, ttlSeconds, records); // refuse bad records before stopping the running server
      await stop();
      await launch();
    },
    async queries() {
      const unmarked = (all: DnsQuery[]) => all.filter((q) => !MARK.test(q.name));
      // A stopped server has logged all it will.
      if (!running) return unmarked(await logged());
      // dnsmasq logs in order, through a pipe, after answering: once a name asked now shows in
      // the log, every query answered before it does too.
      const mark = `petrel-log-mark-${++marks}.invalid`;
      const resolver = new Resolver({ timeout: 2_000, tries: 3 });
      resolver.setServers([`127.0.0.1:${port}`]);
      await resolver.resolveTxt(mark).catch(() => undefined); // NXDOMAIN: only its log line matters
      return await waitFor(
        async () => {
          const all = await logged();
          const end = all.findIndex((q) => q.name === mark);
          return end < 0 ? undefined : unmarked(all.slice(0, end));
        },
        { timeoutMs: 10_000, message: `${mark} in the dnsmasq log` },
      );
    },
    stop,
    async restart() {
      await stop();
      await launch();
    },
  };
}
