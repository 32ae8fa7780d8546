// The runtime config in a cluster: the operator publishes it to a JetStream Object Store bucket,
// every data-plane pod (already a NATS client) watches it. Encrypted, because it carries
// submission passwords, DKIM private keys and TLS keys; the format is in docs/runtime-config.md.
import { createCipheriv, createDecipheriv, createHash, createHmac, randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { gunzipSync, gzipSync } from 'node:zlib';
import type { JetStreamClient } from '@nats-io/jetstream';
import { type ObjectInfo, type ObjectStore, Objm } from '@nats-io/obj';
import type { NatsConnection } from '@nats-io/transport-node';
import {
  type LiveDomains,
  liveDomains,
  liveDomainsFrom,
  parseRuntimeConfig,
  type RuntimeConfig,
  type RuntimeConfigLog,
  type RuntimeConfigSource,
} from '@petrel/config';

/** The bucket the operator publishes to unless told otherwise. */
export const CONFIG_STORE_BUCKET = 'PETREL_CONFIG';
/** The object holding the runtime config. */
export const RUNTIME_CONFIG_OBJECT = 'runtime-config';

export const ConfigStoreErrorCode = {
  /** The key file cannot be read. */
  KeyUnreadable: 'PETREL_ERR_CONFIG_KEY_UNREADABLE',
  /** The key file holds neither 32 raw bytes, 64 hex characters nor the base64 of 32 bytes. */
  KeyInvalid: 'PETREL_ERR_CONFIG_KEY_INVALID',
  /** The stored config is encrypted under another key (the key ids differ). */
  KeyMismatch: 'PETREL_ERR_CONFIG_STORE_KEY_MISMATCH',
  /** The stored object is not a config in our format, or fails authentication (tampered, truncated). */
  Corrupt: 'PETREL_ERR_CONFIG_STORE_CORRUPT',
  /** The bucket cannot be created, opened, read or written. */
  Unavailable: 'PETREL_ERR_CONFIG_STORE_UNAVAILABLE',
} as const;
export type ConfigStoreErrorCode = (typeof ConfigStoreErrorCode)[keyof typeof ConfigStoreErrorCode];

export class ConfigStoreError extends Error {
  readonly code: ConfigStoreErrorCode;
  constructor(code: ConfigStoreErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'ConfigStoreError';
    this.code = code;
  }
}

/** Object metadata (not secret): what the publisher compares and what an operator may inspect. */
export const ConfigStoreMetadata = {
  /** HMAC-SHA-256 of the config JSON under the key: unchanged content is not put again. */
  contentMac: 'petrel-content-hmac-sha256',
  keyId: 'petrel-key-id',
  generation: 'petrel-generation',
  format: 'petrel-format',
} as const;

const MAGIC = Buffer.from('PTRC', 'ascii');
const FORMAT_VERSION = 1;
const KEY_ID_BYTES = 4;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
/** magic | version | key id | nonce: authenticated as additional data. */
const AAD_BYTES = MAGIC.length + 1 + KEY_ID_BYTES + NONCE_BYTES;
const HEADER_BYTES = AAD_BYTES + TAG_BYTES;
/** Refuse to inflate more than this (the content is authenticated, so it is only a guard). */
const MAX_CONFIG_BYTES = 256 * 1024 * 1024;
const KEY_BYTES = 32;

/** The key's id: the first 8 hex digits of its SHA-256 (names a key without revealing it). */
export function configKeyId(key: Buffer): string {
  return createHash('sha256')
    .update(key)
    .digest('hex')
    .slice(0, KEY_ID_BYTES * 2);
}

function checkKey(key: Buffer): void {
  if (key.length !== KEY_BYTES) {
    throw new ConfigStoreError(
      ConfigStoreErrorCode.KeyInvalid,
      `the config key must be ${KEY_BYTES} bytes, not ${key.length}`,
    );
  }
}

/**
 * Reads the config key from a file (a mounted Secret): 32 raw bytes, or 64 hex characters, or
 * the base64 of 32 bytes (surrounding whitespace ignored for the text forms).
 */
export async function loadConfigKey(path: string): Promise<Buffer> {
  let raw: Buffer;
  try {
    raw = await readFile(path);
  } catch (error) {
    throw new ConfigStoreError(
      ConfigStoreErrorCode.KeyUnreadable,
      `cannot read the config key file ${path}`,
      {
        cause: error,
      },
    );
  }
  const text = raw.toString('latin1').trim();
  if (/^[0-9a-fA-F]{64}$/.test(text)) return Buffer.from(text, 'hex');
  if (/^[A-Za-z0-9+/]{43}=?$/.test(text)) {
    const decoded = Buffer.from(text, 'base64');
    if (decoded.length === KEY_BYTES) return decoded;
  }
  // 32 bytes of hex or base64 text are a shorter key encoded (a random key is never all text).
  if (raw.length === KEY_BYTES && !/^[A-Za-z0-9+/=]+$/.test(raw.toString('latin1'))) return raw;
  // Never echo the content: it may be a key in the wrong form.
  throw new ConfigStoreError(
    ConfigStoreErrorCode.KeyInvalid,
    `the config key file ${path} holds ${raw.length} bytes: expected ${KEY_BYTES} raw bytes, ` +
      `64 hex characters or the base64 of ${KEY_BYTES} bytes (e.g. \`openssl rand -base64 32\`)`,
  );
}

/** AES-256-GCM over gzip(JSON), behind the versioned header (docs/runtime-config.md). */
export function encryptRuntimeConfig(json: string, key: Buffer): Buffer {
  checkKey(key);
  const nonce = randomBytes(NONCE_BYTES);
  const aad = Buffer.concat([MAGIC, Buffer.of(FORMAT_VERSION), Buffer.from(configKeyId(key), 'hex'), nonce]);
  const cipher = createCipheriv('aes-256-gcm', key, nonce);
  cipher.setAAD(aad);
  const ciphertext = Buffer.concat([cipher.update(gzipSync(Buffer.from(json, 'utf8'))), cipher.final()]);
  return Buffer.concat([aad, cipher.getAuthTag(), ciphertext]);
}

/** The JSON text of an encrypted config; typed errors for every way it can be unusable. */
export function decryptRuntimeConfig(data: Uint8Array, key: Buffer): string {
  checkKey(key);
  const bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  if (bytes.length < HEADER_BYTES || !bytes.subarray(0, MAGIC.length).equals(MAGIC)) {
    throw new ConfigStoreError(
      ConfigStoreErrorCode.Corrupt,
      'the stored object is not an encrypted runtime config',
    );
  }
  const version = bytes[MAGIC.length];
  if (version !== FORMAT_VERSION) {
    throw new ConfigStoreError(
      ConfigStoreErrorCode.Corrupt,
      `the stored config has encryption format ${version}; this build reads format ${FORMAT_VERSION} only`,
    );
  }
  const keyIdAt = MAGIC.length + 1;
  const storedKeyId = bytes.subarray(keyIdAt, keyIdAt + KEY_ID_BYTES).toString('hex');
  const ownKeyId = configKeyId(key);
  if (storedKeyId !== ownKeyId) {
    throw new ConfigStoreError(
      ConfigStoreErrorCode.KeyMismatch,
      `the stored config is encrypted under key ${storedKeyId}; this pod has key ${ownKeyId}`,
    );
  }
  const nonce = bytes.subarray(keyIdAt + KEY_ID_BYTES, AAD_BYTES);
  const decipher = createDecipheriv('aes-256-gcm', key, nonce);
  decipher.setAAD(bytes.subarray(0, AAD_BYTES));
  decipher.setAuthTag(bytes.subarray(AAD_BYTES, HEADER_BYTES));
  let compressed: Buffer;
  try {
    compressed = Buffer.concat([decipher.update(bytes.subarray(HEADER_BYTES)), decipher.final()]);
  } catch (error) {
    throw new ConfigStoreError(
      ConfigStoreErrorCode.Corrupt,
      'the stored config fails authentication (tampered with or truncated)',
      { cause: error },
    );
  }
  try {
    return gunzipSync(compressed, { maxOutputLength: MAX_CONFIG_BYTES }).toString('utf8');
  } catch (error) {
    throw new ConfigStoreError(ConfigStoreErrorCode.Corrupt, 'the stored config does not inflate', {
      cause: error,
    });
  }
}

/** Decrypts, inflates, parses and validates (parseRuntimeConfig: versions and schema). */
function decodeRuntimeConfig(data: Uint8Array, key: Buffer, source: string): RuntimeConfig {
  const text = decryptRuntimeConfig(data, key);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new ConfigStoreError(ConfigStoreErrorCode.Corrupt, `${source} is not JSON`, { cause: error });
  }
  return parseRuntimeConfig(json, source);
}

