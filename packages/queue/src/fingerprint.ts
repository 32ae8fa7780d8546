import type { EnvelopeSchema } from '@petrel/proto';

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
