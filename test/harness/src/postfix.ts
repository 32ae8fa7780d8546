// A private Postfix instance used as a real SMTP client: it relays everything to one relayhost
// (the ingress under test, or a sink), so interoperability tests meet the MTA most senders run.
// Each instance lives in its own temporary directory (config, queue, data, maillog), listens only
// on a free loopback port for submission, and is stopped by the test's cleanup hooks.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import type { Dirent } from 'node:fs';
import { chmod, mkdir, readdir, readFile, utimes, writeFile } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { freePort } from '@petrel/localenv';
import { tempDir, trackProcessGroup, untrackProcessGroup } from './cleanup.ts';
import type { After } from './servers.ts';
import { waitFor } from './wait.ts';

export const PostfixErrorCode = {
  /** The postfix package is not installed (scripts/test.sh installs it). */
  Unavailable: 'PETREL_ERR_POSTFIX_UNAVAILABLE',
  /** The master daemon must start as root; its services then drop to the `postfix` user. */
  NotRoot: 'PETREL_ERR_POSTFIX_NOT_ROOT',
  StartFailed: 'PETREL_ERR_POSTFIX_START_FAILED',
  /** Postfix's own smtpd refused the submission. */
  SubmitRejected: 'PETREL_ERR_POSTFIX_SUBMIT_REJECTED',
  InvalidOption: 'PETREL_ERR_POSTFIX_INVALID_OPTION',
} as const;
export type PostfixErrorCode = (typeof PostfixErrorCode)[keyof typeof PostfixErrorCode];

export class PostfixError extends Error {
  readonly code: PostfixErrorCode;
  constructor(code: PostfixErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'PostfixError';
    this.code = code;
  }
}

/**
 * How the Postfix SMTP client talks to the relayhost: cleartext, STARTTLS required
 * (smtp_tls_security_level = encrypt, RFC 3207), or implicit TLS (smtp_tls_wrappermode, RFC 8314).
 */
export type PostfixTlsMode = 'none' | 'starttls' | 'wrapper';

export interface PostfixOptions {
  /** IP address or host name of the relayhost; written as `[host]:port`, so no MX lookup. */
  relayHost: string;
  relayPort: number;
  tls: PostfixTlsMode;
  /** SMTP AUTH towards the relayhost (RFC 4954) through Cyrus SASL (libsasl2-modules). */
  sasl?: {
    username: string;
    password: string;
    /** smtp_sasl_mechanism_filter, e.g. ['PLAIN']; Cyrus otherwise picks the strongest offered. */
    mechanisms?: readonly string[];
  };
  /** smtp_tls_CAfile: the relayhost's CA; the log then says "Trusted TLS connection". */
  caFile?: string;
  /** Require a verified certificate matching this name (smtp_tls_security_level = secure). */
  verifyName?: string;
  /** myhostname, also the EHLO name towards the relayhost; default postfix.test. */
  hostname?: string;
  /** Logs the whole SMTP conversation with the relayhost (debug_peer_list), for assertions. */
  trace?: boolean;
  /**
   * STARTTLS on Postfix's own smtpd with this certificate chain (PEM, leaf first) and key; the
   * files go into the instance directory (smtpd_tls_security_level = may).
   */
  smtpdTls?: { chain: Buffer; key: Buffer };
  /** Extra or overriding main.cf parameters. */
  mainCf?: Readonly<Record<string, string>>;
}

/** Parameters of the submission to Postfix, which Postfix carries on to the relayhost. */
export interface PostfixSendOptions {
  /** MAIL FROM … SMTPUTF8 (RFC 6531). */
  smtputf8?: boolean;
  /** MAIL FROM … BODY= (RFC 6152). */
  body?: '7BIT' | '8BITMIME';
  /** RFC 3461 parameters; NOTIFY and ORCPT apply to every recipient. */
  dsn?: {
    ret?: 'FULL' | 'HDRS';
    envid?: string;
    notify?: 'NEVER' | readonly ('SUCCESS' | 'FAILURE' | 'DELAY')[];
    /** xtext-encoded by the caller when needed, e.g. `rfc822;user@example.test`. */
    orcpt?: string;
  };
}

/** One delivery attempt as the Postfix SMTP client logged it. */
export interface PostfixDelivery {
  queueId: string;
  to: string;
  relay: string;
  dsn: string;
  status: string;
  /** The text in parentheses: the relayhost's reply or Postfix's reason. */
  detail: string;
}

