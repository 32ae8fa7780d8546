import { EnvelopeSchema } from '@petrel/proto';

/*
 * The hand-written protobuf codecs (encodeEnvelopeHead, the envelope decoder, the event batch
 * encoder) are each written for one version of their .proto. Each records the fingerprint of that
 * version and leaves the work to protobuf-es when the generated schema no longer matches it.
 */

type FieldDesc = (typeof EnvelopeSchema)['fields'][number];
/** Any generated message schema (GenMessage<T> types are not assignable to one another). */
interface MessageDesc {
  readonly typeName: string;
  readonly fields: readonly FieldDesc[];
}

/** FieldPresence.IMPLICIT (proto3 scalars): zero values are not written. */
const IMPLICIT = 2;
/** ScalarType.STRING. */
const STRING = 9;

/**
 * Fields of a message and of the message types it contains: number, name, kind, scalar type, and
 * the wire features that differ from proto3's (none in a plain proto3 file, so those parts are
 * empty there).
 */
export function schemaFingerprint(desc: MessageDesc, seen = new Set<string>()): string {
  if (seen.has(desc.typeName)) return '';
  seen.add(desc.typeName);
  const fields: string[] = [];
  const nested: MessageDesc[] = [];
  for (const f of desc.fields) {
    const kind = f.fieldKind === 'list' ? `list-${f.listKind}` : f.fieldKind;
    const scalar = 'scalar' in f && f.scalar !== undefined ? `:${f.scalar}` : '';
    const message =
      f.fieldKind === 'message' || (f.fieldKind === 'list' && f.listKind === 'message')
        ? (f.message as MessageDesc)
        : undefined;
    fields.push(
      `${f.number}=${f.localName}:${kind}${scalar}${message ? `:${message.typeName}` : ''}` +
        `${f.oneof ? `|${f.oneof.localName}` : ''}${f.presence === IMPLICIT ? '' : `!p${f.presence}`}` +
        wireFeatures(f),
    );
    if (message !== undefined) nested.push(message);
  }
  return [`${desc.typeName}{${fields.join(',')}}`, ...nested.map((n) => schemaFingerprint(n, seen))]
    .filter((s) => s !== '')
    .join(' ');
}

/**
 * What editions features or options change on the wire or in the decoded values: group encoding,
 * packed lists, 64-bit integers as strings, strings not checked for UTF-8, closed enums.
 */
function wireFeatures(f: FieldDesc): string {
  let features = '';
  if ('delimitedEncoding' in f && f.delimitedEncoding) features += '~delimited';
  if (f.fieldKind === 'list' && f.packed) features += '~packed';
  if ('longAsString' in f && f.longAsString) features += '~long-as-string';
  const text = f.fieldKind === 'scalar' || (f.fieldKind === 'list' && f.listKind === 'scalar');
  if (text && f.scalar === STRING && !f.utf8Validation) features += '~utf8-unchecked';
  if ((f.fieldKind === 'enum' || (f.fieldKind === 'list' && f.listKind === 'enum')) && !f.enum.open) {
    features += '~closed';
  }
  return features;
}

/**
 * The envelope.proto that both hand-written envelope codecs (encodeEnvelopeHead in message.ts,
 * envelope-decoder.ts) were written for.
 */
export const ENVELOPE_SCHEMA =
  'petrel.v1.Envelope{1=messageId:scalar:9,2=sender:scalar:9,3=recipients:list-message:petrel.v1.Recipient,' +
  '4=destinationDomain:scalar:9,5=receivedAt:message:google.protobuf.Timestamp!p1,' +
  '6=client:message:petrel.v1.ClientInfo!p1,7=trace:message:petrel.v1.TraceContext!p1,8=size:scalar:4,' +
  '9=bodyType:enum,10=smtputf8:scalar:8,11=dsnReturn:enum,12=dsnEnvid:scalar:9,13=requireTls:scalar:8,' +
  '14=deliverBy:message:google.protobuf.Timestamp!p1,15=senderDomain:scalar:9,16=raw:scalar:12|content!p1,' +
  '17=object:message:petrel.v1.ObjectRef|content!p1,18=deliverByMode:enum,19=deliverByTrace:scalar:8} ' +
  'petrel.v1.Recipient{1=address:scalar:9,2=orcpt:scalar:9,3=notify:list-scalar:9} ' +
  'google.protobuf.Timestamp{1=seconds:scalar:3,2=nanos:scalar:5} ' +
  'petrel.v1.ClientInfo{1=remoteAddress:scalar:9,2=remotePort:scalar:13,3=helo:scalar:9,4=tlsProtocol:scalar:9,' +
  '5=tlsCipher:scalar:9,6=authIdentity:scalar:9} ' +
  'petrel.v1.TraceContext{1=traceparent:scalar:9,2=tracestate:scalar:9} ' +
  'petrel.v1.ObjectRef{1=bucket:scalar:9,2=name:scalar:9,3=digest:scalar:9}';

/** Whether the generated Envelope schema is still that one. */
export const envelopeSchemaMatches = schemaFingerprint(EnvelopeSchema) === ENVELOPE_SCHEMA;
