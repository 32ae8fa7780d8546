// Real SMTP clients for interoperability tests: swaks, curl and Python's smtplib run as
// subprocesses (argv arrays, never a shell); nodemailer runs in-process as applications use it.
// Each wrapper returns what the client saw (exit status, transcript, server replies) so a test
// can assert on reply codes instead of on "it did not throw".
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import nodemailer from 'nodemailer';

export const ClientErrorCode = {
  /** The client program is not installed (scripts/test.sh installs swaks; curl and python3 are base). */
  Unavailable: 'PETREL_ERR_CLIENT_UNAVAILABLE',
  /** The client ran past its deadline and was killed. */
  Timeout: 'PETREL_ERR_CLIENT_TIMEOUT',
  /** The client's output could not be understood (e.g. no JSON from the smtplib script). */
  BadOutput: 'PETREL_ERR_CLIENT_BAD_OUTPUT',
  InvalidOption: 'PETREL_ERR_CLIENT_INVALID_OPTION',
} as const;
export type ClientErrorCode = (typeof ClientErrorCode)[keyof typeof ClientErrorCode];

export class ClientError extends Error {
  readonly code: ClientErrorCode;
  constructor(code: ClientErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'ClientError';
    this.code = code;
  }
}

/** The Python script behind pythonSmtplib(), for running it by hand. */
export const SMTPLIB_CLIENT_SCRIPT = fileURLToPath(new URL('./smtplib_client.py', import.meta.url));

const DEFAULT_TIMEOUT_MS = 30_000;

export interface ProcessResult {
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  /** Written to the client's stdin, which is then closed. */
  input?: Buffer | string;
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;
}

/** One line of an SMTP conversation as a client logged it. */
export interface TranscriptLine {
  from: 'client' | 'server';
  text: string;
}

/** A complete (possibly multi-line) server reply; `text` keeps the lines, joined by "\n". */
export interface SmtpReply {
  code: number;
  text: string;
}

/** Runs a client program and collects its output; rejects only if it cannot run or times out. */
export async function runClient(
  command: string,
  args: readonly string[],
  options: RunOptions = {},
): Promise<ProcessResult> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const child = spawn(command, [...args], { env: options.env ?? process.env, stdio: 'pipe' });
  const stdout: Buffer[] = [];
  const stderr: Buffer[] = [];
  child.stdout.on('data', (c: Buffer) => stdout.push(c));
  child.stderr.on('data', (c: Buffer) => stderr.push(c));
  // A client that exits before reading all of stdin must not crash the test with EPIPE.
  child.stdin.on('error', () => {});
  child.stdin.end(options.input ?? '');
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill('SIGKILL');
  }, timeoutMs);
  try {
    const [exitCode, signal] = await new Promise<[number | null, NodeJS.Signals | null]>(
      (resolve, reject) => {
        child.once('error', (error: NodeJS.ErrnoException) =>
          reject(
            error.code === 'ENOENT'
              ? new ClientError(ClientErrorCode.Unavailable, `${command} is not installed`, { cause: error })
              : error,
          ),
        );
        child.once('close', (code, sig) => resolve([code, sig]));
      },
    );
    const result = {
      exitCode,
      signal,
      stdout: Buffer.concat(stdout).toString('utf8'),
      stderr: Buffer.concat(stderr).toString('utf8'),
    };
    if (timedOut) {
      throw new ClientError(
        ClientErrorCode.Timeout,
        `${command} did not finish within ${timeoutMs} ms; output:\n${result.stdout}${result.stderr}`,
      );
    }
    return result;
  } finally {
    clearTimeout(timer);
  }
}

/** Groups transcript lines from the server into replies ("250-…" continues, "250 …" ends). */
export function repliesOf(transcript: readonly TranscriptLine[]): SmtpReply[] {
  const replies: SmtpReply[] = [];
  let pending: string[] = [];
  for (const line of transcript) {
    if (line.from !== 'server') continue;
    const m = /^(\d{3})([ -]?)(.*)$/.exec(line.text);
    if (m === null) continue;
    pending.push(line.text);
    if (m[2] !== '-') {
      replies.push({ code: Number(m[1]), text: pending.join('\n') });
      pending = [];
    }
  }
  return replies;
}

/**
 * True when the client sent MAIL FROM through DATA without waiting for a reply in between
 * (RFC 2920 pipelining), as its transcript shows.
 */
export function pipelinedEnvelope(transcript: readonly TranscriptLine[]): boolean {
  const mail = transcript.findIndex((l) => l.from === 'client' && /^MAIL FROM:/i.test(l.text));
  if (mail === -1) return false;
  for (const line of transcript.slice(mail + 1)) {
    if (line.from === 'server') return false;
    if (/^DATA$/i.test(line.text)) return true;
  }
  return false;
}