export interface PostfixInstance {
  /** Root of the instance: etc/ (main.cf, master.cf), queue/, data/, maillog. */
  readonly dir: string;
  readonly configDir: string;
  /** Postfix's own smtpd on 127.0.0.1, where send() submits (and other clients may). */
  readonly submitPort: number;
  /** Queue ids of the messages send() submitted, in order. */
  readonly queueIds: readonly string[];
  readonly version: string;
  /** Submits a message over SMTP to Postfix's smtpd; resolves with the queue id. */
  send(
    from: string,
    to: readonly string[],
    message: Buffer | string,
    options?: PostfixSendOptions,
  ): Promise<string>;
  /** Waits until no message is left in the queue (delivered or bounced). */
  waitForQueueEmpty(timeoutMs: number): Promise<void>;
  /** Asks the queue manager to retry deferred mail now (postqueue -f). */
  flush(): Promise<void>;
  /** The maillog so far. */
  logs(): Promise<string>;
  /** Delivery attempts parsed from the maillog (`to=<…>, relay=…, dsn=…, status=…`). */
  deliveries(): Promise<PostfixDelivery[]>;
  /** Processes of the instance that are still alive (empty after stop()). */
  livePids(): Promise<number[]>;
  /** `postfix stop`, then SIGKILL for anything left; idempotent. */
  stop(): Promise<void>;
}

const START_ATTEMPTS = 3;
const STOP_TIMEOUT_MS = 10_000;
const COMMAND_TIMEOUT_MS = 30_000;
const SMTP_TIMEOUT_MS = 30_000;
// Where a queued message can be; `corrupt` and `saved` are not part of the live queue.
const QUEUE_DIRS = ['maildrop', 'incoming', 'active', 'deferred', 'hold'] as const;
const DELIVERY_LINE =
  /postfix\/\S+\[\d+\]: ([0-9A-Za-z]+): to=<([^>]*)>,(?: orig_to=<[^>]*>,)? relay=([^,]+), .*?dsn=([0-9.]+), status=(\S+) \((.*)\)$/;
const CONFIG_VALUE = /^[^\r\n]*$/;

