/**
 * The trace API's answers (JSON), as described in openapi.ts: what the server builds and what the
 * CLI (`import type`: nothing of the recorder is loaded by it) reads.
 */

export interface Recipient {
  address: string;
  destinationDomain: string;
  status: string;
  attempts: number;
  updatedAt: string;
  lastReply: string;
  dsnQueueId: string | null;
}

export interface Message {
  queueId: string;
  acceptedAt: string;
  messageId: string;
  sender: string;
  size: number;
  clientAddress: string;
  traceId: string;
  recipients: Recipient[];
}

export interface TimelineEntry {
  at: string;
  event: string;
  eventId: string;
  destinationDomain: string;
  recipients: string[];
  attempt: number;
  remoteHost: string;
  remoteAddress: string;
  tlsProtocol: string;
  reply: { code: number; enhanced: string; text: string } | null;
  error: string;
  durationMs: number;
  dsnQueueId: string | null;
}

export interface MessagesResponse {
  messages: Message[];
}

export interface MessageResponse {
  message: Message;
  timeline: TimelineEntry[];
}

export interface Destination {
  domain: string;
  ready: number;
  deferred: number;
  oldestAgeSeconds: number | null;
  ratePerSecond: number | null;
  configuredRatePerSecond: number | null;
  suspended: boolean;
  suspendedUntil: string | null;
}

export interface QueueResponse {
  destinations: Destination[];
}

export interface DestinationResponse {
  destination: Destination;
}

export interface OperationResult {
  domain: string;
  operation: string;
  count: number;
}

/** As the workers keep it (NATS KV), returned as it is. */
export type { Suppression } from '@petrel/delivery';

import type { Suppression } from '@petrel/delivery';

export interface SuppressionsResponse {
  total: number;
  suppressions: Suppression[];
}

export interface SuppressionResponse {
  suppression: Suppression;
}

export interface RemovedResponse {
  removed: string;
}

export interface WebhookDelivery {
  deliveryId: string;
  at: string;
  subscription: string;
  domain: string;
  event: string;
  eventId: string;
  queueId: string;
  url: string;
  attempt: number;
  statusCode: number | null;
  error: string;
  deliveredAt: string | null;
  durationMs: number;
  idempotencyKey: string;
}