function contentMac(json: string, key: Buffer): string {
  // Keyed, so that the stored metadata says nothing about the (secret) content, and a new key
  // counts as a change: the config is then put again, under the new key.
  return createHmac('sha256', key).update(json).digest('hex');
}

export interface ConfigStoreOptions {
  /** The 32-byte key (loadConfigKey). */
  key: Buffer;
  /** Default CONFIG_STORE_BUCKET. */
  bucket?: string;
}

export interface PublishRuntimeConfigOptions extends ConfigStoreOptions {
  /** Of the bucket when it is created (an existing bucket is left as it is). Default 1. */
  replicas?: number;
  /** Of the bucket when it is created. Default file. */
  storage?: 'file' | 'memory';
  /** Per chunk put. */
  timeoutMs?: number;
}

export interface PublishRuntimeConfigResult {
  /** False when the stored config already had this content (under this key): nothing was put. */
  changed: boolean;
  /** The object's revision (stream sequence of its metadata) now in the bucket. */
  revision: number;
}

type Nats = NatsConnection | JetStreamClient;

function unavailable(bucket: string, what: string, error: unknown): ConfigStoreError {
  return new ConfigStoreError(ConfigStoreErrorCode.Unavailable, `config store ${bucket}: cannot ${what}`, {
    cause: error,
  });
}