interface CommandResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a Postfix command (argv, no shell) and collects its output. */
async function run(command: string, args: readonly string[]): Promise<CommandResult> {
  const child = spawn(command, [...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => {
    stdout += c.toString('utf8');
  });
  child.stderr.on('data', (c: Buffer) => {
    stderr += c.toString('utf8');
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), COMMAND_TIMEOUT_MS);
  try {
    // once() rejects when 'error' comes first (e.g. ENOENT).
    const [code] = (await once(child, 'close')) as [number | null];
    return { code, stdout, stderr };
  } finally {
    clearTimeout(timer);
  }
}

async function postfixVersion(): Promise<string> {
  try {
    const result = await run('postconf', ['-d', '-h', 'mail_version']);
    if (result.code === 0) return result.stdout.trim();
  } catch {
    // ENOENT: reported below
  }
  throw new PostfixError(
    PostfixErrorCode.Unavailable,
    'postfix is not installed; run `DEBIAN_FRONTEND=noninteractive apt-get install -y postfix libsasl2-modules` (scripts/test.sh does)',
  );
}

function checkValue(name: string, value: string): string {
  if (!CONFIG_VALUE.test(value)) {
    throw new PostfixError(PostfixErrorCode.InvalidOption, `${name} must not contain a line break`);
  }
  return value;
}

/** main.cf for a relay-only instance: nothing is delivered locally, everything goes to the relayhost. */
export function mainCf(dir: string, options: PostfixOptions): Record<string, string> {
  const hostname = checkValue('hostname', options.hostname ?? 'postfix.test');
  const relayHost = checkValue('relayHost', options.relayHost);
  const tlsLevel = options.verifyName !== undefined ? 'secure' : options.tls === 'none' ? 'none' : 'encrypt';
  if (options.tls === 'none' && options.verifyName !== undefined) {
    throw new PostfixError(PostfixErrorCode.InvalidOption, 'verifyName needs tls starttls or wrapper');
  }
  const params: Record<string, string> = {
    compatibility_level: '3.6',
    config_directory: join(dir, 'etc'),
    queue_directory: join(dir, 'queue'),
    data_directory: join(dir, 'data'),
    myhostname: hostname,
    mydomain: hostname,
    myorigin: '$myhostname',
    mydestination: '',
    relay_domains: '',
    local_recipient_maps: '',
    local_transport: 'error:5.1.1 local delivery is disabled',
    alias_maps: '',
    alias_database: '',
    biff: 'no',
    // Only the submission listener of master.cf, on loopback; nothing on port 25.
    inet_interfaces: '127.0.0.1',
    inet_protocols: 'ipv4',
    mynetworks: '127.0.0.0/8',
    smtpd_relay_restrictions: 'permit_mynetworks, reject',
    smtpd_peername_lookup: 'no',
    smtputf8_enable: 'yes',
    relayhost: `[${relayHost}]:${options.relayPort}`,
    // /etc/hosts, not DNS, when relayHost is a name.
    smtp_host_lookup: 'native',
    maillog_file: join(dir, 'maillog'),
    maillog_file_prefixes: dir,
    // A deferral is retried within seconds, not the production 300 s.
    queue_run_delay: '1s',
    minimal_backoff_time: '1s',
    maximal_backoff_time: '5s',
    smtp_tls_security_level: tlsLevel,
    smtp_tls_wrappermode: options.tls === 'wrapper' ? 'yes' : 'no',
    smtp_tls_loglevel: '1',
    smtp_sasl_auth_enable: options.sasl === undefined ? 'no' : 'yes',
  };
  if (options.smtpdTls !== undefined) {
    params['smtpd_tls_cert_file'] = join(dir, 'etc', 'smtpd-cert.pem');
    params['smtpd_tls_key_file'] = join(dir, 'etc', 'smtpd-key.pem');
    params['smtpd_tls_security_level'] = 'may';
    params['smtpd_tls_loglevel'] = '1';
  }
  if (options.caFile !== undefined) params['smtp_tls_CAfile'] = checkValue('caFile', options.caFile);
  if (options.verifyName !== undefined) {
    params['smtp_tls_secure_cert_match'] = checkValue('verifyName', options.verifyName);
  }
  if (options.sasl !== undefined) {
    params['smtp_sasl_password_maps'] = `texthash:${join(dir, 'etc', 'sasl_passwd')}`;
    // The default also forbids plaintext mechanisms, which are what PLAIN/LOGIN over TLS are.
    params['smtp_sasl_security_options'] = 'noanonymous';
    params['smtp_sasl_tls_security_options'] = 'noanonymous';
    if (options.sasl.mechanisms !== undefined) {
      params['smtp_sasl_mechanism_filter'] = options.sasl.mechanisms.join(', ');
    }
  }
  if (options.trace === true) {
    params['debug_peer_list'] = relayHost;
    params['debug_peer_level'] = '2';
  }
  for (const [name, value] of Object.entries(options.mainCf ?? {})) {
    params[checkValue('mainCf name', name)] = checkValue(name, value);
  }
  return params;
}

/** master.cf: the services a relay needs, none chrooted (the temp dir has no chroot files). */
export function masterCf(submitPort: number): string {
  const services: readonly (readonly string[])[] = [
    [`127.0.0.1:${submitPort}`, 'inet', 'n', '-', 'n', '-', '-', 'smtpd'],
    ['pickup', 'unix', 'n', '-', 'n', '60', '1', 'pickup'],
    ['cleanup', 'unix', 'n', '-', 'n', '-', '0', 'cleanup'],
    ['qmgr', 'unix', 'n', '-', 'n', '300', '1', 'qmgr'],
    ['tlsmgr', 'unix', '-', '-', 'n', '1000?', '1', 'tlsmgr'],
    ['rewrite', 'unix', '-', '-', 'n', '-', '-', 'trivial-rewrite'],
    ['bounce', 'unix', '-', '-', 'n', '-', '0', 'bounce'],
    ['defer', 'unix', '-', '-', 'n', '-', '0', 'bounce'],
    ['trace', 'unix', '-', '-', 'n', '-', '0', 'bounce'],
    ['verify', 'unix', '-', '-', 'n', '-', '1', 'verify'],
    ['flush', 'unix', 'n', '-', 'n', '1000?', '0', 'flush'],
    ['proxymap', 'unix', '-', '-', 'n', '-', '-', 'proxymap'],
    ['smtp', 'unix', '-', '-', 'n', '-', '-', 'smtp'],
    ['relay', 'unix', '-', '-', 'n', '-', '-', 'smtp'],
    ['showq', 'unix', 'n', '-', 'n', '-', '-', 'showq'],
    ['error', 'unix', '-', '-', 'n', '-', '-', 'error'],
    ['retry', 'unix', '-', '-', 'n', '-', '-', 'error'],
    ['discard', 'unix', '-', '-', 'n', '-', '-', 'discard'],
    ['anvil', 'unix', '-', '-', 'n', '-', '1', 'anvil'],
    ['scache', 'unix', '-', '-', 'n', '-', '1', 'scache'],
    // postlogd writes maillog_file (Postfix 3.4+).
    ['postlog', 'unix-dgram', 'n', '-', 'n', '-', '1', 'postlogd'],
  ];
  return `${services.map((s) => s.join(' ')).join('\n')}\n`;
}

/** Process ids whose process group is `pgid` and that have not exited (zombies excluded). */
async function groupMembers(pgid: number): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = await readFile(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue; // exited meanwhile
    }
    // "pid (comm) state ppid pgrp …"; comm may contain spaces and parentheses.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (fields[0] !== 'Z' && Number(fields[2]) === pgid) pids.push(Number(entry));
  }
  return pids;
}

