import { randomUUID } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import type { JetStreamClient } from '@nats-io/jetstream';
import { Objm } from '@nats-io/obj';
import { headers, type NatsConnection } from '@nats-io/transport-node';
import { create, type Envelope, ObjectRefSchema } from '@petrel/proto';
import type { AckPublisher } from './ack-publisher.ts';
import { encodeEnvelope } from './codec.ts';
import { envelopeSchemaMatches } from './fingerprint.ts';
import {
  beginMessage,
  endMessage,
  hasUnknown,
  putBigInt,
  putInt,
  putString,
  putTimestamp,
  startWriting,
  written,
} from './proto-writer.ts';
import { publishEntry } from './publisher.ts';
import { BUCKET_BODIES } from './streams.ts';
import { entryDedupeId, outboundSubject, QueueHeader } from './subjects.ts';

export const QueueErrorCode = {
  /** Publishing a message's entries failed or timed out; none of them is queued (or all were before). */
  Publish: 'PETREL_ERR_QUEUE_PUBLISH',
  /** A queued entry's body is missing from the object store or does not match its digest. */
  Body: 'PETREL_ERR_QUEUE_BODY',
} as const;
export type QueueErrorCode = (typeof QueueErrorCode)[keyof typeof QueueErrorCode];

export class QueueError extends Error {
  readonly code: QueueErrorCode;
  constructor(code: QueueErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'QueueError';
    this.code = code;
  }
}

export interface PublishMessageInput {
  /** Shared acknowledged publisher (the ingress's): no per-request overhead of nats.js requests. */
  publisher?: AckPublisher;
  messageId: string;
  /** One entry per destination domain, `content` unset (filled in here). */
  envelopes: readonly Envelope[];
  body: Buffer;
  timeoutMs: number;
}

/** nats-server's default max_payload, used when the server did not announce one. */
const DEFAULT_MAX_PAYLOAD = 1024 * 1024;
/** Room for the entry's headers and protocol framing next to the encoded envelope. */
const PAYLOAD_MARGIN = 8 * 1024;

/**
 * JetStream API error codes of atomic batch publishes (nats-server 2.12, server/errors.json).
 * Duplicate: a Nats-Msg-Id in the batch was already stored within the duplicate window.
 * Incomplete: the batch was dropped before its commit, which is also the answer when the stream
 * already has its maximum of batches in flight (50 by default), and TooManyInflight is that same
 * limit's own code on newer servers. After either nothing is stored and trying again is safe.
 */
const BatchErrorCode = {
  Incomplete: 10176,
  Duplicate: 10201,
  TooManyInflight: 10210,
} as const;
const RETRYABLE: ReadonlySet<number> = new Set([BatchErrorCode.Incomplete, BatchErrorCode.TooManyInflight]);
/** Pause before the next attempt after a retryable refusal (doubling up to the cap), within the timeout. */
const RETRY_FIRST_MS = 10;
const RETRY_MAX_MS = 200;

/**
 * Queues one accepted message: one entry per destination domain, all stored or none.
 *
 * The body goes inline (`raw`) when every entry fits the server's max_payload; otherwise it is
 * stored once in the object store bucket PETREL_BODIES under the message id and each entry
 * carries an ObjectRef. The object is not removed when publishing fails: after a timeout the
 * entries may have been stored after all, and the bucket's max age removes orphans.
 *
 * Several entries are published as one atomic batch (nats-server 2.12 ADR-50, stream
 * allow_atomic): the server stores all of them or none. Every entry carries its Nats-Msg-Id, so a
 * retried publish of the same message within the duplicate window is refused by the server as a
 * duplicate batch, which means it was queued before: that counts as success. Batches hold at
 * most 1000 messages (server limit), far above the recipient-domain count of one message.
 */
