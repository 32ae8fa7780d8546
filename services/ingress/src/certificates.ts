import { createPrivateKey, X509Certificate } from 'node:crypto';
import { type FSWatcher, watch } from 'node:fs';
import { chmod, mkdir, readdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import tls from 'node:tls';
import type { RuntimeConfig } from '@petrel/config';
import { createSelfSigned } from './self-signed.ts';

export const CertificateErrorCode = {
  /** No usable certificate in the directory (and no self-signed one allowed). */
  NoCertificate: 'PETREL_ERR_TLS_NO_CERTIFICATE',
  /** The certificate directory cannot be listed (permissions, not a directory). */
  DirectoryUnreadable: 'PETREL_ERR_TLS_DIRECTORY_UNREADABLE',
  /** A tls.crt/tls.key pair is incomplete or does not parse; it is skipped. */
  InvalidPair: 'PETREL_ERR_TLS_INVALID_PAIR',
  /** tls.key is not the private key of tls.crt; the pair is skipped. */
  KeyMismatch: 'PETREL_ERR_TLS_KEY_MISMATCH',
  /** Local mode could not generate or write its self-signed certificate. */
  SelfSignedFailed: 'PETREL_ERR_TLS_SELF_SIGNED_FAILED',
  /** A domain's host name is not a name its runtime-config certificate is valid for; not served. */
  NameNotCovered: 'PETREL_ERR_TLS_NAME_NOT_COVERED',
} as const;
export type CertificateErrorCode = (typeof CertificateErrorCode)[keyof typeof CertificateErrorCode];

export class CertificateError extends Error {
  readonly code: CertificateErrorCode;
  constructor(code: CertificateErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'CertificateError';
    this.code = code;
  }
}

/**
 * The TLS policy of every listener. It is baked into each SecureContext because a TLSSocket
 * given a secureContext (STARTTLS) ignores version options passed beside it.
 * Ciphers are Node's defaults (tls.DEFAULT_CIPHERS): TLS 1.3 suites and ECDHE/DHE with AEAD
 * first, and aNULL, eNULL, EXPORT, DES, RC4, MD5, PSK, SRP and CAMELLIA excluded (RFC 9325 §4.1);
 * they follow Node/OpenSSL updates instead of a list we would have to keep current.
 */
export const TlsPolicy = {
  /** RFC 8996: TLS 1.0 and 1.1 are deprecated; RFC 8314 §4.1 asks for TLS 1.2 or later. */
  minVersion: 'TLSv1.2',
  /** RFC 9325 §4.2: the server picks from its own (strongest-first) order. */
  honorCipherOrder: true,
} as const satisfies tls.SecureContextOptions;

export const CertificateStoreDefaults = {
  /** Changes arrive as bursts of events (a Kubernetes ..data swap is several); one reload per burst. */
  reloadDelayMs: 100,
  /** Subdirectory of the certificate directory that holds the local-mode certificate. */
  selfSignedDir: 'self-signed',
} as const;

const CertFile = 'tls.crt';
const KeyFile = 'tls.key';

export interface CertificateLog {
  info(o: object, m: string): void;
  warn(o: object, m: string): void;
  error(o: object, m: string): void;
}

export interface CertificateStoreOptions {
  /** Kubernetes TLS-Secret style: <dir>/<any-name>/tls.crt (leaf first, chain allowed) + tls.key. */
  dir: string;
  /** The certificate that names this host serves clients without SNI or with an unknown name. */
  hostname: string;
  /** Local mode: generate a self-signed certificate when the directory has no usable one. */
  selfSigned: boolean;
  /** Further names for the self-signed certificate. */
  names?: readonly string[];
  log: CertificateLog;
  /** Watch the directory and reload on changes (default true). */
  watch?: boolean;
  reloadDelayMs?: number;
  /** The domains' certificates from the runtime config at start (then setConfigCertificates). */
  configCertificates?: readonly ConfigCertificate[];
}

/** A MailDomain's certificate from the runtime config, served by SNI for its host names. */
export interface ConfigCertificate {
  /** The MailDomain's namespace/name (logs). */
  readonly source: string;
  /** The SNI names to serve it for: those of them the certificate is valid for. */
  readonly hostnames: readonly string[];
  /** Leaf first, then the chain. */
  readonly certificatePem: string;
  readonly privateKeyPem: string;
}

/**
 * The certificates a runtime config carries. Draining domains' too: mail to them is refused in
 * SMTP with a clear reply, which a failing TLS handshake would not give.
 */
export function configCertificates(config: RuntimeConfig): ConfigCertificate[] {
  return config.domains.flatMap((domain) =>
    domain.tls === undefined
      ? []
      : [
          {
            source: domain.source,
            hostnames: domain.hostnames,
            certificatePem: domain.tls.certificatePem,
            privateKeyPem: domain.tls.privateKeyPem,
          },
        ],
  );
}

/** A certificate and key that passed the checks, with their context. */
interface ParsedPair {
  /** The DNS names the certificate is valid for. */
  readonly certificateNames: readonly string[];
  readonly cert: string;
  readonly key: string;
  readonly context: tls.SecureContext;
  readonly notAfter: Date;
  readonly fingerprint256: string;
}

/** One usable certificate, named after its subdirectory (or `maildomain:<source>`). */
interface Entry extends ParsedPair {
  readonly source: string;
  /** The names it is served for (a directory's: all it is valid for). */
  readonly names: readonly string[];
}

/** Lower case without the trailing root dot, as names are compared (RFC 4343, RFC 6125 §6.4.1). */
function normalizeName(name: string): string {
  const lower = name.toLowerCase();
  return lower.endsWith('.') ? lower.slice(0, -1) : lower;
}

const Label = '[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?';
/** A host name, or a wildcard as the whole left-most label over at least two labels (RFC 6125 §6.4.3). */
const NamePattern = new RegExp(`^(?:${Label}(?:\\.${Label})*|\\*(?:\\.${Label}){2,})$`);

/** DNS subjectAltNames; the subject CN only when there are none (RFC 6125 §6.4.4). */
export function certificateNames(certificate: X509Certificate): string[] {
  const san = (certificate.subjectAltName ?? '')
    .split(', ')
    .filter((item) => item.startsWith('DNS:'))
    .map((item) => normalizeName(item.slice(4)));
  const names =
    san.length > 0
      ? san
      : certificate.subject
          .split('\n')
          .filter((line) => line.startsWith('CN='))
          .map((line) => normalizeName(line.slice(3)));
  return [...new Set(names.filter((name) => NamePattern.test(name)))];
}

/** An immutable snapshot; a reload builds a new one and swaps it in. */
class CertificateIndex {
  readonly entries: readonly Entry[];
  readonly default: Entry;
  readonly names: readonly string[];
  readonly #exact = new Map<string, Entry>();
  readonly #wildcard = new Map<string, Entry>();

  /** `entries` is non-empty and in order of precedence: on a duplicate name the first entry wins. */
  constructor(entries: readonly [Entry, ...Entry[]], hostname: string) {
    this.entries = entries;
    for (const entry of entries) {
      for (const name of entry.names) {
        const [map, key] = name.startsWith('*.') ? [this.#wildcard, name.slice(2)] : [this.#exact, name];
        if (!map.has(key)) map.set(key, entry);
      }
    }
    this.default = this.match(hostname) ?? entries[0];
    this.names = [...new Set(entries.flatMap((entry) => entry.names))].sort();
  }

  /**
   * Precedence for one name: the directory (mounted by whoever deploys the ingress), then the
   * runtime config's domain certificates, then the local-mode self-signed stand-in. The
   * directory wins because a MailDomain is a tenant's object: its certificate must not replace
   * the relay's own for a name both claim (the relay's host name, say).
   */
  static build(
    directory: readonly Entry[],
    config: readonly Entry[],
    hostname: string,
  ): CertificateIndex | undefined {
    const selfSigned = (e: Entry) => e.source === CertificateStoreDefaults.selfSignedDir;
    const [first, ...rest] = [
      ...directory.filter((e) => !selfSigned(e)),
      ...config,
      ...directory.filter(selfSigned),
    ];
    return first === undefined ? undefined : new CertificateIndex([first, ...rest], hostname);
  }

  match(servername: string): Entry | undefined {
    const name = normalizeName(servername);
    const exact = this.#exact.get(name);
    if (exact !== undefined) return exact;
    const dot = name.indexOf('.');
    return dot > 0 ? this.#wildcard.get(name.slice(dot + 1)) : undefined;
  }
}

/**
 * Serves certificates by SNI from a directory, following changes to it without a restart, and
 * the domains' certificates from the runtime config (setConfigCertificates on every reload).
 */
export class CertificateStore {
  readonly #options: CertificateStoreOptions;
  readonly #watcher: DirectoryWatcher | undefined;
  readonly #listeners = new Set<() => void>();
  #directory: readonly Entry[];
  #config: readonly Entry[];
  #index: CertificateIndex;
  #queue: Promise<void> = Promise.resolve();
  #timer: NodeJS.Timeout | undefined;
  #closed = false;

  private constructor(
    options: CertificateStoreOptions,
    directory: readonly Entry[],
    config: readonly Entry[],
    index: CertificateIndex,
    watcher?: DirectoryWatcher,
  ) {
    this.#options = options;
    this.#directory = directory;
    this.#config = config;
    this.#index = index;
    this.#watcher = watcher;
  }

  /**
   * Loads the directory (generating a self-signed certificate if allowed and needed) and the
   * runtime config's certificates. With runtime-config certificates the directory may be absent.
   */
  static async open(options: CertificateStoreOptions): Promise<CertificateStore> {
    let store: CertificateStore | undefined;
    let changedWhileOpening = false;
    // Watching starts before the first read so that no change is missed.
    const onChange = (): void => {
      if (store === undefined) changedWhileOpening = true;
      else store.#scheduleReload();
    };
    const watcher = (options.watch ?? true) ? new DirectoryWatcher(onChange, options.log) : undefined;
    try {
      const config = loadConfigEntries(options, options.configCertificates ?? [], []);
      let directory: Entry[];
      try {
        directory = await loadDirectory(options, [], watcher);
      } catch (error) {
        const missing =
          error instanceof CertificateError && error.code === CertificateErrorCode.NoCertificate;
        if (!missing || config.length === 0) throw error;
        options.log.info({ dir: options.dir }, 'no TLS certificate directory; serving the runtime config’s');
        directory = [];
      }
      const index = CertificateIndex.build(directory, config, options.hostname);
      if (index === undefined) {
        throw new CertificateError(
          CertificateErrorCode.NoCertificate,
          `no usable TLS certificate in ${options.dir}: expected <name>/${CertFile} and <name>/${KeyFile} ` +
            'subdirectories (see the log for skipped pairs), or domain certificates in the runtime config',
        );
      }
      store = new CertificateStore(options, directory, config, index, watcher);
      logLoaded(options, index);
      if (changedWhileOpening) store.#scheduleReload();
      return store;
    } catch (error) {
      watcher?.close();
      throw error;
    }
  }

  /** Every name served (exact and wildcard), sorted. */
  get names(): readonly string[] {
    return this.#index.names;
  }

  /**
   * Options for tls.createServer or `new tls.TLSSocket(socket, { isServer: true, ...options })`.
   * A TLSSocket uses `secureContext`; a tls.Server builds its context for clients without SNI
   * from `key`/`cert`, so pass the server to attach() to keep that current across reloads.
   */
  tlsOptions(): tls.TlsOptions {
    const entry = this.#index.default;
    return {
      ...TlsPolicy,
      key: entry.key,
      cert: entry.cert,
      secureContext: entry.context,
      SNICallback: (servername, callback) => callback(null, this.contextFor(servername)),
    };
  }

  /** The context for a requested server name: exact name, then wildcard, then the default. */
  contextFor(servername: string | undefined): tls.SecureContext {
    const index = this.#index;
    return ((servername ? index.match(servername) : undefined) ?? index.default).context;
  }

  /** Calls `listener` after every reload that swapped in new certificates; returns the unsubscribe. */
  onReload(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Keeps a tls.Server's certificate for clients without SNI current; returns the detach. */
  attach(server: tls.Server): () => void {
    return this.onReload(() => server.setSecureContext(this.tlsOptions()));
  }

  /**
   * Re-reads the directory. A pair that no longer loads keeps its previous certificate, and a
   * directory with nothing usable keeps all previous certificates; both are logged, never thrown.
   */
  reload(): Promise<void> {
    const next = this.#queue.then(() => this.#reloadNow());
    // #reloadNow logs its failures; the chain must survive a bug there all the same.
    this.#queue = next.catch(() => {});
    return next;
  }

  /**
   * Replaces the runtime config's certificates (call it on every runtime-config reload). As with
   * the directory, a certificate that no longer loads keeps its previous one; problems are logged.
   * Nothing is swapped (nor logged) when the set served did not change.
   */
  setConfigCertificates(certificates: readonly ConfigCertificate[]): void {
    if (this.#closed) return;
    const config = loadConfigEntries(this.#options, certificates, this.#config);
    const key = (entries: readonly Entry[]) =>
      JSON.stringify(entries.map((e) => [e.source, e.names, e.fingerprint256, e.key]));
    if (key(config) === key(this.#config)) return;
    this.#swap(this.#directory, config);
  }

  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#watcher?.close();
    this.#listeners.clear();
  }

  #scheduleReload(): void {
    if (this.#closed) return;
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      this.reload().catch((error: unknown) =>
        this.#options.log.error(errorFields(error, {}), 'TLS reload failed'),
      );
    }, this.#options.reloadDelayMs ?? CertificateStoreDefaults.reloadDelayMs);
    this.#timer.unref();
  }

  async #reloadNow(): Promise<void> {
    if (this.#closed) return;
    const { dir, log } = this.#options;
    let directory: Entry[];
    try {
      directory = await loadDirectory(this.#options, this.#directory, this.#watcher);
    } catch (error) {
      log.error(
        errorFields(error, { dir }),
        'TLS certificate reload failed; keeping the previous certificates',
      );
      return;
    }
    if (this.#closed) return;
    if (directory.length === 0 && this.#directory.length > 0) {
      log.error(
        { code: CertificateErrorCode.NoCertificate, dir },
        'no usable TLS certificate after reload; keeping the previous certificates',
      );
      return;
    }
    this.#swap(directory, this.#config);
  }

  /** Builds the index from both sources (the newest of each) and tells the listeners. */
  #swap(directory: readonly Entry[], config: readonly Entry[]): void {
    const { dir, log } = this.#options;
    const index = CertificateIndex.build(directory, config, this.#options.hostname);
    if (index === undefined) {
      log.error(
        { code: CertificateErrorCode.NoCertificate, dir },
        'no usable TLS certificate left; keeping the previous certificates',
      );
      return;
    }
    this.#directory = directory;
    this.#config = config;
    this.#index = index;
    logLoaded(this.#options, index);
    for (const listener of this.#listeners) {
      try {
        listener();
      } catch (error) {
        log.error(errorFields(error, { dir }), 'TLS reload listener failed');
      }
    }
  }
}

function logLoaded(options: CertificateStoreOptions, index: CertificateIndex): void {
  options.log.info(
    {
      dir: options.dir,
      default: index.default.source,
      certificates: index.entries.map((e) => ({ source: e.source, names: e.names, notAfter: e.notAfter })),
    },
    'TLS certificates loaded',
  );
}

function errorFields(error: unknown, fields: object): object {
  return error instanceof CertificateError
    ? { ...fields, code: error.code, err: error.message, cause: (error.cause as Error | undefined)?.message }
    : { ...fields, err: error instanceof Error ? error.message : String(error) };
}

/**
 * Reads every pair; empty when nothing is usable. A pair that fails to load keeps its entry in
 * `previous` (a half-written or broken replacement never removes a working certificate); a pair
 * whose files are gone is dropped.
 */
async function loadDirectory(
  options: CertificateStoreOptions,
  previous: readonly Entry[],
  watcher: DirectoryWatcher | undefined,
): Promise<Entry[]> {
  const { dir, log } = options;
  if (options.selfSigned) await mkdir(dir, { recursive: true });
  let sources = await listSources(dir);
  watcher?.sync([dir, ...sources.map((source) => join(dir, source))]);
  const entries: Entry[] = [];
  for (const source of sources) {
    const entry = await loadWithFallback(options, source, previous);
    if (entry !== undefined) entries.push(entry);
  }
  if (options.selfSigned && needsSelfSigned(entries)) {
    const source = CertificateStoreDefaults.selfSignedDir;
    await writeSelfSigned(options);
    sources = [...new Set([...sources, source])].sort();
    watcher?.sync([dir, ...sources.map((s) => join(dir, s))]);
    const entry = await loadPair(dir, source);
    if (entry === undefined) {
      throw new CertificateError(CertificateErrorCode.SelfSignedFailed, `${join(dir, source)} vanished`);
    }
    const others = entries.filter((e) => e.source !== source);
    entries.splice(0, entries.length, ...[...others, entry].sort((a, b) => compare(a.source, b.source)));
    log.info(
      { dir, source, names: entry.names, notAfter: entry.notAfter },
      'generated a self-signed certificate',
    );
  }
  warnExpired(options, entries);
  return entries;
}

function warnExpired(options: CertificateStoreOptions, entries: readonly Entry[]): void {
  const now = Date.now();
  for (const entry of entries) {
    if (entry.notAfter.getTime() <= now) {
      options.log.warn(
        { dir: options.dir, source: entry.source, notAfter: entry.notAfter },
        'TLS certificate has expired',
      );
    }
  }
}

/** Is `name` one the certificate's names cover (exactly, or by a wildcard over one label)? */
function covers(certificateNames: readonly string[], name: string): boolean {
  if (certificateNames.includes(name)) return true;
  const dot = name.indexOf('.');
  return !name.startsWith('*.') && dot > 0 && certificateNames.includes(`*${name.slice(dot)}`);
}

/**
 * The runtime config's certificates, each served for the domain's host names it is valid for
 * (never for other names it may carry: a domain speaks for its own host names only). One that
 * fails to load keeps its entry in `previous`, as a directory pair does; an unchanged one
 * reuses its entry (no new SecureContext per runtime-config reload).
 */
function loadConfigEntries(
  options: CertificateStoreOptions,
  certificates: readonly ConfigCertificate[],
  previous: readonly Entry[],
): Entry[] {
  const { log } = options;
  const entries: Entry[] = [];
  for (const certificate of [...certificates].sort((a, b) => compare(a.source, b.source))) {
    const source = `maildomain:${certificate.source}`;
    const before = previous.find((e) => e.source === source);
    let parsed: ParsedPair;
    try {
      parsed =
        before !== undefined &&
        before.cert === certificate.certificatePem &&
        before.key === certificate.privateKeyPem
          ? before
          : parsePair(certificate.certificatePem, certificate.privateKeyPem, {
              pair: `the certificate and key of ${source}`,
              cert: `the certificate of ${source}`,
              key: `the private key of ${source}`,
            });
    } catch (error) {
      log.warn(
        errorFields(error, { source }),
        before === undefined
          ? 'skipped TLS certificate'
          : 'skipped TLS certificate; keeping the previous one',
      );
      if (before !== undefined) entries.push(before);
      continue;
    }
    const names: string[] = [];
    for (const hostname of new Set(certificate.hostnames.map(normalizeName))) {
      if (NamePattern.test(hostname) && covers(parsed.certificateNames, hostname)) names.push(hostname);
      else {
        log.warn(
          {
            code: CertificateErrorCode.NameNotCovered,
            source,
            hostname,
            certificateNames: parsed.certificateNames,
          },
          'host name not served: the domain’s certificate is not valid for it',
        );
      }
    }
    if (names.length === 0) continue;
    entries.push({ ...parsed, source, names });
  }
  warnExpired(options, entries);
  return entries;
}

async function loadWithFallback(
  options: CertificateStoreOptions,
  source: string,
  previous: readonly Entry[],
): Promise<Entry | undefined> {
  const { dir, log } = options;
  try {
    return await loadPair(dir, source);
  } catch (error) {
    const kept = previous.find((e) => e.source === source);
    log.warn(
      errorFields(error, { dir, source }),
      kept === undefined ? 'skipped TLS certificate' : 'skipped TLS certificate; keeping the previous one',
    );
    return kept;
  }
}

/** The self-signed certificate is (re)generated when nothing else is usable or it has expired. */
function needsSelfSigned(entries: readonly Entry[]): boolean {
  if (entries.length === 0) return true;
  const own = entries.find((e) => e.source === CertificateStoreDefaults.selfSignedDir);
  return own !== undefined && own.notAfter.getTime() <= Date.now();
}

async function writeSelfSigned(options: CertificateStoreOptions): Promise<void> {
  const target = join(options.dir, CertificateStoreDefaults.selfSignedDir);
  try {
    const pair = await createSelfSigned({ hostname: options.hostname, names: options.names ?? [] });
    await mkdir(target, { recursive: true, mode: 0o700 });
    // Key first, each file replaced by rename: a reader in between sees the new key with the old
    // certificate, which fails the key check and keeps the previous pair until the certificate follows.
    await writeFileAtomically(join(target, KeyFile), pair.key, 0o600);
    await writeFileAtomically(join(target, CertFile), pair.cert, 0o644);
  } catch (error) {
    throw new CertificateError(
      CertificateErrorCode.SelfSignedFailed,
      `cannot write a self-signed certificate to ${target}`,
      { cause: error },
    );
  }
}

async function writeFileAtomically(path: string, data: string, mode: number): Promise<void> {
  const temporary = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  await writeFile(temporary, data, { mode });
  await chmod(temporary, mode); // the umask may have narrowed the creation mode; make it exact
  await rename(temporary, path);
}

/** Subdirectory names in byte order; dot-names are Kubernetes' ..data/..timestamp internals. */
async function listSources(dir: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (error) {
    const missing = (error as NodeJS.ErrnoException).code === 'ENOENT';
    throw new CertificateError(
      missing ? CertificateErrorCode.NoCertificate : CertificateErrorCode.DirectoryUnreadable,
      missing
        ? `TLS certificate directory ${dir} does not exist`
        : `cannot list TLS certificate directory ${dir}`,
      { cause: error },
    );
  }
  const sources: string[] = [];
  for (const name of names.filter((n) => !n.startsWith('.')).sort(compare)) {
    // stat follows symlinks: in a projected volume each <name> links into ..data.
    const isDirectory = await stat(join(dir, name)).then(
      (s) => s.isDirectory(),
      () => false,
    );
    if (isDirectory) sources.push(name);
  }
  return sources;
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Loads <dir>/<source>; undefined when the subdirectory holds neither file. */
async function loadPair(dir: string, source: string): Promise<Entry | undefined> {
  const [cert, key] = await Promise.all([
    readOptional(join(dir, source, CertFile)),
    readOptional(join(dir, source, KeyFile)),
  ]);
  if (cert === undefined && key === undefined) return undefined;
  if (cert === undefined || key === undefined) {
    throw new CertificateError(
      CertificateErrorCode.InvalidPair,
      `${join(dir, source)} has ${cert === undefined ? KeyFile : CertFile} without ${cert === undefined ? CertFile : KeyFile}`,
    );
  }
  const parsed = parsePair(cert, key, {
    pair: join(dir, source),
    cert: join(dir, source, CertFile),
    key: join(dir, source, KeyFile),
  });
  return { ...parsed, source, names: parsed.certificateNames };
}

/** Checks a certificate (chain) and its key and makes their context; `where` names them in errors. */
function parsePair(
  cert: string,
  key: string,
  where: { pair: string; cert: string; key: string },
): ParsedPair {
  let certificate: X509Certificate;
  try {
    // The first certificate is the leaf; the rest of the chain goes to the context as is.
    certificate = new X509Certificate(cert);
  } catch (error) {
    throw new CertificateError(CertificateErrorCode.InvalidPair, `${where.cert} is not a PEM certificate`, {
      cause: error,
    });
  }
  let matches: boolean;
  try {
    matches = certificate.checkPrivateKey(createPrivateKey(key));
  } catch (error) {
    throw new CertificateError(
      CertificateErrorCode.InvalidPair,
      `${where.key} is not an unencrypted PEM private key`,
      { cause: error },
    );
  }
  if (!matches) {
    throw new CertificateError(
      CertificateErrorCode.KeyMismatch,
      `${where.key} is not the key of ${where.cert}`,
    );
  }
  const names = certificateNames(certificate);
  if (names.length === 0) {
    throw new CertificateError(
      CertificateErrorCode.InvalidPair,
      `${where.cert} names no DNS host (subjectAltName or CN)`,
    );
  }
  let context: tls.SecureContext;
  try {
    context = tls.createSecureContext({ ...TlsPolicy, cert, key });
  } catch (error) {
    throw new CertificateError(CertificateErrorCode.InvalidPair, `${where.pair} is refused by TLS`, {
      cause: error,
    });
  }
  return {
    certificateNames: names,
    cert,
    key,
    context,
    notAfter: certificate.validToDate,
    fingerprint256: certificate.fingerprint256,
  };
}

async function readOptional(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw new CertificateError(CertificateErrorCode.InvalidPair, `cannot read ${path}`, { cause: error });
  }
}

/**
 * Watches the directory and each subdirectory (not recursively: Kubernetes swaps a ..data
 * symlink in whichever of them is the volume mount, and a file replaced by rename shows up in
 * its own directory). Watches are renewed on every load, since a watched symlink target may
 * have been swapped out.
 */
class DirectoryWatcher {
  readonly #onChange: () => void;
  readonly #log: CertificateLog;
  readonly #watchers: FSWatcher[] = [];
  #closed = false;

  constructor(onChange: () => void, log: CertificateLog) {
    this.#onChange = onChange;
    this.#log = log;
  }

  sync(paths: readonly string[]): void {
    this.#closeWatchers();
    // A reload still running when the store closes must not start new watches.
    if (this.#closed) return;
    for (const path of paths) {
      try {
        const watcher = watch(path, { persistent: false }, () => this.#onChange());
        watcher.on('error', (error) => {
          // A watched directory that disappears ends its watch; the reload renews the set.
          this.#log.warn({ path, err: error.message }, 'TLS directory watch ended');
          watcher.close();
          this.#onChange();
        });
        this.#watchers.push(watcher);
      } catch (error) {
        this.#log.warn(
          { path, err: error instanceof Error ? error.message : String(error) },
          'cannot watch TLS directory; changes there need reload()',
        );
      }
    }
  }

  close(): void {
    this.#closed = true;
    this.#closeWatchers();
  }

  #closeWatchers(): void {
    for (const watcher of this.#watchers.splice(0)) watcher.close();
  }
}