/** Creates the bucket if missing; safe when several publishers do it at once. */
async function createBucket(
  nats: Nats,
  bucket: string,
  options: PublishRuntimeConfigOptions,
): Promise<ObjectStore> {
  const objm = new Objm(nats);
  try {
    return await objm.create(bucket, {
      description: 'Petrel runtime config (operator to data plane)',
      replicas: options.replicas ?? 1,
      storage: options.storage ?? 'file',
    });
  } catch (error) {
    // Lost a creation race (or the bucket exists with other settings): use it as it is.
    try {
      return await objm.open(bucket);
    } catch {
      throw unavailable(bucket, 'create the bucket', error);
    }
  }
}

/**
 * Publishes a runtime config (validated first: an invalid one is never published) as
 * AES-256-GCM(gzip(JSON)); creates the bucket if needed. Unchanged content is not put again,
 * so watchers see a new version only when something changed. The bucket keeps one version:
 * every put rolls up the object's metadata and purges the chunks of the one before.
 */
export async function publishRuntimeConfig(
  nats: Nats,
  config: RuntimeConfig,
  options: PublishRuntimeConfigOptions,
): Promise<PublishRuntimeConfigResult> {
  checkKey(options.key);
  const bucket = options.bucket ?? CONFIG_STORE_BUCKET;
  // Parsed again so that the JSON has the schema's key order: equal configs, equal bytes.
  const json = JSON.stringify(parseRuntimeConfig(config, 'the config to publish'));
  const mac = contentMac(json, options.key);
  const store = await createBucket(nats, bucket, options);
  let current: ObjectInfo | null;
  try {
    current = await store.info(RUNTIME_CONFIG_OBJECT);
  } catch (error) {
    throw unavailable(bucket, 'read the current config', error);
  }
  if (current !== null && !current.deleted && current.metadata?.[ConfigStoreMetadata.contentMac] === mac) {
    return { changed: false, revision: current.revision };
  }
  const data = encryptRuntimeConfig(json, options.key);
  try {
    const info = await store.putBlob(
      {
        name: RUNTIME_CONFIG_OBJECT,
        description: `Petrel runtime config, generation ${config.generation}`,
        metadata: {
          [ConfigStoreMetadata.contentMac]: mac,
          [ConfigStoreMetadata.keyId]: configKeyId(options.key),
          [ConfigStoreMetadata.generation]: String(config.generation),
          [ConfigStoreMetadata.format]: String(FORMAT_VERSION),
        },
      },
      data,
      options.timeoutMs === undefined ? undefined : { timeout: options.timeoutMs },
    );
    return { changed: true, revision: info.revision };
  } catch (error) {
    throw unavailable(bucket, 'put the config', error);
  }
}