// ---------------------------------------------------------------------------------------------
// swaks

export interface SwaksResult extends ProcessResult {
  transcript: TranscriptLine[];
  replies: SmtpReply[];
}

/**
 * Runs swaks with the given arguments, e.g. ['--server', '127.0.0.1:2525', '--from', …,
 * '--to', …, '--pipeline', '--tls', '--auth', 'PLAIN', …]. `--data -` reads `input`.
 * swaks exits 0 on success and with a code naming the failed step otherwise (e.g. 24: RCPT).
 */
export async function swaks(args: readonly string[], options: RunOptions = {}): Promise<SwaksResult> {
  const result = await runClient('swaks', args, options);
  const transcript = parseSwaksTranscript(result.stdout + result.stderr);
  return { ...result, transcript, replies: repliesOf(transcript) };
}

/**
 * swaks marks lines by direction: " -> " client, "<-  " server, " ~> " / "<~  " the same inside
 * TLS, and "<** " / "<~* " a server error reply.
 */
export function parseSwaksTranscript(output: string): TranscriptLine[] {
  const transcript: TranscriptLine[] = [];
  for (const line of output.split(/\r?\n/)) {
    const m = /^( ->|<- |<\*\*| ~>|<~ |<~\*) (.*)$/.exec(line);
    if (m === null) continue;
    const marker = m[1] ?? '';
    transcript.push({ from: marker.includes('>') ? 'client' : 'server', text: m[2] ?? '' });
  }
  return transcript;
}

// ---------------------------------------------------------------------------------------------
// curl

export interface CurlSmtpOptions {
  /** smtp://host:port[/ehlo-name] or smtps://… for implicit TLS; the EHLO name defaults to curl.test. */
  url: string;
  from: string;
  to: readonly string[];
  /** The message: a file (--upload-file FILE) or bytes on stdin. */
  file?: string;
  message?: Buffer | string;
  user?: string;
  password?: string;
  /** starttls: --ssl-reqd on smtp://; implicit: smtps://; none: cleartext. */
  ssl: 'starttls' | 'implicit' | 'none';
  /** e.g. 'AUTH=PLAIN' (--login-options). */
  loginOptions?: string;
  cacert?: string;
  insecure?: boolean;
  /** --mail-rcpt-allowfails: go on to DATA when some recipients are refused. */
  allowRcptFailures?: boolean;
  /** --crlf: convert LF to CRLF in the upload. */
  crlf?: boolean;
  timeoutMs?: number;
}

export interface CurlResult extends ProcessResult {
  transcript: TranscriptLine[];
  replies: SmtpReply[];
}

export function curlSmtpArgs(options: CurlSmtpOptions): string[] {
  const scheme = /^([a-z]+):\/\//i.exec(options.url)?.[1]?.toLowerCase();
  const expected = options.ssl === 'implicit' ? 'smtps' : 'smtp';
  if (scheme !== expected) {
    throw new ClientError(
      ClientErrorCode.InvalidOption,
      `ssl ${options.ssl} needs a ${expected}:// url, got ${options.url}`,
    );
  }
  if ((options.file === undefined) === (options.message === undefined)) {
    throw new ClientError(ClientErrorCode.InvalidOption, 'give exactly one of file and message');
  }
  const timeoutS = Math.ceil((options.timeoutMs ?? DEFAULT_TIMEOUT_MS) / 1000);
  // curl's EHLO name is the URL path; without one it would use the upload file's name.
  const url = /^[a-z]+:\/\/[^/]+$/i.test(options.url) ? `${options.url}/curl.test` : options.url;
  const args = ['--silent', '--show-error', '--verbose', '--max-time', String(timeoutS), '--url', url];
  args.push('--mail-from', options.from);
  for (const rcpt of options.to) args.push('--mail-rcpt', rcpt);
  args.push('--upload-file', options.file ?? '-');
  if (options.ssl === 'starttls') args.push('--ssl-reqd');
  if (options.user !== undefined) args.push('--user', `${options.user}:${options.password ?? ''}`);
  if (options.loginOptions !== undefined) args.push('--login-options', options.loginOptions);
  if (options.cacert !== undefined) args.push('--cacert', options.cacert);
  if (options.insecure === true) args.push('--insecure');
  if (options.allowRcptFailures === true) args.push('--mail-rcpt-allowfails');
  if (options.crlf === true) args.push('--crlf');
  return args;
}