export async function publishMessage(
  js: JetStreamClient,
  nc: NatsConnection,
  input: PublishMessageInput,
): Promise<void> {
  const { messageId, envelopes, body, timeoutMs } = input;
  if (envelopes.length === 0) throw new TypeError(`message ${messageId} has no entries`);
  const maxPayload = nc.info?.max_payload ?? DEFAULT_MAX_PAYLOAD;
  // Each entry is encoded once without its content: the size decision needs it, and an inline
  // body is then appended as field 16 (protobuf fields may come in any order), so the body is
  // copied once rather than re-encoded.
  const heads = envelopes.map(encodeEnvelopeHead);
  const overhead = Math.max(...heads.map((h) => h.length));
  const inline = body.length + overhead + PAYLOAD_MARGIN <= maxPayload;
  try {
    if (inline && envelopes.length === 1) {
      const entry = envelopes[0] as Envelope;
      const payload = Buffer.concat([heads[0] as Uint8Array, rawField(body.length), body]);
      if (input.publisher === undefined) {
        await publishEntry(js, entry, { timeoutMs, payload });
        return;
      }
      const h = entryHeaders(entry);
      h.append('Nats-Msg-Id', entryDedupeId(entry.messageId, entry.destinationDomain));
      const ack = await input.publisher.publish(
        outboundSubject(entry.destinationDomain),
        payload,
        h,
        timeoutMs,
      );
      if (ack?.error) {
        throw new QueueError(
          QueueErrorCode.Publish,
          `publish refused: ${ack.error.description} (${ack.error.err_code})`,
        );
      }
      if (ack?.seq === undefined) throw new QueueError(QueueErrorCode.Publish, 'publish not acknowledged');
      return;
    }
  } catch (error) {
    if (error instanceof QueueError) throw error;
    throw new QueueError(QueueErrorCode.Publish, `queueing message ${messageId} failed`, { cause: error });
  }
  let entries: Envelope[];
  if (inline) {
    entries = envelopes.map((e) => ({ ...e, content: { case: 'raw', value: body } }));
  } else {
    const ref = await storeBody(js, messageId, body, timeoutMs);
    entries = envelopes.map((e) => ({ ...e, content: { case: 'object', value: ref } }));
  }
  try {
    if (entries.length === 1) {
      await publishEntry(js, entries[0] as Envelope, { timeoutMs });
      return;
    }
    await publishBatch(nc, entries, timeoutMs);
  } catch (error) {
    if (error instanceof QueueError) throw error;
    throw new QueueError(QueueErrorCode.Publish, `queueing message ${messageId} failed`, { cause: error });
  }
}

/** Protobuf key and length of Envelope.raw (field 16, wire type 2). */
function rawField(length: number): Buffer {
  const bytes = [0x82, 0x01];
  let n = length;
  while (n > 0x7f) {
    bytes.push((n & 0x7f) | 0x80);
    n = Math.floor(n / 128);
  }
  bytes.push(n);
  return Buffer.from(bytes);
}

/*
 * The entry's envelope without its content, encoded by hand: protobuf-es's reflective encoder
 * (growing its buffer, a TextEncoder call per string) was ~5 % of the ingress's CPU per message.
 * The output is byte for byte what toBinary writes (fields in number order, zero values of
 * implicit-presence fields left out), for the schema recorded in ENVELOPE_SCHEMA (fingerprint.ts). When
 * envelope.proto changes, or a message carries unknown fields, protobuf-es encodes instead, and
 * message.test.ts fails until the encoder and ENVELOPE_SCHEMA are updated.
 */

/** Which encoder publishes entries: the hand-written one unless the schema changed. */
export const envelopeHeadEncoder: 'hand-written' | 'protobuf-es' = envelopeSchemaMatches
  ? 'hand-written'
  : 'protobuf-es';