/** A config read from the bucket, with the object's revision and version id. */
export interface StoredRuntimeConfig {
  config: RuntimeConfig;
  revision: number;
  /** The object version's unique id (ObjectInfo.nuid). */
  nuid: string;
}

const READ_TIMEOUT_MS = 10_000;

/**
 * Reads one object whole, giving up after `timeoutMs`: nats.js waits forever for chunks that a
 * concurrent put purged (it read the old metadata just before).
 */
async function readObject(
  store: ObjectStore,
  timeoutMs: number,
): Promise<{ info: ObjectInfo; data: Buffer } | null> {
  const result = await store.get(RUNTIME_CONFIG_OBJECT);
  if (result === null) return null;
  // Awaited below only after a whole read; a failure before that must not go unhandled.
  result.error.catch(() => undefined);
  const reader = result.data.getReader();
  const chunks: Uint8Array[] = [];
  const timer = setTimeout(() => {
    reader.cancel(new Error(`no data within ${timeoutMs} ms`)).catch(() => undefined);
  }, timeoutMs);
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
    }
  } finally {
    clearTimeout(timer);
  }
  const data = Buffer.concat(chunks);
  if (data.length !== result.info.size) throw new Error(`read ${data.length} of ${result.info.size} bytes`);
  const error = await result.error;
  if (error) throw error;
  return { info: result.info, data };
}

async function openBucket(nats: Nats, bucket: string): Promise<ObjectStore | undefined> {
  try {
    return await new Objm(nats).open(bucket);
  } catch (error) {
    if (error instanceof Error && /not found/i.test(error.message)) return undefined;
    throw unavailable(bucket, 'open the bucket', error);
  }
}

async function readFrom(
  store: ObjectStore,
  key: Buffer,
  bucket: string,
): Promise<StoredRuntimeConfig | undefined> {
  let object: { info: ObjectInfo; data: Buffer } | null;
  try {
    object = await readObject(store, READ_TIMEOUT_MS);
  } catch (error) {
    throw unavailable(bucket, 'read the config', error);
  }
  if (object === null) return undefined;
  const source = `${bucket}/${RUNTIME_CONFIG_OBJECT} revision ${object.info.revision}`;
  return {
    config: decodeRuntimeConfig(object.data, key, source),
    revision: object.info.revision,
    nuid: object.info.nuid,
  };
}

/** The published config, or undefined when there is no bucket or no config yet. */
export async function readRuntimeConfig(
  nats: Nats,
  options: ConfigStoreOptions,
): Promise<StoredRuntimeConfig | undefined> {
  checkKey(options.key);
  const bucket = options.bucket ?? CONFIG_STORE_BUCKET;
  const store = await openBucket(nats, bucket);
  return store === undefined ? undefined : await readFrom(store, options.key, bucket);
}

export interface WatchRuntimeConfigStoreOptions extends ConfigStoreOptions {
  /** How often to look for the bucket while it does not exist yet. Default 1 s. */
  pollMs?: number;
  /** Called once when there is no config yet (no bucket, or no object in it). */
  onWaiting?: () => void;
}

/**
 * Delivers the published config, then every new version of it, decrypted and validated. A
 * version that cannot be used (another key, tampered, invalid) goes to `onError` and nothing
 * else happens: the previous config stays in force. Pods do not create the bucket (its replicas
 * and storage are the operator's to choose); until it exists they look for it every `pollMs`.
 */