/**
 * Sends one message with curl's SMTP support. Exit code 0 is success; e.g. 55 a refused
 * recipient or DATA, 67 a refused login, 64 STARTTLS not offered with --ssl-reqd.
 */
export async function curlSmtp(options: CurlSmtpOptions): Promise<CurlResult> {
  const args = curlSmtpArgs(options);
  const result = await runClient('curl', args, {
    input: options.message ?? '',
    timeoutMs: (options.timeoutMs ?? DEFAULT_TIMEOUT_MS) + 5_000,
  });
  const transcript = parseCurlTranscript(result.stderr);
  return { ...result, transcript, replies: repliesOf(transcript) };
}

/** curl --verbose writes "> " for what it sent and "< " for what it received, on stderr. */
export function parseCurlTranscript(stderr: string): TranscriptLine[] {
  const transcript: TranscriptLine[] = [];
  for (const line of stderr.split(/\r?\n/)) {
    if (line.startsWith('> ')) transcript.push({ from: 'client', text: line.slice(2) });
    else if (line.startsWith('< ')) transcript.push({ from: 'server', text: line.slice(2) });
  }
  return transcript;
}

// ---------------------------------------------------------------------------------------------
// Python smtplib

export interface PythonSmtplibOptions {
  host: string;
  port: number;
  /** starttls: SMTP.starttls(); implicit: SMTP_SSL. */
  tls: 'none' | 'starttls' | 'implicit';
  cafile?: string;
  insecure?: boolean;
  ehlo?: string;
  user?: string;
  /** Passed in the environment, not argv. */
  password?: string;
  /** Restricts SMTP.login() to one mechanism (it prefers CRAM-MD5, then PLAIN, then LOGIN). */
  authMechanism?: string;
  from: string;
  to: readonly string[];
  /** e.g. ['SMTPUTF8', 'BODY=8BITMIME', 'RET=HDRS', 'ENVID=x'] */
  mailOptions?: readonly string[];
  /** e.g. ['NOTIFY=SUCCESS,FAILURE', 'ORCPT=rfc822;a@b.test'] */
  rcptOptions?: readonly string[];
  /** sendmail (default) sends the bytes as given; send_message parses and re-serialises them. */
  api?: 'sendmail' | 'send_message';
  message: Buffer | string;
  timeoutMs?: number;
}

/** What smtplib_client.py prints. */
export interface PythonSmtplibResult {
  /** The message was accepted (by at least one recipient). */
  ok: boolean;
  /** EHLO keywords (lower case) with their parameters, after STARTTLS when used. */
  features: Record<string, string>;
  tls: { version: string; cipher: string } | null;
  authenticated: boolean;
  /** Recipients the server refused: [code, text]. */
  refused: Record<string, [number, string]>;
  /** Every command (smtplib sends them in lower case) with its reply. */
  exchanges: { command: string; code: number; text: string }[];
  error: { type: string; message: string; code?: number } | null;
}

export function pythonSmtplibArgs(options: PythonSmtplibOptions): string[] {
  const args = [SMTPLIB_CLIENT_SCRIPT, '--host', options.host, '--port', String(options.port)];
  args.push('--tls', options.tls, '--from', options.from);
  for (const rcpt of options.to) args.push('--to', rcpt);
  for (const o of options.mailOptions ?? []) args.push('--mail-option', o);
  for (const o of options.rcptOptions ?? []) args.push('--rcpt-option', o);
  if (options.cafile !== undefined) args.push('--cafile', options.cafile);
  if (options.insecure === true) args.push('--insecure');
  if (options.ehlo !== undefined) args.push('--ehlo', options.ehlo);
  if (options.user !== undefined) args.push('--user', options.user);
  if (options.authMechanism !== undefined) args.push('--auth-mechanism', options.authMechanism);
  if (options.api !== undefined) args.push('--api', options.api);
  args.push('--timeout', String((options.timeoutMs ?? DEFAULT_TIMEOUT_MS) / 1000));
  return args;
}

/** Sends one message with Python's smtplib (python3 from PATH) and returns its JSON report. */
export async function pythonSmtplib(
  options: PythonSmtplibOptions,
): Promise<ProcessResult & { result: PythonSmtplibResult }> {
  const run = await runClient('python3', pythonSmtplibArgs(options), {
    input: options.message,
    env: { ...process.env, SMTPLIB_PASSWORD: options.password ?? '' },
    timeoutMs: (options.timeoutMs ?? DEFAULT_TIMEOUT_MS) + 5_000,
  });
  try {
    if (run.exitCode !== 0) throw new Error(`exit ${run.exitCode ?? run.signal}`);
    return { ...run, result: JSON.parse(run.stdout) as PythonSmtplibResult };
  } catch (cause) {
    throw new ClientError(ClientErrorCode.BadOutput, `smtplib_client.py failed: ${run.stdout}${run.stderr}`, {
      cause,
    });
  }
}

