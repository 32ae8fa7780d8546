export { decodeEnvelope, decodeEvent, encodeEnvelope, encodeEvent, newEnvelope, newEvent } from './codec.ts';
export { newMessageId } from './message-id.ts';
export { publishEntry, publishEvent } from './publisher.ts';
export {
  CONSUMER_DELIVERY,
  type DeliveryConsumerOptions,
  deliveryConsumerConfig,
  ensureDeliveryConsumer,
  ensureStreams,
  eventsStreamConfig,
  outboundStreamConfig,
  STREAM_EVENTS,
  STREAM_OUTBOUND,
  type StreamOptions,
} from './streams.ts';
export {
  EventSubject,
  entryDedupeId,
  fnv1a,
  OUTBOUND_SHARDS,
  OUTBOUND_SUBJECT_PREFIX,
  outboundSubject,
  QueueHeader,
  shardOf,
} from './subjects.ts';