async function countFiles(dir: string): Promise<number> {
  let entries: Dirent[];
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return 0;
  }
  let count = 0;
  for (const entry of entries) {
    if (entry.isDirectory()) count += await countFiles(join(dir, entry.name));
    else count++;
  }
  return count;
}

interface Reply {
  code: number;
  text: string;
}

/** The few SMTP steps of a submission to Postfix's smtpd; replies are read strictly in order. */
class Submission {
  readonly #socket: Socket;
  #buffer = '';
  #lines: string[] = [];
  #replies: Reply[] = [];
  #waiter: (() => void) | undefined;
  #closed = false;

  constructor(socket: Socket) {
    this.#socket = socket;
    socket.setTimeout(SMTP_TIMEOUT_MS, () => socket.destroy(new Error('SMTP timeout')));
    socket.on('data', (chunk: Buffer) => {
      this.#buffer += chunk.toString('utf8');
      let nl = this.#buffer.indexOf('\n');
      while (nl !== -1) {
        const line = this.#buffer.slice(0, nl).replace(/\r$/, '');
        this.#buffer = this.#buffer.slice(nl + 1);
        this.#lines.push(line);
        if (line.charAt(3) !== '-') {
          this.#replies.push({ code: Number(line.slice(0, 3)), text: this.#lines.join('\n') });
          this.#lines = [];
        }
        nl = this.#buffer.indexOf('\n');
      }
      this.#waiter?.();
    });
    socket.on('close', () => {
      this.#closed = true;
      this.#waiter?.();
    });
    socket.on('error', () => {});
  }