// ---------------------------------------------------------------------------------------------
// nodemailer

export interface NodemailerSendOptions {
  host: string;
  port: number;
  /** Implicit TLS (port-465 semantics). */
  secure: boolean;
  /** STARTTLS or fail. */
  requireTLS?: boolean;
  /** Never STARTTLS, even when offered. */
  ignoreTLS?: boolean;
  tls?: { ca?: string | Buffer; rejectUnauthorized?: boolean; servername?: string };
  auth?: { user: string; pass: string; method?: 'PLAIN' | 'LOGIN' | 'CRAM-MD5' };
  /** EHLO name. */
  name?: string;
  envelope: { from: string; to: readonly string[] };
  dsn?: { ret?: 'FULL' | 'HDRS'; envid?: string; notify?: string | readonly string[]; orcpt?: string };
  /** The message, sent as is. */
  raw: Buffer | string;
  timeoutMs?: number;
}

export interface NodemailerResult {
  ok: boolean;
  /** nodemailer's SentMessageInfo on success. */
  response?: string;
  accepted?: string[];
  rejected?: string[];
  /** nodemailer's error fields on failure (code e.g. EENVELOPE, EAUTH, ETLS, EMESSAGE). */
  error?: { message: string; code?: string; responseCode?: number; response?: string; command?: string };
  transcript: TranscriptLine[];
  replies: SmtpReply[];
}

interface NodemailerErrorFields {
  code?: unknown;
  responseCode?: unknown;
  response?: unknown;
  command?: unknown;
}

function addresses(list: unknown): string[] {
  if (!Array.isArray(list)) return [];
  return list.map((a: unknown) =>
    typeof a === 'string' ? a : String((a as { address?: unknown }).address ?? ''),
  );
}

/** Sends one raw message with nodemailer's SMTP transport; never throws for SMTP failures. */
export async function nodemailerSend(options: NodemailerSendOptions): Promise<NodemailerResult> {
  const transcript: TranscriptLine[] = [];
  const record =
    (level: string) =>
    (entry: unknown, message?: unknown): void => {
      if (level !== 'debug' || typeof message !== 'string') return;
      const tnx = (entry as { tnx?: unknown } | undefined)?.tnx;
      if (tnx !== 'client' && tnx !== 'server') return;
      for (const text of message.split(/\r?\n/)) transcript.push({ from: tnx, text });
    };
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const transport = nodemailer.createTransport({
    host: options.host,
    port: options.port,
    secure: options.secure,
    requireTLS: options.requireTLS,
    ignoreTLS: options.ignoreTLS,
    tls: options.tls,
    auth: options.auth === undefined ? undefined : { user: options.auth.user, pass: options.auth.pass },
    authMethod: options.auth?.method,
    name: options.name,
    connectionTimeout: timeoutMs,
    greetingTimeout: timeoutMs,
    socketTimeout: timeoutMs,
    // Logs the SMTP conversation through `logger` (tnx client/server); AUTH is masked by nodemailer.
    debug: true,
    logger: {
      trace: record('trace'),
      debug: record('debug'),
      info: record('info'),
      warn: record('warn'),
      error: record('error'),
      fatal: record('fatal'),
    },
  });
  try {
    const info = await transport.sendMail({
      envelope: { from: options.envelope.from, to: [...options.envelope.to] },
      raw: options.raw,
      dsn:
        options.dsn === undefined
          ? undefined
          : {
              ret: options.dsn.ret,
              envid: options.dsn.envid,
              notify:
                typeof options.dsn.notify === 'string' ? options.dsn.notify : options.dsn.notify?.slice(),
              orcpt: options.dsn.orcpt,
            },
    });
    return {
      ok: true,
      response: info.response,
      accepted: addresses(info.accepted),
      rejected: addresses(info.rejected),
      transcript,
      replies: repliesOf(transcript),
    };
  } catch (err) {
    const fields = (typeof err === 'object' && err !== null ? err : {}) as NodemailerErrorFields;
    return {
      ok: false,
      error: {
        message: err instanceof Error ? err.message : String(err),
        code: typeof fields.code === 'string' ? fields.code : undefined,
        responseCode: typeof fields.responseCode === 'number' ? fields.responseCode : undefined,
        response: typeof fields.response === 'string' ? fields.response : undefined,
        command: typeof fields.command === 'string' ? fields.command : undefined,
      },
      transcript,
      replies: repliesOf(transcript),
    };
  } finally {
    transport.close();
  }
}
