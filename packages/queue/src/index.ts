export {
  AckPublisher,
  AckPublisherError,
  AckPublisherErrorCode,
  type PubAckReply,
} from './ack-publisher.ts';
export {
  decodeEnvelope,
  decodeEvent,
  decodeEvents,
  deliveryEvent,
  type EventFields,
  encodeEnvelope,
  encodeEvent,
  encodeEventBatch,
  newEnvelope,
  newEvent,
} from './codec.ts';
export {
  DeferHeader,
  type DeferInput,
  type DeferredEntry,
  deferEntry,
  deferredEntries,
  deferredFilter,
  deferredSubject,
  destinationKey,
  purgeDeferred,
  retryDeferredNow,
} from './deferred.ts';
export {
  EVENT_BATCH_BYTES,
  EventBatcher,
  type EventBatcherDeps,
  eventBatches,
  eventSizeBound,
} from './event-batcher.ts';
export {
  loadBody,
  type PublishMessageInput,
  publishMessage,
  QueueError,
  QueueErrorCode,
} from './message.ts';
export { messageIdTime, newMessageId } from './message-id.ts';
export {
  ackEntry,
  publishEntry,
  publishEvent,
  publishEventBatchWith,
} from './publisher.ts';
export {
  BODIES_MAX_AGE_MS,
  BUCKET_BODIES,
  type DeliveryConsumerOptions,
  deliveryConsumerConfig,
  deliveryConsumerName,
  ensureConsumer,
  ensureDeliveryConsumers,
  ensureStream,
  ensureStreams,
  eventsStreamConfig,
  LEGACY_CONSUMER_DELIVERY,
  outboundStreamConfig,
  STREAM_EVENTS,
  STREAM_OUTBOUND,
  type StreamOptions,
} from './streams.ts';
export {
  DEFERRED_SUBJECT_PREFIX,
  EVENT_KIND_NAMES,
  type EventKindName,
  EventSubject,
  entryDedupeId,
  eventKindName,
  fnv1a,
  OUTBOUND_SHARDS,
  OUTBOUND_SUBJECT_PREFIX,
  outboundSubject,
  QueueHeader,
  shardOf,
} from './subjects.ts';
