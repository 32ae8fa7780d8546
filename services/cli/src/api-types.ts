/**
 * The trace API's answers as the commands read them; field names as in the OpenAPI document
 * (services/recorder/src/api/openapi.ts). The CLI keeps its own copy instead of importing the
 * recorder: it talks to whatever recorder version the cluster runs, over HTTP only.
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

export interface Suppression {
  address: string;
  reason: string;
  status: string;
  source: string;
  createdAt: string;
  expiresAt: string;
}

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