/** The envelope without content (entries carry none before publishing), as protobuf. */
export function encodeEnvelopeHead(e: Envelope): Uint8Array {
  if (
    envelopeHeadEncoder !== 'hand-written' ||
    e.content.case !== undefined ||
    hasUnknown(e) ||
    e.recipients.some(hasUnknown) ||
    hasUnknown(e.receivedAt) ||
    hasUnknown(e.client) ||
    hasUnknown(e.trace) ||
    hasUnknown(e.deliverBy)
  ) {
    return encodeEnvelope(e.content.case === undefined ? e : { ...e, content: { case: undefined } });
  }
  startWriting();
  putString(1, e.messageId);
  putString(2, e.sender);
  for (const r of e.recipients) {
    const start = beginMessage(3);
    putString(1, r.address);
    putString(2, r.orcpt);
    for (const n of r.notify) putString(3, n, true);
    endMessage(start);
  }
  putString(4, e.destinationDomain);
  if (e.receivedAt !== undefined) putTimestamp(5, e.receivedAt);
  if (e.client !== undefined) {
    const c = e.client;
    const start = beginMessage(6);
    putString(1, c.remoteAddress);
    putInt(2, c.remotePort);
    putString(3, c.helo);
    putString(4, c.tlsProtocol);
    putString(5, c.tlsCipher);
    putString(6, c.authIdentity);
    endMessage(start);
  }
  if (e.trace !== undefined) {
    const start = beginMessage(7);
    putString(1, e.trace.traceparent);
    putString(2, e.trace.tracestate);
    endMessage(start);
  }
  putBigInt(8, e.size);
  putInt(9, e.bodyType);
  putInt(10, e.smtputf8 ? 1 : 0);
  putInt(11, e.dsnReturn);
  putString(12, e.dsnEnvid);
  putInt(13, e.requireTls ? 1 : 0);
  if (e.deliverBy !== undefined) putTimestamp(14, e.deliverBy);
  putString(15, e.senderDomain);
  putInt(18, e.deliverByMode);
  putInt(19, e.deliverByTrace ? 1 : 0);
  return written();
}

/** Fresh headers: append, which is set without first searching for the name to replace. */
function entryHeaders(entry: Envelope) {
  const h = headers();
  h.append(QueueHeader.messageId, entry.messageId);
  h.append(QueueHeader.destination, entry.destinationDomain);
  if (entry.trace?.traceparent) h.append(QueueHeader.traceparent, entry.trace.traceparent);
  if (entry.trace?.tracestate) h.append(QueueHeader.tracestate, entry.trace.tracestate);
  return h;
}

async function storeBody(js: JetStreamClient, messageId: string, body: Buffer, timeoutMs: number) {
  try {
    const store = await new Objm(js).open(BUCKET_BODIES);
    const info = await store.putBlob({ name: messageId }, body, { timeout: timeoutMs });
    return create(ObjectRefSchema, { bucket: BUCKET_BODIES, name: messageId, digest: info.digest });
  } catch (error) {
    throw new QueueError(QueueErrorCode.Publish, `storing the body of message ${messageId} failed`, {
      cause: error,
    });
  }
}

interface BatchReply {
  error?: { code: number; err_code: number; description: string };
  stream?: string;
  seq?: number;
  count?: number;
}

/**
 * Publishes the entries as one atomic batch, again with a new batch id while the server answers
 * that the batch is incomplete (dropped, or too many batches in flight on the stream) and the
 * timeout allows: a burst of multi-domain messages must not turn into 451s while slots free up
 * within milliseconds.
 */
async function publishBatch(nc: NatsConnection, entries: readonly Envelope[], timeoutMs: number) {
  const deadline = performance.now() + timeoutMs;
  let pause = RETRY_FIRST_MS;
  for (;;) {
    try {
      await publishBatchOnce(nc, entries, Math.max(1, deadline - performance.now()));
      return;
    } catch (error) {
      const retryable = error instanceof BatchRefused && RETRYABLE.has(error.apiCode);
      if (!retryable || performance.now() + pause >= deadline) throw error;
    }
    await delay(pause);
    pause = Math.min(pause * 2, RETRY_MAX_MS);
  }
}