  async reply(): Promise<Reply> {
    for (;;) {
      const next = this.#replies.shift();
      if (next !== undefined) return next;
      if (this.#closed) throw new Error('connection closed before a reply');
      await new Promise<void>((resolve) => {
        this.#waiter = resolve;
      });
      this.#waiter = undefined;
    }
  }

  async expect(command: string | Buffer | undefined, accept: (code: number) => boolean): Promise<Reply> {
    if (command !== undefined) this.#socket.write(command);
    const reply = await this.reply();
    if (!accept(reply.code)) {
      const sent = typeof command === 'string' ? command.trim() : 'message data';
      throw new PostfixError(PostfixErrorCode.SubmitRejected, `${sent}: ${reply.text}`);
    }
    return reply;
  }

  close(): void {
    this.#socket.end();
  }
}

const LF = 0x0a;
const DOT = 0x2e;

/** Dot-stuffs (RFC 5321 §4.5.2) and terminates the message with CRLF.CRLF. */
export function dataPayload(message: Buffer): Buffer {
  const parts: Buffer[] = [];
  let start = 0;
  for (let i = 0; i < message.length; i++) {
    if (message[i] === DOT && (i === 0 || message[i - 1] === LF)) {
      parts.push(message.subarray(start, i), Buffer.from('.'));
      start = i;
    }
  }
  parts.push(message.subarray(start));
  const endsWithNewline = message.length > 0 && message[message.length - 1] === LF;
  parts.push(Buffer.from(endsWithNewline || message.length === 0 ? '.\r\n' : '\r\n.\r\n'));
  return Buffer.concat(parts);
}

function mailParams(options: PostfixSendOptions): string {
  const params: string[] = [];
  if (options.body !== undefined) params.push(`BODY=${options.body}`);
  if (options.smtputf8 === true) params.push('SMTPUTF8');
  if (options.dsn?.ret !== undefined) params.push(`RET=${options.dsn.ret}`);
  if (options.dsn?.envid !== undefined) params.push(`ENVID=${options.dsn.envid}`);
  return params.map((p) => ` ${p}`).join('');
}

function rcptParams(options: PostfixSendOptions): string {
  const params: string[] = [];
  const notify = options.dsn?.notify;
  if (notify !== undefined) params.push(`NOTIFY=${notify === 'NEVER' ? 'NEVER' : notify.join(',')}`);
  if (options.dsn?.orcpt !== undefined) params.push(`ORCPT=${options.dsn.orcpt}`);
  return params.map((p) => ` ${p}`).join('');
}

async function submit(
  port: number,
  from: string,
  to: readonly string[],
  message: Buffer,
  options: PostfixSendOptions,
): Promise<string> {
  const socket = connect(port, '127.0.0.1');
  const session = new Submission(socket);
  try {
    await session.expect(undefined, (c) => c === 220);
    await session.expect('EHLO submitter.test\r\n', (c) => c === 250);
    await session.expect(`MAIL FROM:<${from}>${mailParams(options)}\r\n`, (c) => c === 250);
    for (const rcpt of to) {
      await session.expect(`RCPT TO:<${rcpt}>${rcptParams(options)}\r\n`, (c) => c === 250);
    }
    await session.expect('DATA\r\n', (c) => c === 354);
    const done = await session.expect(dataPayload(message), (c) => c === 250);
    const queueId = /queued as ([0-9A-Za-z]+)/.exec(done.text)?.[1];
    if (queueId === undefined) {
      throw new PostfixError(PostfixErrorCode.SubmitRejected, `no queue id in "${done.text}"`);
    }
    await session.expect('QUIT\r\n', (c) => c === 221).catch(() => undefined);
    return queueId;
  } finally {
    session.close();
    socket.destroy();
  }
}

/**
 * Postfix re-reads a configuration file modified within the last second until it is older (a
 * guard against half-written files), which costs ~2 s per start; a generated file is complete.
 */
async function backdate(path: string): Promise<void> {
  const past = new Date(Date.now() - 60_000);
  await utimes(path, past, past);
}

/** Writes the configuration on a fresh free port and runs `postfix start`. */
async function startOnce(
  dir: string,
  options: PostfixOptions,
): Promise<{ submitPort: number; pgid: number } | { failure: string }> {
  const submitPort = await freePort();
  const params = mainCf(dir, options);
  const etc = join(dir, 'etc');
  await writeFile(
    join(etc, 'main.cf'),
    `${Object.entries(params)
      .map(([k, v]) => `${k} = ${v}`)
      .join('\n')}\n`,
  );
  await writeFile(join(etc, 'master.cf'), masterCf(submitPort));
  await backdate(join(etc, 'main.cf'));
  await backdate(join(etc, 'master.cf'));
  const result = await run('postfix', ['-c', etc, 'start']);
  if (result.code !== 0) {
    return { failure: `${result.stderr}${await readFile(join(dir, 'maillog'), 'utf8').catch(() => '')}` };
  }
  // master daemonised into its own session: its pid is the process group of every Postfix process.
  const pgid = Number((await readFile(join(dir, 'queue', 'pid', 'master.pid'), 'utf8')).trim());
  return { submitPort, pgid };
}

/**
 * Starts a private Postfix that relays all mail to `relayHost:relayPort`. Stopped by `after`,
 * and its process group is killed if the test process exits first.
 */
export async function startPostfix(after: After, options: PostfixOptions): Promise<PostfixInstance> {
  const version = await postfixVersion();
  if (process.getuid?.() !== 0) {
    throw new PostfixError(
      PostfixErrorCode.NotRoot,
      'the Postfix master daemon must be started as root (its services run as the postfix user)',
    );
  }
  const dir = await tempDir('postfix');
  // mkdtemp makes 0700; the postfix user must reach queue/ and data/ below it.
  await chmod(dir, 0o755);
  const etc = join(dir, 'etc');
  await mkdir(etc);
  // The queue directory must exist and belong to root; `postfix start` creates what is below it.
  await mkdir(join(dir, 'queue'));
  if (options.smtpdTls !== undefined) {
    await writeFile(join(etc, 'smtpd-cert.pem'), options.smtpdTls.chain);
    await writeFile(join(etc, 'smtpd-key.pem'), options.smtpdTls.key, { mode: 0o600 });
  }
  if (options.sasl !== undefined) {
    const key = `[${options.relayHost}]:${options.relayPort}`;
    const value = `${checkValue('username', options.sasl.username)}:${checkValue('password', options.sasl.password)}`;
    // texthash is read before the smtp client drops privileges; only root needs to read it.
    await writeFile(join(etc, 'sasl_passwd'), `${key} ${value}\n`, { mode: 0o600 });
    await backdate(join(etc, 'sasl_passwd'));
  }

  let started: { submitPort: number; pgid: number } | undefined;
  let lastFailure = '';
  for (let attempt = 0; attempt < START_ATTEMPTS; attempt++) {
    const result = await startOnce(dir, options);
    if (!('failure' in result)) {
      started = result;
      break;
    }
    lastFailure = result.failure;
    // Only a lost race for the free port is worth another attempt.
    if (!/address already in use/i.test(lastFailure)) break;
  }
  if (started === undefined) {
    throw new PostfixError(PostfixErrorCode.StartFailed, `postfix start failed:\n${lastFailure}`);
  }
  const { submitPort, pgid } = started;
  trackProcessGroup(pgid);

  const queueIds: string[] = [];
  let stopping: Promise<void> | undefined;
  const logs = async (): Promise<string> => await readFile(join(dir, 'maillog'), 'utf8').catch(() => '');

  const instance: PostfixInstance = {
    dir,
    configDir: etc,
    submitPort,
    queueIds,
    version,
    async send(from, to, message, sendOptions = {}) {
      const id = await submit(
        submitPort,
        from,
        to,
        typeof message === 'string' ? Buffer.from(message, 'utf8') : message,
        sendOptions,
      );
      queueIds.push(id);
      return id;
    },
    async waitForQueueEmpty(timeoutMs) {
      await waitFor(
        async () => {
          let total = 0;
          for (const sub of QUEUE_DIRS) total += await countFiles(join(dir, 'queue', sub));
          if (total !== 0) return false;
          // The directories are read one by one, so a file qmgr moves from deferred to active
          // between two reads goes unseen; and postlogd writes the log after the fact. qmgr's
          // "removed" line for every submitted message comes after its delivery's status lines.
          const log = await logs();
          return queueIds.every((id) => log.includes(`${id}: removed`));
        },
        { timeoutMs, intervalMs: 50, message: `the Postfix queue in ${dir} to be empty` },
      );
    },
    async flush() {
      const result = await run('postqueue', ['-c', etc, '-f']);
      if (result.code !== 0) throw new Error(`postqueue -f failed: ${result.stderr}`);
    },
    logs,
    async deliveries() {
      const out: PostfixDelivery[] = [];
      for (const line of (await logs()).split('\n')) {
        const m = DELIVERY_LINE.exec(line);
        if (m === null) continue;
        const [, queueId = '', to = '', relay = '', dsn = '', status = '', detail = ''] = m;
        out.push({ queueId, to, relay, dsn, status, detail });
      }
      return out;
    },
    livePids: () => groupMembers(pgid),
    stop() {
      stopping ??= (async () => {
        // `postfix stop` signals master, which signals its process group; it SIGKILLs after 5 s.
        await run('postfix', ['-c', etc, 'stop']).catch(() => undefined);
        try {
          await waitFor(async () => (await groupMembers(pgid)).length === 0, {
            timeoutMs: STOP_TIMEOUT_MS,
            intervalMs: 50,
            message: 'Postfix processes to exit',
          });
        } catch {
          try {
            process.kill(-pgid, 'SIGKILL');
          } catch {
            // gone meanwhile
          }
        }
        untrackProcessGroup(pgid);
      })();
      return stopping;
    },
  };
  after(() => instance.stop());
  return instance;
}
