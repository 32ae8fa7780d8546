// Public surface of the generated protobuf code (proto/petrel/v1). Regenerate with `npm run proto:gen`.
export { create, fromBinary, toBinary } from '@bufbuild/protobuf';
export { timestampDate, timestampFromDate, timestampMs } from '@bufbuild/protobuf/wkt';
export {
  type DeliveryEvent,
  type DeliveryEventBatch,
  DeliveryEventBatchSchema,
  DeliveryEventSchema,
  EventKind,
  type SmtpReply,
  SmtpReplySchema,
} from './gen/petrel/v1/delivery_event_pb.js';
export {
  BodyType,
  type ClientInfo,
  ClientInfoSchema,
  DeliverByMode,
  DsnReturn,
  type Envelope,
  EnvelopeSchema,
  type ObjectRef,
  ObjectRefSchema,
  type Recipient,
  RecipientSchema,
  type TraceContext,
  TraceContextSchema,
} from './gen/petrel/v1/envelope_pb.js';