export function watchRuntimeConfigStore(
  nc: NatsConnection,
  options: WatchRuntimeConfigStoreOptions,
  onChange: (config: RuntimeConfig, stored: StoredRuntimeConfig) => void,
  onError: (error: unknown) => void,
): { close(): void } {
  checkKey(options.key);
  const bucket = options.bucket ?? CONFIG_STORE_BUCKET;
  const pollMs = options.pollMs ?? 1_000;
  let closed = false;
  let waited = false;
  let wake: (() => void) | undefined;
  let stopWatch: (() => void) | undefined;
  /** The version last applied or refused: each is handled once. */
  let seen: string | undefined;

  const waiting = (): void => {
    if (waited || seen !== undefined) return;
    waited = true;
    options.onWaiting?.();
  };
  const pause = (): Promise<void> =>
    new Promise((resolve) => {
      const timer = setTimeout(resolve, pollMs);
      wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  const load = async (store: ObjectStore): Promise<void> => {
    const attempted = await store.info(RUNTIME_CONFIG_OBJECT).catch(() => null);
    let stored: StoredRuntimeConfig | undefined;
    try {
      stored = await readFrom(store, options.key, bucket);
    } catch (error) {
      // Replaced while being read: the new version's own watch event follows.
      const now = await store.info(RUNTIME_CONFIG_OBJECT).catch(() => null);
      if (attempted !== null && now !== null && now.nuid !== attempted.nuid) return;
      if (now !== null) seen = now.nuid;
      if (!closed) onError(error);
      return;
    }
    if (stored === undefined) {
      waiting();
      return;
    }
    if (stored.nuid === seen) return;
    seen = stored.nuid;
    if (!closed) onChange(stored.config, stored);
  };

  const run = async (): Promise<void> => {
    while (!closed && !nc.isClosed()) {
      let store: ObjectStore | undefined;
      try {
        store = await openBucket(nc, bucket);
      } catch (error) {
        if (!closed) onError(error);
      }
      if (store === undefined) {
        waiting();
        await pause();
        continue;
      }
      try {
        const updates = await store.watch({ includeHistory: true });
        stopWatch = () => updates.stop();
        if (closed) updates.stop();
        // Nothing there yet: the history is empty, and the first put arrives as an update.
        if (!closed && (await store.info(RUNTIME_CONFIG_OBJECT).catch(() => null)) === null) waiting();
        for await (const info of updates) {
          if (closed) break;
          if (info.name !== RUNTIME_CONFIG_OBJECT || info.deleted || info.nuid === seen) continue;
          await load(store);
        }
      } catch (error) {
        if (!closed) onError(unavailable(bucket, 'watch the bucket', error));
      }
      // The watch ended without close() (the bucket was deleted, the consumer lost): start over.
      if (!closed) await pause();
    }
  };
  void run();
  return {
    close() {
      closed = true;
      wake?.();
      stopWatch?.();
    },
  };
}

/**
 * LiveDomains from the operator's Object Store: waits for the first config (saying once that it
 * waits), then follows every new version; an unusable version keeps the previous config.
 */
export function liveDomainsFromStore(
  nc: NatsConnection,
  options: WatchRuntimeConfigStoreOptions,
  log: RuntimeConfigLog,
): Promise<LiveDomains> {
  const bucket = options.bucket ?? CONFIG_STORE_BUCKET;
  return liveDomainsFrom(
    ({ onChange, onError, onWaiting }) =>
      watchRuntimeConfigStore(
        nc,
        {
          ...options,
          onWaiting: () => {
            onWaiting();
            options.onWaiting?.();
          },
        },
        (config) => onChange(config),
        onError,
      ),
    log,
    `object store ${bucket}/${RUNTIME_CONFIG_OBJECT}`,
  );
}

/**
 * LiveDomains from the source a service's settings name: the file (local mode) or the
 * operator's Object Store (in a cluster; the key read from its file first).
 */
export async function liveDomainsFromSource(
  source: RuntimeConfigSource,
  nc: NatsConnection,
  log: RuntimeConfigLog,
): Promise<LiveDomains> {
  if (source.kind === 'file') return await liveDomains(source.path, log);
  const key = await loadConfigKey(source.keyFile);
  return await liveDomainsFromStore(nc, { key, bucket: source.bucket }, log);
}