/** A JetStream error answer to a batch message; `apiCode` is the server's err_code. */
class BatchRefused extends QueueError {
  readonly apiCode: number;
  constructor(apiCode: number, message: string) {
    super(QueueErrorCode.Publish, message);
    this.apiCode = apiCode;
  }
}

/** One attempt: first and commit are requests (sharing the time left), the rest fire-and-forget. */
async function publishBatchOnce(nc: NatsConnection, entries: readonly Envelope[], timeoutMs: number) {
  const deadline = performance.now() + timeoutMs;
  const batchId = randomUUID();
  const last = entries.length - 1;
  for (const [i, entry] of entries.entries()) {
    const h = headers();
    h.set(QueueHeader.messageId, entry.messageId);
    h.set(QueueHeader.destination, entry.destinationDomain);
    if (entry.trace?.traceparent) h.set(QueueHeader.traceparent, entry.trace.traceparent);
    if (entry.trace?.tracestate) h.set(QueueHeader.tracestate, entry.trace.tracestate);
    h.set('Nats-Msg-Id', entryDedupeId(entry.messageId, entry.destinationDomain));
    h.set('Nats-Batch-Id', batchId);
    h.set('Nats-Batch-Sequence', String(i + 1));
    if (i === last) h.set('Nats-Batch-Commit', '1');
    const subject = outboundSubject(entry.destinationDomain);
    const data = encodeEnvelope(entry);
    if (i !== 0 && i !== last) {
      nc.publish(subject, data, { headers: h });
      continue;
    }
    // The first message is acknowledged with an empty reply, or an error when batching is refused.
    const r = await nc.request(subject, data, {
      headers: h,
      timeout: Math.max(1, Math.ceil(deadline - performance.now())),
    });
    if (r.data.length === 0) continue;
    const ack = r.json<BatchReply>();
    if (ack.error) {
      if (ack.error.err_code === BatchErrorCode.Duplicate) return;
      throw new BatchRefused(
        ack.error.err_code,
        `batch publish refused: ${ack.error.description} (${ack.error.err_code})`,
      );
    }
    if (i === last && ack.count !== entries.length) {
      throw new QueueError(QueueErrorCode.Publish, `batch stored ${ack.count} of ${entries.length} entries`);
    }
  }
}

/** The message bytes of a queue entry: inline, or fetched from the object store and checked against the digest. */
export async function loadBody(js: JetStreamClient, envelope: Envelope): Promise<Buffer> {
  const content = envelope.content;
  if (content.case === 'raw') {
    return Buffer.from(content.value.buffer, content.value.byteOffset, content.value.byteLength);
  }
  if (content.case !== 'object') {
    throw new QueueError(QueueErrorCode.Body, `entry of message ${envelope.messageId} has no body`);
  }
  const ref = content.value;
  let chunks: Buffer[];
  let digest: string;
  try {
    const store = await new Objm(js).open(ref.bucket);
    const result = await store.get(ref.name);
    if (result === null)
      throw new QueueError(QueueErrorCode.Body, `body ${ref.bucket}/${ref.name} is missing`);
    digest = result.info.digest;
    chunks = [];
    for await (const chunk of result.data) chunks.push(Buffer.from(chunk));
    // The reader verifies the chunks against the object's digest and reports a mismatch here.
    const failed = await result.error;
    if (failed) throw failed;
  } catch (error) {
    if (error instanceof QueueError) throw error;
    throw new QueueError(QueueErrorCode.Body, `reading body ${ref.bucket}/${ref.name} failed`, {
      cause: error,
    });
  }
  // A different digest means the name now holds other bytes than the entry was queued with.
  if (digest !== ref.digest) {
    throw new QueueError(QueueErrorCode.Body, `body ${ref.bucket}/${ref.name} does not match its digest`);
  }
  return Buffer.concat(chunks);
}
